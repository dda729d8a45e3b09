"""eval.py report and posbench.results: the frames, the statistics, and every output format checked against the
frames (values, not layout strings). Every test builds its own synthetic run directories (tests/report_runs.py)."""
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from report_runs import MODELS, SMALL_MODELS, SMALL_TASKS, make_run, small_run

import posbench.results
from posbench.harness.cli import main
from posbench.harness.evaluation import stats
from posbench.harness.evaluation.results import RunDir
from posbench.harness.reporting.frames import ReportError, needle_depths
from posbench.harness.reporting.plots import needle_frame
from posbench.harness.reporting.report import (
    blocks,
    columns,
    display_main,
    headline,
    layer_map,
    main_frame,
    render_markdown,
    write_report,
)

NIAH = [("niah_a", ["ruler", "ruler_niah"], "string_match_all", "", True, True),
        ("niah_b", ["ruler", "ruler_niah"], "string_match_all", "", True, True)]
PAIR_MODELS = [("rope", "rope", ["rope"] * 2), ("repo", "repo", ["repo"] * 2)]


def md_tables(md) -> dict:
    """{heading line: DataFrame of the first table under it} of a report.md (text cells)."""
    out = {}
    for heading, table in md_table_list(md):
        out.setdefault(heading, table)
    return out


def md_table_list(md) -> list:
    """[(heading line, DataFrame)] for every table of a report.md, in order."""
    out, heading = [], None
    for part in md.split("\n\n"):
        if part.startswith("#"):
            heading = part
        elif part.startswith("|"):
            lines = [line for i, line in enumerate(part.splitlines()) if i != 1]
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
            out.append((heading, pd.DataFrame(rows[1:], columns=rows[0])))
    return out


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def html_table_list(text) -> list:
    """Every <table> of an HTML page as a DataFrame of cell texts (header row = columns)."""
    parser = _Tables()
    parser.feed(text)
    return [pd.DataFrame(rows[1:], columns=rows[0]) for rows in parser.tables]


def number(text) -> float:
    """The leading number of a table cell ('**68.5** (+3.5)' -> 68.5; '—' -> nan)."""
    text = text.replace("*", "").strip()
    return math.nan if text.startswith("—") else float(text.split()[0])


def binary_run(root, rope, repo, n=8, lengths=(4096,), run_id="run-a", **kw):
    """Needle tasks with 0/1 scores: rope(i) / repo(i) say whether sample i is right."""
    scores = {"rope": rope, "repo": repo}
    return make_run(root, run_id=run_id, models=kw.pop("models", PAIR_MODELS), tasks=NIAH, lengths=lengths, n=n,
                    score=lambda m, t, length: None, depth=lambda m, t, length, i: (25.0 * (i % 5),
                                                                                     float(scores[m](i))), **kw)


# ---- statistics ----------------------------------------------------------------------------------------------------

def test_wilson_matches_scipy_and_does_not_collapse_at_small_n():
    from scipy.stats import binomtest
    for k, n in [(0, 5), (5, 5), (3, 7), (41, 100)]:
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert stats.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    r = stats.mean_interval([1.0] * 5)
    assert r["method"] == "Wilson" and r["low"] == pytest.approx(0.5655, abs=1e-4) and r["high"] == 1.0


def test_newcombe_paired_matches_the_papers_example_and_bootstrap_otherwise():
    # Newcombe (1998), Stat Med 17:2635, example (a)-(d) = 36, 12, 2, 0: method 10 gives 0.0569 to 0.3404
    a = np.array([1] * 48 + [0] * 2)
    b = np.array([1] * 36 + [0] * 12 + [1] * 2)
    assert stats.newcombe_paired(a, b) == pytest.approx((0.0569, 0.3404), abs=1e-4)
    same = stats.paired_difference([([1.0] * 5, [1.0] * 5)])
    assert same["diff"] == 0 and same["low"] < -0.3 and same["high"] > 0.3 and same["method"] == "Newcombe paired"
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    boot = stats.paired_difference([(x, y)], seed=3)
    assert boot["method"] == "paired bootstrap" and boot["diff"] == pytest.approx(x.mean() - y.mean())
    assert boot["low"] < boot["diff"] < boot["high"] and boot == stats.paired_difference([(x, y)], seed=3)
    # two tasks: the difference is the mean of the per-task differences, as for group scores
    two = stats.paired_difference([(x[:10], y[:10]), (x[10:], y[10:])], seed=3)
    assert two["diff"] == pytest.approx(((x[:10] - y[:10]).mean() + (x[10:] - y[10:]).mean()) / 2)


# ---- frames ---------------------------------------------------------------------------------------------------------

def test_frames_hold_samples_cells_and_scheme_params_per_length(tmp_path):
    config = {"models": [{"label": "rope", "scheme_params": {}, "scheme_params_by_length": {
        "8192": {"scaling": "yarn", "factor": 2}}}]}
    run = small_run(tmp_path / "r", n=3, skipped={("rope", "t_a", "8192"): 2}, manifest_extra={"config": config})
    res = posbench.results.load(run)
    s, c = res.samples, res.cells
    assert len(c) == 3 * 4 * 2 and len(s) == len(c) * 3 + 2
    assert set(s.columns) >= {"model", "scheme", "scheme_params", "task", "groups", "length", "score", "prediction",
                              "prompt_hash", "skip_reason"}
    scored = s.dropna(subset=["score"]).groupby(["model", "task", "length"])["score"]
    merged = c.set_index(["model", "task", "length"]).join(scored.mean().rename("mean"))
    assert np.allclose(merged["score"], merged["mean"]) and (merged["n"] == 3).all()
    rope = c[c["model"] == "rope"].set_index(["task", "length"])["scheme_params"]
    assert rope[("t_a", "8192")] == "factor=2, scaling=yarn" and rope[("t_a", "4096")] == ""
    assert res.manifests["run-a"]["seed"] == 7 and res.baseline == "rope"
    md = render_markdown(blocks(res))
    assert "4K: —; 8K: factor=2, scaling=yarn" in md_tables(md)["## Models"].set_index("scheme")["params per length"][
        "rope"]
    assert display_main(res, "8192").set_index("scheme").at["rope", "scheme params"] == "factor=2, scaling=yarn"


def test_binary_cells_get_wilson_intervals_named_in_the_table(tmp_path):
    run = binary_run(tmp_path / "r", rope=lambda i: 1, repo=lambda i: i < 4, n=5)
    res = posbench.results.load(run)
    cell = res.cells.set_index(["model", "task"]).loc[("rope", "niah_a")]
    assert cell["interval"] == "Wilson" and cell["ci_low"] == pytest.approx(56.55, abs=0.01) and cell["ci_high"] == 100
    details = md_tables(render_markdown(blocks(res)))["### Context length 4K (4096 tokens)"]
    row = details.set_index("task").loc["`niah_a`"]
    assert row["interval"] == "Wilson" and row["`rope` (baseline)"] == "100.0 [56.6, 100.0] n=5"


def test_paired_difference_joins_the_same_prompts(tmp_path):
    run = binary_run(tmp_path / "r", rope=lambda i: i % 2, repo=lambda i: 1, n=8)
    res = posbench.results.load(run)
    p = res.paired("repo", length="4096")
    assert p["diff"] == pytest.approx(50.0) and p["n"] == 16 and p["method"] == "Newcombe paired" and p["low"] > 0
    # the same difference by hand from the samples frame (the docs' example)
    s = res.samples
    wide = s.pivot_table(index=["task", "length", "index", "prompt_hash"], columns="model", values="score")
    assert (wide["repo"] - wide["rope"]).mean() == pytest.approx(p["diff"])
    # a sample whose prompt differs is not a pair
    log = RunDir(run).sample_log("repo", "niah_a", 4096).path
    lines = log.read_text().splitlines()
    lines[0] = lines[0].replace('"prompt_hash": "x"', '"prompt_hash": "other"')
    log.write_text("\n".join(lines) + "\n")
    assert posbench.results.load(run).paired("repo", length="4096")["n"] == 15


def test_headline_names_the_best_and_says_when_nothing_is_significant(tmp_path):
    run = binary_run(tmp_path / "r", rope=lambda i: i % 2, repo=lambda i: 1, n=8, lengths=(4096, 8192))
    res = posbench.results.load(run)
    h = headline(res)
    best = h[h["best"]].set_index("length")
    assert list(best["model"]) == ["repo", "repo"] and best.at["4096", "significant"]
    md = render_markdown(blocks(res))
    assert "`repo` (repo) scores best on avg, 100.0, +50.0 over `rope`" in md
    assert f"{best.at['4096', 'low']:+.1f} to +{best.at['4096', 'high']:.1f}" in md
    close = binary_run(tmp_path / "s", rope=lambda i: i % 2, repo=lambda i: i % 2 or i == 0, n=4)
    md = render_markdown(blocks(posbench.results.load(close)))
    assert "`repo` (repo) scores best on avg, 75.0" in md and "no model differs significantly from `rope`." in md
    tie = binary_run(tmp_path / "t", rope=lambda i: 1, repo=lambda i: 1, n=4)
    assert "`rope` (rope) scores best on avg, 100.0 (tied with 1 other model), the baseline; no model differs" in \
        render_markdown(blocks(posbench.results.load(tie)))


# ---- tables in every format, against the frames ---------------------------------------------------------------------

def check_main_tables(res, out):
    """report.md, report_<length>.csv, report.tex and report.html all show main_frame's numbers."""
    md = md_table_list((out / "report.md").read_text())
    html_tables = html_table_list((out / "report.html").read_text())
    assert len(html_tables) == len(md)                   # the same blocks, so the tables correspond in order
    tex = (out / "report.tex").read_text()
    for length in res.lengths:
        frame = main_frame(res, length).set_index("model")
        cols = list(columns(res, length))
        k = next(i for i, (h, _) in enumerate(md) if h.startswith("## ") and (
            h.endswith(f"({length} tokens)") or (length == "native" and "native" in h)))
        table, html = md[k][1], html_tables[k]
        csv = pd.read_csv(out / f"report_{length}.csv").set_index("model")
        for i, model in enumerate(frame.index):
            for col in cols:
                value = frame.at[model, col]
                for shown in (number(table.at[i, col]), number(str(html.at[i, col]))):
                    assert (math.isnan(value) and math.isnan(shown)) or shown == round(value, 1), (length, model, col)
                assert np.isclose(csv.at[model, col], round(value, 2), equal_nan=True)
                delta = frame.at[model, f"{col}_delta"]
                if not math.isnan(delta):
                    assert f"({delta:+.1f})" in table.at[i, col]
        for model in frame.index:
            block = next(b for b in tex.split(r"\begin{table}") if f"label{{tab:posbench-{length}}}" in b)
            line = next(x for x in block.splitlines() if x.startswith(model.replace("_", r"\_") + " "))
            cells = [c.strip() for c in line.rstrip("\\ ").split(" & ")][3:]
            shown = [number(c.replace(r"\textbf{", "").replace("}", "").replace("---", "—")) for c in cells]
            assert np.allclose(shown, frame.loc[model, cols].astype(float).round(1), equal_nan=True)


def test_every_format_matches_the_frames_for_one_run(tmp_path):
    run = small_run(tmp_path / "r", present=lambda m, t, length: not (m == "hyb" and t == "t_b" and length == "8192"))
    out = tmp_path / "out"
    assert main(["report", str(run), "--format", "md,csv,tex,html", "--out", str(out), "--no-plots"]) == 0
    res = posbench.results.load(run)
    check_main_tables(res, out)
    frame = main_frame(res, "4096").set_index("model")
    # g1 = mean(t_a, t_b); g2 = mean(t_b, t_c); g3 = t_c_v; avg = mean(t_a, t_b, t_c) without the variant
    assert frame.at["rope", "g1"] == pytest.approx(65.0) and frame.at["hyb", "avg"] == pytest.approx(212 / 3)
    assert math.isnan(main_frame(res, "8192").set_index("model").at["hyb", "g1"])   # missing is NaN, never 0
    h = headline(res).set_index(["length", "model"])
    assert h.at[("4096", "hyb"), "avg"] == frame.at["hyb", "avg"] and h.at[("4096", "hyb"), "best"]
    assert h.at[("4096", "hyb"), "diff"] == pytest.approx(frame.at["hyb", "avg_delta"])
    md = (out / "report.md").read_text()
    assert "`hyb` · `t_b` · 8K (run `run-a`)" in md
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == len(res.cells) and np.allclose(cells["score"], res.cells["score"])


def test_two_run_comparison_in_every_format(tmp_path):
    a = binary_run(tmp_path / "a", rope=lambda i: i % 2, repo=lambda i: 1, run_id="run-a", models=PAIR_MODELS[:1],
                   lengths=(4096, 8192))
    b = binary_run(tmp_path / "b", rope=lambda i: 0, repo=lambda i: i < 6, run_id="run-b", models=PAIR_MODELS[1:],
                   lengths=(4096, 8192))
    out = tmp_path / "out"
    written = write_report([a, b], out=out, formats=("md", "csv", "tex", "html"))
    res = posbench.results.load(a, b)
    check_main_tables(res, out)
    assert list(res.runs["run"]) == ["run-a", "run-b"] and set(res.manifests) == {"run-a", "run-b"}
    assert res.paired("repo", length="8192")["diff"] == pytest.approx(75 - 50)
    md = (out / "report.md").read_text()
    assert "Merged from 2 runs (`run-a`, `run-b`)" in md
    # niah_a and niah_b are in ruler and ruler_niah: one column and one plot, not three
    assert list(columns(res, "4096")) == ["ruler = ruler_niah = avg"]
    assert sorted(p.name for p in written if p.suffix == ".png") == ["needle_heatmaps.png", "score_vs_length_ruler.png"]


def test_merging_errors_name_both_runs(tmp_path):
    a = small_run(tmp_path / "a", run_id="run-a", lengths=(4096,))
    b = small_run(tmp_path / "b", run_id="run-b", lengths=(4096, 8192))
    with pytest.raises(ReportError, match=r"b: model 'nope', task t_a, length 4096 is also in run 'run-a'"):
        posbench.results.load(a, b)
    c = small_run(tmp_path / "c", run_id="run-c", lengths=(8192,),
                  models=[("rope", "nope", []), ("nope", "nope", []), ("hyb", "hybrid", [])])
    with pytest.raises(ReportError, match="model 'rope' has scheme nope here but rope in run 'run-a'"):
        posbench.results.load(a, c)
    with pytest.raises(ReportError, match="--baseline 'gpt' is not a model.*nope, rope, hyb"):
        posbench.results.load(a, baseline="gpt")


# ---- what the manifest and the analysis add --------------------------------------------------------------------------

def test_warnings_analysis_verdicts_and_sampling_mode_are_shown(tmp_path):
    tasks = [(*t[:5], False) for t in SMALL_TASKS]
    run = make_run(tmp_path / "r", models=SMALL_MODELS + [("repo", "repo", ["repo"] * 2)], tasks=tasks,
                   lengths=(4096, 8192), score=lambda m, t, length: 0.5, manifest_extra={
                       "warnings": ["model hyb: length 8192 is beyond its 4096 positions and no scaling is set"]})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["tasks"][0]["config"] = {"sampling": "official"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "analysis" / "repo").mkdir(parents=True)
    (run / "analysis" / "repo" / "analysis.json").write_text(json.dumps({
        "model": "repo", "scheme": "repo", "verdict": "collapsed", "position_range": {"4096": 3.25, "8192": 2.5},
        "lengths": [4096, 8192], "samples": 16}))
    res = posbench.results.load(run)
    assert res.cells.loc[res.cells["model"] == "repo", "verdict"].eq("collapsed").all()
    md = render_markdown(blocks(res))
    tables = md_tables(md)
    assert "- model hyb: length 8192 is beyond its 4096 positions and no scaling is set (run `run-a`)" in md
    analysis = tables["## Learned positions (eval.py analyze)"].set_index("model").loc["repo"]
    assert analysis["verdict"] == "collapsed" and analysis["position range at 4K"] == "3.2"
    assert analysis["position range at 8K"] == "2.5"
    assert "`repo` ⚠ positions collapsed" in tables["## Context length 8K (8192 tokens)"]["model"].tolist()
    assert tables["## Tasks"].set_index("task").at["`t_a`", "RULER sampling"] == "official"
    (run / "analysis" / "repo" / "analysis.json").write_text("{oops")
    with pytest.raises(ReportError, match=r"analysis/repo/analysis.json: not valid JSON"):
        posbench.results.load(run)


# ---- needles and plots ----------------------------------------------------------------------------------------------

def test_needle_depth_accessor_and_bins():
    assert needle_depths({"metadata": {"depth": 25}}) == [25.0]
    assert needle_depths({"metadata": {"depths": [10, 90.5]}}) == [10.0, 90.5]
    assert needle_depths({"metadata": {}}) == [] and needle_depths({}) == []
    meta = {"needles": [{"key": "a", "depth": 12}, {"key": "b", "depth": 70}], "queries": ["b"]}
    assert needle_depths({"metadata": meta}) == [70.0]    # multikey's distractors do not count
    samples = pd.DataFrame({"model": "m", "task": "t", "length": "4096", "score": 100.0,
                            "depths": [[float(d)] for d in range(0, 101, 3)]})
    bins = needle_frame(SimpleNamespace(samples=samples)).drop_duplicates("bin")["label"].tolist()
    assert len(bins) == 10 and bins[0] == "0–10%" and bins[-1] == "90–100%"        # 34 depths: 10% bins
    exact = needle_frame(SimpleNamespace(samples=samples[samples.index % 10 == 0]))["label"].tolist()
    assert exact == ["0%", "30%", "60%", "90%"]                                     # few depths: one bin each


def test_needle_depths_of_real_ruler_samples(registry, tokenizer):
    """The heatmap reads what the RULER generators write: every niah sample yields its queried needles' depths."""
    from posbench.harness.evaluation.data import default_data_root
    from posbench.tasks import build_samples

    paths = {"data": str(default_data_root())}
    for task, expected in (("niah_single_2", 1), ("niah_multikey_1", 1), ("niah_multivalue", 4)):
        sample = build_samples(registry.get(task), tokenizer, length=1024, num_samples=1, data_paths=paths)[0]
        depths = needle_depths({"metadata": sample.metadata})
        assert len(depths) == expected and all(0 <= d <= 100 for d in depths), (task, depths)
    vt = build_samples(registry.get("vt"), tokenizer, length=1024, num_samples=1, data_paths=paths)[0]
    assert needle_depths({"metadata": vt.metadata}) == []


def test_needle_frame_means_by_depth_and_length(tmp_path):
    def depth(model, task, length, i):     # rope fails deep needles at 8K; depths cycle 0, 50, 100
        d = [0.0, 50.0, 100.0][i % 3]
        return d, 0.0 if (model == "rope-1b" and length == "8192" and d == 100.0) else 1.0
    run = make_run(tmp_path / "r", n=6, lengths=(4096, 8192), depth=depth, models=MODELS[:2],
                   skipped={("rope-1b", "niah_single_1", "8192"): 2})
    needles = needle_frame(posbench.results.load(run))
    means = needles.groupby(["model", "label", "length"])["score"].agg(["mean", "size"])
    assert means.loc[("rope-1b", "100%", "8192"), "mean"] == 0 and means.loc[("rope-1b", "100%", "4096"), "mean"] == 100
    assert (means["size"] == 4).all()      # 2 needle tasks x 2 samples per depth; skipped samples left out


def test_plots_are_valid_pngs_and_linked_from_the_report(tmp_path):
    import matplotlib.image as mpimg
    run = make_run(tmp_path / "r", lengths=(4096, 8192), models=MODELS[:2])
    written = write_report([run], formats=("md",))
    pngs = [p for p in written if p.suffix == ".png"]
    assert "needle_heatmaps.png" in [p.name for p in pngs] and len(pngs) == 6   # 5 distinct columns + 1 heatmap
    for path in pngs:
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 0.01
    md = (run / "report.md").read_text()
    assert all(f"]({p.relative_to(run).as_posix()})" in md for p in pngs)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(tmp_path):
    """One self-contained file: Chromium draws it (non-blank screenshot), the tables and headline are in the DOM, and
    the sorting script ran (it marks each table)."""
    import matplotlib.image as mpimg
    run = binary_run(tmp_path / "r", rope=lambda i: i % 2, repo=lambda i: 1, lengths=(4096, 8192))
    page = tmp_path / "elsewhere" / "report.html"
    write_report([run], out=page.parent, formats=("html",))
    text = page.read_text()
    assert "src=\"data:image/png;base64," in text and "http" not in text.replace("http-equiv", "")
    shutil.rmtree(page.parent / "plots")                     # nothing beside the file is needed
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600", f"--user-data-dir={tmp_path}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "Headline" in dom and "scores best on avg" in dom and 'data-sortable="yes"' in dom
    assert dom.count("<table") == text.count("<table") and "ruler = ruler_niah = avg" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    img = mpimg.imread(shot)
    assert img.shape[:2] == (1600, 1200) and img.std() > 0.05


# ---- the command and bad input ---------------------------------------------------------------------------------------

def test_layer_map_summaries():
    assert layer_map([]) == "—"
    assert layer_map(["rope"] * 16) == "all 16 layers rope"
    assert layer_map(["rope", "rope", "nope", "nope", "rope", "repo"]) == \
        "6 layers: rope×3, nope×2, repo×1 (nope at 2-3; repo at 5)"
    assert layer_map([{"scheme": "nope"}, {"scheme": "rope"}, {"scheme": "rope"}]).endswith("(nope at 0)")


def test_report_never_modifies_sample_logs(tmp_path):
    run = small_run(tmp_path / "r", lengths=(4096,), skipped={("rope", "t_a", "4096"): 1})
    log = RunDir(run).sample_log("rope", "t_a", 4096).path
    with open(log, "ab") as f:
        f.write(b'{"index": 9, "partial')                 # a write in progress
    before = log.read_bytes()
    write_report([run], plots=False)
    assert log.read_bytes() == before
    skipped = md_tables((run / "report.md").read_text())["## Skipped and missing"].iloc[0]
    assert skipped["reasons"] == "1× prompt has N tokens, over the budget of N at length N"


def _edit_row(run, **changes):
    rows = RunDir(run).read_summary()
    rows[0].update(changes)
    RunDir(run).write_summary(rows)


@pytest.mark.parametrize("damage, message", [
    (lambda run: None, "no such run directory"),
    (lambda run: (run / "summary.csv").unlink(), r"summary.csv: not found"),
    (lambda run: (run / "summary.csv").write_text(""), r"summary.csv: empty file"),
    (lambda run: (run / "summary.csv").write_text("model,task,length\n"), r"summary.csv: missing column\(s\) score, n"),
    (lambda run: _edit_row(run, score="abc"), r"summary.csv line 2, column 'score': not a finite number: 'abc'"),
    (lambda run: _edit_row(run, n="3.5"), r"summary.csv line 2, column 'n': not a whole number: '3.5'"),
    (lambda run: _edit_row(run, length="4k"), r"summary.csv line 2: length must be a number of tokens"),
    (lambda run: (run / "summary.csv").open("a").write("rope,rope,t_a\n"), r"summary.csv line \d+: empty 'length'"),
    (lambda run: (run / "manifest.json").write_text("{oops"), r"manifest.json: not valid JSON"),
    (lambda run: RunDir(run).sample_log("rope", "t_a", 4096).path.open("a").write("not json\n"),
     r"t_a/4096.jsonl line 5: not valid JSON"),
])
def test_bad_input_names_the_file(tmp_path, damage, message):
    run = tmp_path / "r"
    if message != "no such run directory":
        small_run(run, lengths=(4096,))
    damage(run)
    with pytest.raises(ReportError, match=message):
        write_report([run], plots=False)


def test_cli_prints_report_errors_as_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'}: no such run directory\n"
    run = small_run(tmp_path / "r", lengths=(4096,))
    assert main(["report", str(run), "--format", "md,pdf"]) == 2
    assert "unknown format(s) pdf" in capsys.readouterr().err


def test_manifest_optional_keys_may_be_missing(tmp_path):
    run = small_run(tmp_path / "r", lengths=(4096,))
    (run / "manifest.json").write_text(json.dumps({}))
    tables = md_tables(render_markdown(blocks(posbench.results.load(run))))
    assert tables["## Runs"].at[0, "git commit"] == "—"
    assert number(tables["## Context length 4K (4096 tokens)"].set_index("scheme").at["hybrid", "g1"]) == 68.5
    (run / "manifest.json").unlink()
    assert "rope" in set(posbench.results.load(run).models["model"])
