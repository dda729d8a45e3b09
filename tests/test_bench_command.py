"""`eval.py bench` runs its code paths on CPU with a tiny model and writes its tables (speed is never asserted)."""
import json

from posbench.harness.cli import main


def test_bench_smoke_on_cpu(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--device", "cpu", "--shape", "tiny", "--lengths", "64",
                 "--schemes", "rope,nope,repo"]) == 0
    result = json.loads((out / "bench.json").read_text())
    assert {r["scheme"] for r in result["prefill"]} == {"rope", "nope", "repo"}
    assert all(r["prefill_ms"] > 0 and r["tokens_per_s"] > 0 for r in result["prefill"])
    assert {r["scheme"] for r in result["decode"]} == {"rope", "nope", "repo"}
    # transformers' model runs the same weights: in fp32 on CPU the logits agree closely.
    assert result["hf"][0]["logits_rel_diff"] < 1e-4
    assert {r["scheme"]: r["vs_rope"] for r in result["prefill"]}["rope"] == 1.0
    assert "## Prefill per scheme" in (out / "bench.md").read_text() and not result["errors"]


def test_bench_refuses_unknown_scheme_and_missing_gpu(tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path), "--device", "cpu", "--shape", "tiny", "--schemes", "alibi"]) == 2
    assert "unknown 'alibi'" in capsys.readouterr().err


def test_bench_profile_attributes_repo_extra_work(tmp_path):
    """--profile lists per-op time for RoPE and RePo; RePo's position maps show up as extra matrix-product launches
    (final_map in every RePo layer: the tiny model has 8 layers, RePo from layer 5)."""
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--device", "cpu", "--shape", "tiny", "--lengths", "64",
                 "--schemes", "rope,repo", "--no-hf", "--profile", "--reps", "2"]) == 0
    rows = json.loads((out / "bench.json").read_text())["profile"]
    totals = {r["kernel"]: r for r in rows if r["kernel"].startswith("(")}
    assert totals["(all kernels)"]["rope_ms"] > 0 and totals["(all kernels)"]["repo_ms"] > 0
    extra = sum(r["repo_launches"] - r["rope_launches"] for r in rows if "mm" in r["kernel"] or "linear" in r["kernel"]
                if "repo_launches" in r)
    assert extra >= 3
    assert "## Profile" in (out / "bench.md").read_text()
    assert all(r["reps"] == 2 for r in json.loads((out / "bench.json").read_text())["prefill"])
