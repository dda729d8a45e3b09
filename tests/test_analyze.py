"""`eval.py analyze`: the position statistics and the probe's attention against plain references on fresh random
inputs, the ablations against what they must equal, and the verdict on the shipped RePo reference model (collapsed)
and on a copy whose learned positions were planted 100x larger (in use: its answers now depend on them)."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy.stats import spearmanr
from tiny_checkpoints import VOCAB, sakana_checkpoint

from posbench.harness.analysis.analyze import AnalyzeOptions, analyze_model, needle_spans, verdict
from posbench.harness.analysis.positions import head_stats, rank_correlation
from posbench.harness.analysis.probe import Probe, distance_bins
from posbench.harness.cli import main
from posbench.harness.core.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_REPO = ROOT / "models" / "reference" / "repo"


# ---- position statistics ----------------------------------------------------------------------------------------

def test_rank_correlation_matches_scipy_with_and_without_ties():
    torch.manual_seed(0)
    values = torch.randn(200, 6)
    values[:, 3] = torch.randint(0, 5, (200,)).float()        # many ties
    values[:, 4] = torch.arange(200.0) + 0.1 * torch.randn(200)
    values[:, 5] = 7.0                                          # constant: rho defined as 0
    rho = rank_correlation(values)
    index = torch.arange(200)
    for p in range(5):
        assert abs(float(rho[p]) - spearmanr(index, values[:, p]).statistic) < 1e-9, p
    assert float(rho[5]) == 0.0


def test_head_classes():
    n = 1000
    torch.manual_seed(1)
    heads = torch.stack([torch.arange(n) * 0.3 + torch.randn(n),        # grows with the index: monotonic
                         -torch.arange(n) * 2.0,                         # falls with it: monotonic too
                         torch.randn(n) * 3,                             # a few units wide: constant
                         torch.randn(n) * 500], dim=1)                   # wide and unordered: mixed
    stats = head_stats(heads)
    assert [h["class"] for h in stats] == ["monotonic", "monotonic", "constant", "mixed"]
    assert stats[1]["range"] == pytest.approx(2.0 * (n - 1))


# ---- the probe ---------------------------------------------------------------------------------------------------

def reference_probs(q, k):
    """softmax(q k^T / sqrt(D)) with causal masking over all T keys, q being the last n rows; GQA by repetition."""
    n, T = q.shape[2], k.shape[2]
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    rows = torch.arange(T - n, T)[:, None]
    return scores.masked_fill(torch.arange(T)[None, :] > rows, float("-inf")).softmax(-1)[0]      # [H, n, T]


def test_probe_attention_matches_the_reference():
    torch.manual_seed(2)
    T, n, H, Hkv, D = 300, 300, 4, 2, 16
    q, k = torch.randn(1, H, n, D) * 2, torch.randn(1, Hkv, T, D) * 2
    spans = {"needle": torch.tensor([10, 11, 12, 200]), "distractor": torch.tensor([50, 51]),
             "haystack": torch.arange(100, 150)}
    probe = Probe(spans=spans, query_from=290, locality_rows=7, chunk=3)
    probe.attention(0, q, k)
    probs = reference_probs(q, k)
    assert probe.span_mass[0]["rows"] == 10
    for name, index in spans.items():
        want = probs[:, 290:, index].sum(-1).sum(-1)
        assert torch.allclose(probe.span_mass[0][name].double(), want, atol=1e-5), name
    rows = [round(i * (n - 1) / 6) for i in range(7)]
    sums, counts = probe.locality[0]
    for b, (lo, hi) in enumerate(distance_bins(T)):
        pairs = [(r, j) for r in rows for j in range(T) if lo <= r - j <= hi]
        assert counts[b] == len(pairs)
        want = sum(float(probs[:, r, j].mean()) for r, j in pairs)
        assert abs(float(sums[b]) - want) < 1e-4, (lo, hi)


def test_probe_sees_cached_decoding_rows():
    """A decode step (n = 1) with T cached keys: the query row is the last one."""
    torch.manual_seed(3)
    q, k = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 40, 8)
    probe = Probe(spans={"needle": torch.tensor([3, 39])}, query_from=39)
    probe.attention(5, q, k)
    want = reference_probs(q, k)[:, 0, [3, 39]].sum(-1)
    assert torch.allclose(probe.span_mass[5]["needle"].double(), want, atol=1e-6)


@torch.no_grad()
def test_replacements_equal_what_they_mean(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=3, start_layer=0)
    model = load_model(path)[0]
    ids = torch.randint(0, VOCAB, (1, 24))
    base, positions = model(ids, return_positions=True)
    zeros = model(ids, probe=Probe({0: "zeros", 1: "zeros", 2: "zeros"}))
    nope = model(ids, probe=Probe({0: "nope", 1: "nope", 2: "nope"}))
    assert torch.allclose(zeros, nope, atol=1e-5), "a zero position is no rotation"
    assert (zeros - base).abs().max() > 1e-2, "the planted positions should matter in this model"
    with pytest.warns(UserWarning, match="ignoring the RePo weights"):
        rope = load_model(path, scheme="rope")[0]
    index = model(ids, probe=Probe({0: "index", 1: "index", 2: "index"}))
    assert torch.allclose(index, rope(ids), atol=1e-5), "the integer index in every layer is RoPE"
    _, shuffled = model(ids, return_positions=True, probe=Probe({0: "shuffled"}, shuffle_seed=4))
    order = torch.randperm(24, generator=torch.Generator().manual_seed(4 * 1000 + 0))
    assert torch.equal(shuffled[0], positions[0][:, order])


def test_needle_spans_mark_the_asked_needle(registry):
    from posbench.harness.core.checkpoint import load_tokenizer
    from posbench.tasks import build_samples

    tokenizer = load_tokenizer(REFERENCE_REPO)   # shipped with the repo: no shared data needed
    sample = build_samples(registry.get("niah_multikey_2"), tokenizer, length=1024, num_samples=1,
                           sampling="fill")[0]
    spans = needle_spans(sample)
    key, value = sample.metadata["queries"][0], sample.answers[0]
    assert [sample.prompt[a:b] for a, b in spans["needle"]] == [
        f"One of the special magic numbers for {key} is: {value}."]
    assert len(spans["distractor"]) > 5
    assert all(key not in sample.prompt[a:b] for a, b in spans["distractor"])
    vt = build_samples(registry.get("vt"), tokenizer, length=1024, num_samples=1, sampling="fill")[0]
    lines = [vt.prompt[a:b] for a, b in needle_spans(vt)["needle"]]
    assert lines == [line.strip() for line in vt.metadata["chains"][0]]


# ---- the verdict -------------------------------------------------------------------------------------------------

def ablation(loss_ci, score_ci):
    return {"answer_loss_delta_ci": list(loss_ci), "score_delta_ci": list(score_ci)}


def test_verdict_reads_the_intervals():
    flat = ablation((-0.01, 0.02), (0, 0))
    assert verdict({"zeros": flat, "shuffled": flat}, 0.05) == "collapsed"
    assert verdict({"zeros": flat, "shuffled": ablation((0.06, 0.3), (0, 0))}, 0.05) == "in use"
    assert verdict({"zeros": ablation((-2.0, -0.5), (0, 0)), "shuffled": flat}, 0.05) == "in use"
    assert verdict({"zeros": ablation((-0.01, 0.01), (-40, -20)), "shuffled": flat}, 0.05) == "in use"
    assert verdict({"zeros": ablation((0.01, 0.04), (-20, 0)), "shuffled": flat}, 0.05) == "collapsed"
    assert verdict({"nope layers 0-1": ablation((3, 4), (-100, -100))}, 0.05) is None


OPTIONS = dict(tasks=["niah_single_1"], lengths=[512], samples=3, max_new_tokens=12, locality_rows=16,
               device="cpu")


def test_reference_repo_is_collapsed(tmp_path):
    result = analyze_model(REFERENCE_REPO, lambda length: (None, {}), "repo", AnalyzeOptions(**OPTIONS),
                           tmp_path / "repo", echo=lambda line: None)
    assert result["verdict"] == "collapsed"
    saved = json.loads((tmp_path / "repo" / "analysis.json").read_text())
    assert {k: saved[k] for k in ("model", "path", "scheme", "verdict", "lengths", "samples")} == {
        "model": "repo", "path": str(REFERENCE_REPO), "scheme": "repo", "verdict": "collapsed", "lengths": [512],
        "samples": 3}
    assert 0 < saved["position_range"]["512"] < 100, "the collapsed model's positions span a few units"
    assert saved["per_length"]["512"]["positions"]["class_share"]["monotonic"] == 0
    assert saved["ablations"]["index"]["answer_loss_delta_ci"][0] > 1, "large positions break it"
    for name in ("analysis.md", "positions_512_0.png", "position_range.png", "locality.png"):
        assert (tmp_path / "repo" / name).stat().st_size > 0


def test_planted_positions_are_in_use(tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(REFERENCE_REPO, planted)
    weights = load_file(planted / "model.safetensors")
    for name in weights:
        if name.endswith("final_map.weight"):
            weights[name] = weights[name] * 100
    save_file(weights, planted / "model.safetensors", metadata={"format": "pt"})
    result = analyze_model(planted, lambda length: (None, {}), "planted", AnalyzeOptions(**OPTIONS),
                           tmp_path / "out", echo=lambda line: None)
    assert result["verdict"] == "in use"
    assert result["position_range"]["512"] > 300
    assert result["ablations"]["zeros"]["score_delta_ci"][0] > 0, "zeros give the trained behaviour back"


def test_cli_writes_analysis_and_rejects_bad_layers(tmp_path, capsys):
    rope = ROOT / "models" / "reference" / "rope"
    code = main(["analyze", str(rope), "--task", "niah_single_1", "--lengths", "512", "--samples", "1",
                 "--max-new-tokens", "4", "--nope-layers", "9", "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: --nope-layers: layer 9 is outside the model's layers 0-5"
    assert main(["analyze", str(rope), "--task", "niah_single_1", "--lengths", "512", "--samples", "1",
                 "--max-new-tokens", "4", "--nope-layers", "0-2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "rope" / "analysis.json").read_text())
    assert result["verdict"] is None and result["position_range"] == {}
    assert list(result["ablations"]) == ["nope layers 0-2"]
    assert main(["analyze", str(rope), "--task", "niah_single_1", "--lengths", "512", "--nope-layers", "a-b",
                 "--out", str(tmp_path)]) == 2
    assert "error: --nope-layers: expected layers like 0-1 or 0,2, got 'a-b'" in capsys.readouterr().err


def test_sweep_key_analyzes_every_model_into_the_run_dir(tmp_path):
    from posbench.harness.evaluation.runner import run_sweep
    from posbench.harness.evaluation.sweep import SweepError, parse_sweep

    raw = {"models": [{"label": "repo", "path": str(REFERENCE_REPO)}], "tasks": ["niah_single_1"],
           "lengths": [512], "samples": 1, "device": "cpu",
           "analyze": {"tasks": ["niah_single_1"], "samples": 1}}
    with pytest.raises(SweepError, match="analyze: unknown key 'sample'; allowed: tasks, lengths, samples"):
        parse_sweep({**raw, "analyze": {"sample": 1}}, "s.yaml")
    with pytest.raises(SweepError, match="analyze.samples must be a positive int, got 0"):
        parse_sweep({**raw, "analyze": {"samples": 0}}, "s.yaml")
    assert parse_sweep({**raw, "analyze": True}, "s.yaml").analyze == {}
    assert parse_sweep({k: v for k, v in raw.items() if k != "analyze"}, "s.yaml").analyze is None
    from posbench.harness.analysis.analyze import analyze_sweep

    lines = []

    def run(sweep):   # what `eval.py sweep` does with the key: analyze_sweep once the run has finished
        return run_sweep(sweep, tmp_path / "run", progress=False, echo=lines.append,
                         after=lambda root, specs, device: analyze_sweep(sweep, specs, root, device, lines.append))
    root = run(parse_sweep(raw, "s.yaml"))
    result = json.loads((root / "analysis" / "repo" / "analysis.json").read_text())
    assert result["model"] == "repo" and result["verdict"] in ("collapsed", "in use")
    assert set(result["position_range"]) == {"512"} and result["samples"] == 1
    run(parse_sweep(raw, "s.yaml"))  # resumed: kept
    assert lines[-1].startswith("analysis of repo: kept")


def test_lengths_run_apart_combine_into_the_joint_analysis(tmp_path):
    """Analysing 512 and 768 tokens in two runs and combining them gives what one run over both lengths gives."""
    from tiny_models import build_tiny_model

    from posbench.harness.analysis.analyze import combine_lengths

    path = build_tiny_model(tmp_path / "tiny", REFERENCE_REPO, scheme="repo,start_layer=1,init_std=0.5", layers=2)
    options = dict(OPTIONS, samples=2, max_new_tokens=3, locality_rows=4)
    run = lambda lengths, out: analyze_model(path, lambda length: (None, {}), "tiny",  # noqa: E731
                                             AnalyzeOptions(**{**options, "lengths": lengths}), tmp_path / out,
                                             echo=lambda line: None)
    joint = run([512, 768], "joint")
    run([512], "a"), run([768], "b")
    combined = combine_lengths([tmp_path / "b", tmp_path / "a"], tmp_path / "combined")
    for key in ("verdict", "position_range", "lengths", "ablations", "per_length"):
        assert combined[key] == joint[key], key
    assert (tmp_path / "combined" / "analysis.md").read_text().count("positions_") == 2
