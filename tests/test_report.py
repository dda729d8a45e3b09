"""eval.py report: tables, deltas, best marking, missing cells, skipped counts, merging, tex/csv, plots, bad input.

Every test builds its own synthetic run directories with the results-store helpers."""
import json

import pytest

from posbench.harness.cli import main
from posbench.harness.evaluation.results import RunDir, bootstrap_ci, length_label
from posbench.harness.reporting.report import (
    Report,
    ReportError,
    depth_bins,
    layer_map,
    load_run,
    needle_depths,
    needle_grids,
    render_csv,
    render_markdown,
    render_tex,
    write_report,
)

RULER_TASKS = [  # name, groups, metric, variant_of, length_controlled, needle?
    ("niah_single_1", ["ruler", "ruler_niah"], "string_match_all", "", True, True),
    ("niah_multikey_1", ["ruler", "ruler_niah"], "string_match_all", "", True, True),
    ("vt", ["ruler", "ruler_vt"], "string_match_all", "", True, False),
    ("qa_1", ["ruler", "ruler_qa"], "string_match_part", "", True, False),
    ("qa_1_repo", ["ruler_qa_repo"], "string_match_part", "qa_1", True, False),
    ("hybridqa", [], "exact_match", "", False, False),
]
MODELS = [  # label, scheme, layer kinds
    ("nope-1b", "nope", ["nope"] * 4),
    ("rope-1b", "rope", ["rope"] * 4),
    ("hybrid-1b", "hybrid", ["rope", "rope", "rope", "nope"]),
    ("repo-1b", "repo", ["rope", "repo", "repo", "repo"]),
]


def default_score(model, task, length):
    """A deterministic, distinct-per-cell score in [0, 1] per sample (every sample of a cell scores the same)."""
    base = {"nope-1b": 0.30, "rope-1b": 0.50, "hybrid-1b": 0.60, "repo-1b": 0.70}[model]
    drop = {"4096": 0.0, "8192": 0.1, "16384": 0.2, "native": 0.05}[length]
    return round(max(0.0, base - drop + 0.01 * (len(task) % 5)), 4)


def make_run(root, run_id="run-a", models=MODELS, tasks=RULER_TASKS, lengths=(4096, 8192, 16384), n=4,
             score=default_score, present=lambda m, t, length: True, skipped=None, depth=None, manifest_extra=None):
    """Write manifest, summary and samples. `skipped`: {(model, task, length): k} samples skipped (over budget);
    `depth(model, task, length, index)` -> (depth %, score) overrides needle samples."""
    run = RunDir(root)
    skipped = skipped or {}
    manifest = {
        "run_id": run_id, "git_commit": "0123456789abcdef", "versions": {"python": "3.11", "torch": "2.13.0"},
        "device": {"type": "cpu", "name": "synthetic"}, "started": "2025-01-02T03:04:05",
        "finished": "2025-01-02T04:05:06", "seed": 7, "config": {}, "samples": n, "lengths": list(lengths),
        "models": [{"label": m, "path": f"/models/{m}", "scheme": s, "scheme_params": {}, "layer_schemes": ls}
                   for m, s, ls in models],
        "tasks": [{"name": t, "groups": g, "primary_metric": metric, "variant_of": v, "length_controlled": lc}
                  for t, g, metric, v, lc, _ in tasks],
    }
    manifest.update(manifest_extra or {})
    run.write_manifest(manifest)
    rows = []
    for label, scheme, _ in models:
        for name, groups, metric, variant, controlled, needle in tasks:
            for length in (lengths if controlled else [None]):
                lab = length_label(length)
                if not present(label, name, lab):
                    continue
                k = skipped.get((label, name, lab), 0)
                log = run.sample_log(label, name, length)
                values = []
                for i in range(n + k):
                    s, meta = score(label, name, lab), {}
                    if needle:
                        d, s2 = depth(label, name, lab, i) if depth else (100.0 * (i % 5) / 4, s)
                        meta, s = {"depth": d}, s2
                    skip = f"prompt has {4000 + i} tokens, over the budget of 3968 at length {lab}" if i >= n else None
                    if skip is None:
                        values.append(s)
                    log.append({"index": i, "prompt_hash": "x", "prediction": "p", "answers": ["a"],
                                "scores": {} if skip else {metric: s}, "token_count": 10, "new_tokens": 2,
                                "max_new_tokens": 32, "metadata": meta, "skip_reason": skip,
                                "timings": {"prefill_s": 0.1, "decode_s": 0.1, "batch_size": 1}})
                lo, hi = bootstrap_ci(values)
                rows.append({"model": label, "scheme": scheme, "task": name, "groups": ";".join(groups),
                             "length": lab, "metric": metric,
                             "score": round(100 * sum(values) / len(values), 2) if values else "",
                             "ci_low": "" if lo is None else lo, "ci_high": "" if hi is None else hi, "n": len(values),
                             "skipped": k, "variant_of": variant})
    run.write_summary(rows)
    return root


# ---- helpers ----------------------------------------------------------------------------------------------------

def table_rows(md, title):
    """{model: {column header: cell text}} of the first markdown table after the heading `title`."""
    lines = md[md.index(title):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip("|").split("|")])
    header, rows = block[0], block[2:]
    return {row[0].replace("`", "", 1).rstrip("`"): dict(zip(header, row)) for row in rows}


SMALL_TASKS = [  # a in g1; b in g1 and g2; c in g2; c_v re-defines c (own group g3)
    ("t_a", ["g1"], "acc", "", True, False),
    ("t_b", ["g1", "g2"], "acc", "", True, False),
    ("t_c", ["g2"], "f1", "", True, False),
    ("t_c_v", ["g3"], "f1", "t_c", True, False),
]
SMALL_MODELS = [("nope", "nope", ["nope"] * 2), ("rope", "rope", ["rope"] * 2), ("hyb", "hybrid", ["rope", "nope"])]
SMALL_SCORES = {  # model -> task -> per-sample score (same at both lengths except where noted)
    "nope": {"t_a": 0.40, "t_b": 0.50, "t_c": 0.60, "t_c_v": 0.30},
    "rope": {"t_a": 0.60, "t_b": 0.70, "t_c": 0.80, "t_c_v": 0.50},
    "hyb": {"t_a": 0.65, "t_b": 0.72, "t_c": 0.75, "t_c_v": 0.90},
}


def small_run(root, **kw):
    kw.setdefault("lengths", (4096, 8192))
    return make_run(root, models=kw.pop("models", SMALL_MODELS), tasks=kw.pop("tasks", SMALL_TASKS),
                    score=lambda m, t, length: SMALL_SCORES[m][t], **kw)


# ---- tables -------------------------------------------------------------------------------------------------------

def test_group_means_deltas_best_and_default_baseline(tmp_path):
    report = Report([load_run(small_run(tmp_path / "r"))])
    assert report.baseline == "rope"                      # the first rope model, although nope comes first
    md = render_markdown(report)
    rows = table_rows(md, "## Context length 4K")
    # g1 = mean(t_a, t_b); g2 = mean(t_b, t_c); g3 = t_c_v; avg = mean(t_a, t_b, t_c) without the variant
    assert rows["rope"]["g1 (2)"] == "65.0" and rows["rope"]["g2 (2)"] == "**75.0**" and rows["rope"]["avg"] == "70.0"
    assert rows["rope"]["g3 (1)"] == "50.0"
    assert rows["hyb"]["g1 (2)"] == "**68.5** (+3.5)"
    assert rows["hyb"]["g2 (2)"] == "73.5 (-1.5)"
    assert rows["nope"]["g2 (2)"] == "55.0 (-20.0)"
    assert rows["hyb"]["avg"] == "**70.7** (+0.7)"
    assert rows["nope"]["g3 (1)"] == "30.0 (-20.0)" and rows["hyb"]["g3 (1)"] == "**90.0** (+40.0)"
    assert rows["nope"]["scheme"] == "nope"
    assert "`avg` = t_a, t_b, t_c" in md and "variant tasks excluded" in md
    assert "| `t_c`   | f1     |" in md                   # the metric of every task is stated


def test_best_ties_are_all_bold_and_explicit_baseline(tmp_path):
    scores = {m: dict(v) for m, v in SMALL_SCORES.items()}
    scores["nope"]["t_c_v"] = 0.90                       # ties hyb on g3
    run = make_run(tmp_path / "r", models=SMALL_MODELS, tasks=SMALL_TASKS, lengths=(4096,),
                   score=lambda m, t, length: scores[m][t])
    report = Report([load_run(run)], baseline="hyb")
    rows = table_rows(render_markdown(report), "## Context length 4K")
    assert rows["nope"]["g3 (1)"] == "**90.0** (+0.0)" and rows["hyb"]["g3 (1)"] == "**90.0**"
    assert rows["rope"]["g1 (2)"] == "65.0 (-3.5)"
    with pytest.raises(ReportError, match="--baseline 'gpt' is not a model.*nope, rope, hyb"):
        Report([load_run(run)], baseline="gpt")


def test_missing_cells_are_dashes_never_zero(tmp_path):
    run = small_run(tmp_path / "r", present=lambda m, t, length: not (m == "hyb" and t == "t_b" and length == "8192"))
    report = Report([load_run(run)])
    md = render_markdown(report)
    rows = table_rows(md, "## Context length 8K")
    assert rows["hyb"]["g1 (2)"] == "—" and rows["hyb"]["g2 (2)"] == "—" and rows["hyb"]["avg"] == "—"
    assert rows["hyb"]["g3 (1)"] == "**90.0** (+40.0)"        # groups without the missing task still count
    assert "`hyb` has no score for t_b, so groups containing it show —." in md
    assert table_rows(md, "### Context length 8K")["t_b"]["`hyb`"] == "—"
    assert "- `hyb` · `t_b` · 8K (run `run-a`)" in md     # declared in the manifest, absent from the summary
    assert rows["rope"]["g1 (2)"] == "**65.0**"           # best among the models that have a value


def test_model_not_run_at_a_length_shows_a_row_of_dashes(tmp_path):
    run = small_run(tmp_path / "r", present=lambda m, t, length: not (m == "nope" and length == "8192"))
    md = render_markdown(Report([load_run(run)]))
    rows = table_rows(md, "## Context length 8K")
    assert [v for k, v in rows["nope"].items() if k not in ("model", "scheme")] == ["—"] * 4
    assert "`nope` was not run at this length." in md


def test_skipped_samples_are_counted_shown_and_explained(tmp_path):
    run = small_run(tmp_path / "r", n=3, skipped={("rope", "t_a", "8192"): 2})
    md = render_markdown(Report([load_run(run)]))
    cell = table_rows(md, "### Context length 8K")["t_a"]["`rope`"]
    assert cell == "60.0 [60.0, 60.0] n=3, 2 skipped"
    section = table_rows(md, "## Skipped and missing")["rope"]
    assert section["task"] == "`t_a`" and section["length"] == "8K" and section["skipped"] == "2"
    assert section["scored"] == "3"
    assert section["reasons"] == "2× prompt has N tokens, over the budget of N at length N"
    assert "2 skipped" in md[md.index("## Context length 8K"):md.index("## Per-task")]
    assert "2 samples skipped in 1 cell " in md


def test_a_cell_with_every_sample_skipped_has_no_score(tmp_path):
    run = small_run(tmp_path / "r", n=2, lengths=(4096,))
    rows = RunDir(run).read_summary()
    for row in rows:
        if row["model"] == "rope" and row["task"] == "t_c":
            row.update(score="", ci_low="", ci_high="", n="0", skipped="5")
    RunDir(run).write_summary(rows)
    md = render_markdown(Report([load_run(run)]))
    assert table_rows(md, "### Context length 4K")["t_c"]["`rope`"] == "— n=0, 5 skipped"
    assert table_rows(md, "## Context length 4K")["rope"]["g2 (2)"] == "—"


def test_native_length_tasks_get_their_own_block(tmp_path):
    run = make_run(tmp_path / "r", lengths=(4096,))
    md = render_markdown(Report([load_run(run)]))
    rows = table_rows(md, "## Tasks at their native length")
    assert list(rows["rope-1b"]) == ["model", "scheme", "hybridqa"]
    assert rows["rope-1b"]["hybridqa"] == "48.0"


def test_header_states_runs_models_layer_maps_and_samples(tmp_path):
    run = make_run(tmp_path / "r", lengths=(4096,), n=5)
    md = render_markdown(Report([load_run(run)]))
    runs = table_rows(md, "## Runs")
    assert runs["run-a"]["git commit"] == "0123456789ab" and runs["run-a"]["seed"] == "7"
    assert runs["run-a"]["samples/cell"] == "5" and runs["run-a"]["device"] == "synthetic"
    models = table_rows(md, "## Models")
    assert models["rope-1b` (baseline)"]["scheme"] == "rope"
    assert models["hybrid-1b"]["layer map"] == "4 layers: rope×3, nope×1 (nope at 3)"
    assert models["hybrid-1b"]["path"] == "`/models/hybrid-1b`"
    assert "n per cell = samples scored (5)" in md


def test_layer_map_summaries():
    assert layer_map([]) == "—"
    assert layer_map(["rope"] * 16) == "all 16 layers rope"
    assert layer_map(["rope", "rope", "nope", "nope", "rope", "repo"]) == \
        "6 layers: rope×3, nope×2, repo×1 (nope at 2-3; repo at 5)"
    assert layer_map([{"scheme": "nope"}, {"scheme": "rope"}, {"scheme": "rope"}]).endswith("(nope at 0)")


# ---- csv and tex --------------------------------------------------------------------------------------------------

def test_csv_wide_tables(tmp_path):
    run = small_run(tmp_path / "r", present=lambda m, t, length: not (m == "hyb" and t == "t_a"))
    files = render_csv(Report([load_run(run)]))
    assert sorted(files) == ["report_4096.csv", "report_8192.csv"]
    lines = files["report_4096.csv"].splitlines()
    assert lines[0] == "model,scheme,baseline,g1,g2,g3,avg,g1_delta,g2_delta,g3_delta,avg_delta"
    assert lines[2] == "rope,rope,1,65.0,75.0,50.0,70.0,,,,"
    assert lines[3] == "hyb,hybrid,0,,73.5,90.0,,,-1.5,40.0,"


def test_tex_is_booktabs_with_bold_best_and_escaped_names(tmp_path):
    tasks = [("niah_single_1", ["ruler_niah"], "string_match_all", "", True, False),
             ("qa_1", ["ruler_qa"], "string_match_part", "", True, False)]
    models = [("rope_base", "rope", []), ("re_po & co", "repo", [])]
    run = make_run(tmp_path / "r", models=models, tasks=tasks, lengths=(4096,),
                   score=lambda m, t, length: 0.5 if m == "rope_base" else 0.6)
    tex = render_tex(Report([load_run(run)]))
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"Model & Scheme & ruler\_niah (1) & ruler\_qa (1) & avg \\" in tex
    assert r"re\_po \& co & repo & \textbf{60.0} {\scriptsize (+10.0)}" in tex
    assert r"rope\_base & rope & 50.0 & 50.0 & 50.0 \\" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert "_" not in body.replace(r"\_", "")


# ---- merging ------------------------------------------------------------------------------------------------------

def test_merge_runs_with_different_models(tmp_path):
    a = small_run(tmp_path / "a", run_id="run-a", models=SMALL_MODELS[:2])
    b = small_run(tmp_path / "b", run_id="run-b", models=SMALL_MODELS[2:])
    report = Report([load_run(a), load_run(b)])
    md = render_markdown(report)
    rows = table_rows(md, "## Context length 4K")
    assert list(rows) == ["nope", "rope", "hyb"] and rows["hyb"]["g1 (2)"] == "**68.5** (+3.5)"
    assert "Merged from 2 runs (`run-a`, `run-b`)" in md and "Versions: python=3.11, torch=2.13.0" in md
    runs = table_rows(md, "## Runs")
    assert runs["run-a"]["models"] == "nope, rope" and runs["run-b"]["models"] == "hyb"
    assert table_rows(md, "## Models")["hyb"]["runs"] == "run-b"


def test_same_model_in_two_runs_is_fine_when_cells_do_not_overlap(tmp_path):
    a = small_run(tmp_path / "a", run_id="run-a", lengths=(4096,))
    b = small_run(tmp_path / "b", run_id="run-b", lengths=(8192,))
    report = Report([load_run(a), load_run(b)])
    assert report.lengths == ["4096", "8192"]
    assert report.models["rope"].runs == ["run-a", "run-b"]
    md = render_markdown(report)
    assert table_rows(md, "## Context length 8K")["hyb"]["g1 (2)"] == "**68.5** (+3.5)"


def test_overlapping_runs_are_an_error_naming_both(tmp_path):
    a = small_run(tmp_path / "a", run_id="run-a", lengths=(4096,))
    b = small_run(tmp_path / "b", run_id="run-b", lengths=(4096, 8192))
    with pytest.raises(ReportError, match=r"b: model 'nope', task t_a, length 4096 is also in run 'run-a'"):
        Report([load_run(a), load_run(b)])


def test_same_label_with_another_scheme_is_an_error(tmp_path):
    a = small_run(tmp_path / "a", run_id="run-a", lengths=(4096,))
    b = small_run(tmp_path / "b", run_id="run-b", lengths=(8192,),
                  models=[("rope", "nope", []), ("nope", "nope", []), ("hyb", "hybrid", [])])
    with pytest.raises(ReportError, match="model 'rope' has scheme nope here but rope in run 'run-a'"):
        Report([load_run(a), load_run(b)])


# ---- needles and plots ----------------------------------------------------------------------------------------------

def test_needle_depth_accessor_and_bins():
    assert needle_depths({"metadata": {"depth": 25}}) == [25.0]
    assert needle_depths({"metadata": {"depths": [10, 90.5]}}) == [10.0, 90.5]
    assert needle_depths({"metadata": {}}) == [] and needle_depths({}) == []
    # RULER's own shape: only the needle asked about counts, not multikey's distractors
    meta = {"needles": [{"key": "a", "depth": 12}, {"key": "b", "depth": 70}], "queries": ["b"]}
    assert needle_depths({"metadata": meta}) == [70.0]


def test_needle_depths_of_real_ruler_samples(registry, tokenizer):
    """The heatmap reads what the RULER generators write: every niah sample yields its queried needles' depths,
    and a noise-haystack vt sample none."""
    from posbench.tasks import build_samples
    from tests.data_testing import DATA_ROOT, require_data

    require_data("essays", "punkt_tab")
    paths = {"data": str(DATA_ROOT)}
    for task, expected in (("niah_single_2", 1), ("niah_multikey_1", 1), ("niah_multivalue", 4)):
        sample = build_samples(registry.get(task), tokenizer, length=1024, num_samples=1, data_paths=paths)[0]
        depths = needle_depths({"metadata": sample.metadata})
        assert len(depths) == expected and all(0 <= d <= 100 for d in depths), (task, depths)
    vt = build_samples(registry.get("vt"), tokenizer, length=1024, num_samples=1, data_paths=paths)[0]
    assert needle_depths({"metadata": vt.metadata}) == []
    assert [b[2] for b in depth_bins([0, 50, 100, 50])] == ["0%", "50%", "100%"]
    many = depth_bins([float(d) for d in range(0, 101, 3)])
    assert len(many) == 10 and many[0][2] == "0–10%" and many[-1][2] == "90–100%"


def test_needle_grid_means_by_depth_and_length(tmp_path):
    def depth(model, task, length, i):     # rope fails deep needles at 8K; depths cycle 0, 50, 100
        d = [0.0, 50.0, 100.0][i % 3]
        return d, 0.0 if (model == "rope-1b" and length == "8192" and d == 100.0) else 1.0
    run = make_run(tmp_path / "r", n=6, lengths=(4096, 8192), depth=depth,
                   skipped={("rope-1b", "niah_single_1", "8192"): 2})
    grids = needle_grids(Report([load_run(run)]))
    g = grids["rope-1b"]
    assert g["bins"] == ["0%", "50%", "100%"] and g["lengths"] == ["4096", "8192"]
    assert g["tasks"] == ["niah_single_1", "niah_multikey_1"] and g["metric"] == "string_match_all"
    assert g["mean"] == [[100.0, 100.0], [100.0, 100.0], [100.0, 0.0]]
    assert g["n"] == [[4, 4], [4, 4], [4, 4]]            # 2 tasks x 2 samples per depth; skipped ones left out
    assert set(grids) == {"nope-1b", "rope-1b", "hybrid-1b", "repo-1b"}


def test_plots_are_valid_pngs_and_linked_from_the_report(tmp_path):
    import matplotlib.image as mpimg
    run = make_run(tmp_path / "r", lengths=(4096, 8192, 16384),
                   present=lambda m, t, length: not (m == "repo-1b" and t == "vt" and length == "16384"))
    written = write_report([run], formats=("md",))
    plots = sorted(p.name for p in written if p.suffix == ".png")
    assert plots == sorted(["score_vs_length_ruler.png", "score_vs_length_ruler_niah.png",
                            "score_vs_length_ruler_vt.png", "score_vs_length_ruler_qa.png",
                            "score_vs_length_ruler_qa_repo.png", "score_vs_length_avg.png",
                            "needle_heatmap_nope-1b.png", "needle_heatmap_rope-1b.png",
                            "needle_heatmap_hybrid-1b.png", "needle_heatmap_repo-1b.png"])
    for name in plots:
        path = run / "plots" / name
        assert path.stat().st_size > 10_000
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 0.01
    md = (run / "report.md").read_text()
    assert "![ruler_niah: score vs context length](plots/score_vs_length_ruler_niah.png)" in md
    assert "(plots/needle_heatmap_repo-1b.png)" in md


# ---- the command and bad input ---------------------------------------------------------------------------------------

def test_command_writes_all_formats_to_out(tmp_path, capsys):
    run = small_run(tmp_path / "r")
    out = tmp_path / "out"
    assert main(["report", str(run), "--format", "md,csv,tex", "--out", str(out), "--no-plots",
                 "--baseline", "nope"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "report.tex", "report_4096.csv",
                                                     "report_8192.csv"]
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    assert "Deltas are against `nope`" in (out / "report.md").read_text()
    assert not (run / "report.md").exists()


def test_report_never_modifies_sample_logs(tmp_path):
    run = small_run(tmp_path / "r", lengths=(4096,), skipped={("rope", "t_a", "4096"): 1})
    log = RunDir(run).sample_log("rope", "t_a", 4096).path
    with open(log, "ab") as f:
        f.write(b'{"index": 9, "partial')                 # a write in progress
    before = log.read_bytes()
    write_report([run], plots=False)
    assert log.read_bytes() == before


@pytest.mark.parametrize("damage, message", [
    (lambda run: None, "no such run directory"),
    (lambda run: (run / "summary.csv").unlink(), r"summary.csv: not found"),
    (lambda run: (run / "summary.csv").write_text(""), r"summary.csv: empty file"),
    (lambda run: (run / "summary.csv").write_text("model,task,length\n"), r"summary.csv: missing column\(s\) score, n"),
    (lambda run: _edit_row(run, score="abc"), r"summary.csv line 2, column 'score': not a number: 'abc'"),
    (lambda run: _edit_row(run, n="3.5"), r"summary.csv line 2, column 'n': not a whole number: '3.5'"),
    (lambda run: _edit_row(run, length="4k"), r"summary.csv line 2: length must be a number of tokens"),
    (lambda run: (run / "summary.csv").open("a").write("rope,rope,t_a\n"), r"summary.csv line \d+: 3 fields, "),
    (lambda run: (run / "manifest.json").write_text("{oops"), r"manifest.json:1: not valid JSON"),
])
def test_bad_input_names_the_file(tmp_path, damage, message):
    run = tmp_path / "r"
    if message != "no such run directory":
        small_run(run, lengths=(4096,))
    damage(run)
    with pytest.raises(ReportError, match=message):
        write_report([run], plots=False)


def _edit_row(run, **changes):
    rows = RunDir(run).read_summary()
    rows[0].update(changes)
    RunDir(run).write_summary(rows)


def test_malformed_sample_line_names_the_file_and_line(tmp_path):
    run = small_run(tmp_path / "r", lengths=(4096,), skipped={("rope", "t_a", "4096"): 1})
    log = RunDir(run).sample_log("rope", "t_a", 4096).path
    with open(log, "ab") as f:
        f.write(b"not json\n")
    with pytest.raises(ReportError, match=r"t_a/4096.jsonl line 6: not valid JSON"):
        write_report([run], plots=False)


def test_cli_prints_report_errors_as_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'nowhere'}: no such run directory\n"
    run = small_run(tmp_path / "r", lengths=(4096,))
    assert main(["report", str(run), "--format", "md,pdf"]) == 2
    assert "unknown format(s) pdf" in capsys.readouterr().err


def test_manifest_optional_keys_may_be_missing(tmp_path):
    run = small_run(tmp_path / "r", lengths=(4096,))
    (run / "manifest.json").write_text(json.dumps({}))
    md = render_markdown(Report([load_run(run)]))
    assert table_rows(md, "## Runs")["r"]["git commit"] == "—"
    assert table_rows(md, "## Context length 4K")["hyb"]["g1 (2)"] == "**68.5** (+3.5)"
    (run / "manifest.json").unlink()
    assert "rope" in Report([load_run(run)]).models
