"""The benchmark and GPU-check code, run end to end on CPU with fake timers so that it cannot rot between GPU runs.

Timings here are meaningless (the timers return 1 ms); the tests check that every section runs, that rows are
well formed, and that the report renders. The Triton-backed rows need TRITON_INTERPRET=1 on CPU.
"""
import os

import pytest
import torch

from posbench.kernels import bench, gpu_check, parity
from posbench.kernels.rotary import triton_available

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
pytestmark = pytest.mark.skipif(not (INTERPRET and triton_available()),
                                reason="runs the Triton kernels on CPU: needs triton and TRITON_INTERPRET=1")


@pytest.fixture
def fake_gpu(monkeypatch):
    def fake_timer(fn):
        fn()
        fn()
        return 1.0

    monkeypatch.setattr(bench, "DEVICE", "cpu")
    monkeypatch.setattr(bench, "require_cuda", lambda: None)
    monkeypatch.setattr(bench, "_l2_bytes", lambda: 1 << 20)
    monkeypatch.setattr(bench, "time_graph_ms", fake_timer)
    monkeypatch.setattr(bench, "time_eager_ms", fake_timer)


def test_benchmarks_run_end_to_end(fake_gpu):
    rows = bench.rotary_bench((32,), num_heads=4, head_dim=32, copy_gb_s=100.0, include_compile=False)
    assert {(r["op"], r["positions"], r["impl"]) for r in rows} >= {
        ("rotary q+k", "integer", "triton"), ("rotary q+k", "learned", "triton"),
        ("qk-norm + rotary", "learned", "triton fused"), ("rotary q+k backward", "learned", "triton")}
    assert all("error" not in r and r["graph_gb_s"] > 0 and r["bytes"] > 0 for r in rows), rows
    sweep = bench.rotary_config_sweep(32, num_heads=4, head_dim=32, copy_gb_s=100.0)
    assert all("error" not in r and r["config"] for r in sweep)
    for rows in (bench.attention_bench((32,), num_heads=2, head_dim=16),
                 bench.decode_attention_bench((32,), num_heads=4, num_kv_heads=2, head_dim=16),
                 bench.rotary_decode_latency(num_heads=4, head_dim=32)):
        assert rows and all("error" not in r for r in rows), rows
    assert bench.copy_bandwidth(1 << 16)["graph_gb_s"] > 0
    assert bench.to_markdown(sweep).count("\n") == len(sweep) + 1


def test_fused_benchmarks_run_end_to_end(fake_gpu):
    rows = bench.fused_bench((16,), hidden=48, intermediate=96, copy_gb_s=100.0, include_compile=False)
    ops = {(r["op"], r["impl"]) for r in rows}
    for op in ("rms_norm", "add_rms_norm (post-norm)", "add_then_rms_norm (pre-norm)", "swiglu", "rms_norm backward",
               "add_then_rms_norm backward", "swiglu backward"):
        assert (op, "triton") in ops and any(o == op and i.startswith("eager reference") for o, i in ops), op
    assert all("error" not in r and r["bytes"] > 0 and (r.get("graph_gb_s") or r["eager_gb_s"]) > 0 for r in rows)
    savings = bench.block_savings(rows, layers=16)
    assert {r["block"] for r in savings} == {"olmo2", "llama"}
    assert all(r["saved_ms_per_prefill"] == 0.0 for r in savings)  # every fake timing is 1 ms
    sweep = bench.fused_config_sweep(16, hidden=48, intermediate=96, copy_gb_s=100.0)
    assert sweep and all("error" not in r and r["config"] and "backward" not in r["op"] for r in sweep)


def test_gpu_check_report_renders(fake_gpu, monkeypatch):
    # gpu_check's production-shaped cases (4096 rows) take minutes in the interpreter: small ones stand in here.
    monkeypatch.setattr(parity, "GPU_CHECK_FUSED_CASES", parity.FUSED_CASES[:1])
    monkeypatch.setattr(parity, "GPU_CHECK_SWIGLU_CASES", parity.SWIGLU_CASES[:1])
    checks = gpu_check.parity_checks(quick=True, device="cpu")
    kernel_checks = [c for c in checks if not c["kind"].startswith("attention")]
    assert kernel_checks and all(c["status"] == "pass" for c in kernel_checks), kernel_checks
    row_16k = {"op": "rotary q+k", "positions": "learned", "impl": "triton", "seq_len": 16384, "graph_us": 80.0,
               "graph_gb_s": 3000.0, "frac_of_copy": 0.9}
    fused_16k = {"op": "add_rms_norm (post-norm)", "impl": "triton", "seq_len": 16384, "graph_us": 30.0,
                 "graph_gb_s": 2500.0, "frac_of_copy": 0.85}
    saving = {"block": "olmo2", "seq_len": 16384, "eager_us": 900.0, "fused_us": 300.0, "saved_us_per_layer": 600.0,
              "saved_ms_per_prefill": 9.6, "layers": 16}
    report = {"env": {"device": "cpu (fake)", "torch": torch.__version__, "triton": "-", "cudnn": None},
              "checks": checks, "skipped": ["rotary_config_sweep"], "errors": [], "elapsed_s": 1.0,
              "bench": {"copy": bench.copy_bandwidth(1 << 16), "rotary": [row_16k], "fused": [fused_16k],
                        "fused_block_savings": [saving],
                        "attention": bench.attention_bench((32,), num_heads=2, head_dim=16)}}
    assert any(c["kind"].startswith("add_rms_norm") for c in kernel_checks)
    assert any(c["kind"].startswith("swiglu") for c in kernel_checks)
    summary = "\n".join(gpu_check._summary_lines(report))
    assert "kernel parity:" in summary and "16K rotary q+k" in summary and "skipped (budget)" in summary
    assert "16K add_rms_norm" in summary and "saves 9.60 ms/prefill" in summary
    assert "## rotary" in gpu_check._markdown(report) and "## fused_block_savings" in gpu_check._markdown(report)
