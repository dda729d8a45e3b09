"""GPU check: the kernel parity checks natively on CUDA, then the microbenchmarks; JSON and markdown under --out.

    python -m posbench.kernels.gpu_check --out DIR [--quick] [--budget-s 170]

Run with TRITON_INTERPRET unset. Every check and benchmark section is caught and recorded, so one failure never stops
the rest; a short table is printed last. Benchmark sections run in order of importance and one whose estimated time
would overrun --budget-s is skipped and listed (the default keeps the whole run under 3 minutes on an H100).
Exit status: 0 all parity checks passed, 1 some failed, 2 no usable GPU.
"""
import argparse
import functools
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from . import bench, parity

# Rough seconds per benchmark section on an H100 (Triton compilation included), for the budget.
_SECTION_ESTIMATE_S = {"copy": 3, "rotary": 50, "fused": 35, "attention": 10, "decode_attention": 6,
                       "rotary_decode": 4, "rotary_config_sweep": 40, "fused_config_sweep": 15}
_ATTENTION_BACKENDS = ("auto", "default", "cudnn", "flash", "efficient", "math")


def _run_check(kind: str, name: str, dtype, fn, tolerance: float) -> dict:
    record = {"kind": kind, "case": name, "dtype": str(dtype).removeprefix("torch."), "tolerance": tolerance}
    try:
        errors = fn()
        record["seed"] = errors.pop("seed")
        record["errors"] = errors
        worst = max(errors.values())
        record["worst"] = worst
        record["status"] = "pass" if worst < tolerance else "FAIL"
    except Exception as e:  # recorded, and the remaining checks still run
        record.update(status="ERROR", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-2000:])
    return record


def parity_checks(quick: bool, device: str = "cuda") -> list[dict]:
    records = []
    dtypes = (torch.float32, torch.bfloat16)
    rotary_cases = parity.ROTARY_CASES[:4] if quick else parity.ROTARY_CASES
    checks = [("rotary forward", parity.check_rotary_forward), ("rotary gradients", parity.check_rotary_backward)]
    for case in rotary_cases:
        for dtype in dtypes:
            for kind, check in checks:
                records.append(_run_check(kind, case.name, dtype, functools.partial(check, case, dtype, device),
                                          parity.TOLERANCE[dtype]))
    checks = [("norm+rotary forward", parity.check_norm_forward),
              ("norm+rotary gradients", parity.check_norm_backward)]
    for case in parity.NORM_CASES:
        for dtype in dtypes:
            for kind, check in checks:
                records.append(_run_check(kind, case.name, dtype, functools.partial(check, case, dtype, device),
                                          parity.TOLERANCE[dtype]))
    # Fused norms and SwiGLU (quick: the production-shaped cases only).
    norm_cases = parity.GPU_CHECK_FUSED_CASES[:1] if quick else parity.GPU_CHECK_FUSED_CASES
    for case in norm_cases:
        for dtype in dtypes:
            for op, cast_before_weight in parity.GPU_CHECK_NORMS:
                kind = f"{op}{' cast-before' if cast_before_weight else ''} fwd+grad"
                records.append(_run_check(kind, case.name, dtype, functools.partial(
                    parity.check_fused_norm, op, cast_before_weight, case, dtype, device), parity.TOLERANCE[dtype]))
    for case in parity.GPU_CHECK_SWIGLU_CASES[:1] if quick else parity.GPU_CHECK_SWIGLU_CASES:
        for dtype in dtypes:
            records.append(_run_check("swiglu fwd+grad", case.name, dtype,
                                      functools.partial(parity.check_swiglu, case, dtype, device),
                                      parity.TOLERANCE[dtype]))
    records.append(_run_check("reference vs float64", "rotary_reference", torch.float32,
                              functools.partial(parity.check_reference_float64, device),
                              parity.REFERENCE_TOLERANCE))
    # Attention: every backend on every case; a backend that cannot take a case raises, which is recorded as an
    # ERROR row naming the case -- the support matrix that the "auto" priority list relies on.
    for case in parity.ATTENTION_CASES:
        for backend in _ATTENTION_BACKENDS:
            records.append(_run_check(f"attention {backend}", case[0], torch.bfloat16,
                                      functools.partial(parity.check_attention, case, torch.bfloat16, device,
                                                        backend=backend),
                                      parity.TOLERANCE[torch.bfloat16]))
    return records


def compiled_kernel_resources() -> list[dict]:
    """Registers and spills of every rotary and fused kernel variant the JIT compiled during this run."""
    from . import fused_triton as ft
    from . import rotary_triton as rt
    rows = []
    names = [(rt, n) for n in ("_rotary_qk_kernel", "_qk_norm_rotary_fwd_kernel", "_qk_norm_rotary_bwd_kernel")]
    names += [(ft, n) for n in ("_rms_norm_fwd_kernel", "_rms_norm_bwd_kernel", "_swiglu_fwd_kernel",
                                "_swiglu_bwd_kernel")]
    for module, name in names:
        kernel = getattr(module, name)
        for kernel_cache, *_ in kernel.device_caches.values():
            for compiled in kernel_cache.values():
                compiled._init_handles()
                meta = {kernel.arg_names[path[0]]: v for path, v in compiled.src.constants.items()
                        if kernel.arg_names[path[0]].isupper()}
                rows.append({"kernel": name, "regs": compiled.n_regs, "spills": compiled.n_spills,
                             "num_warps": compiled.metadata.num_warps, "constexprs": str(meta)})
    return rows


def _summary_lines(report: dict) -> list[str]:
    checks = report["checks"]
    passed = sum(c["status"] == "pass" for c in checks if not c["kind"].startswith("attention"))
    total = sum(not c["kind"].startswith("attention") for c in checks)
    env = report["env"]
    lines = [f"error: {e}" for e in report["errors"]]
    if not env:
        return lines
    lines += [f"device: {env['device']}  torch {env['torch']}  triton {env['triton']}  cudnn {env['cudnn']}",
              f"kernel parity: {passed}/{total} pass"]
    for c in checks:
        if c["status"] != "pass" and not c["kind"].startswith("attention"):
            lines.append(f"  {c['status']} {c['kind']} {c['case']} {c['dtype']}: {c.get('errors') or c.get('error')}")
    worst = {}
    for c in checks:
        if "worst" in c and not c["kind"].startswith("attention"):
            key = (c["kind"], c["dtype"])
            worst[key] = max(worst.get(key, 0.0), c["worst"])
    for (kind, dtype), w in sorted(worst.items()):
        lines.append(f"  worst {kind:24} {dtype:9} {w:.2e}")
    attn = {}
    for c in checks:
        if c["kind"].startswith("attention"):
            attn.setdefault(c["kind"].split()[1], []).append("ok" if c["status"] == "pass" else c["status"])
    lines.append("attention backends (cases " + ",".join(c[0] for c in parity.ATTENTION_CASES) + "):")
    lines += [f"  {b:9} {' '.join(v)}" for b, v in attn.items()]
    b = report["bench"]
    if "copy" in b and "graph_gb_s" in b["copy"]:
        lines.append(f"copy: {b['copy']['graph_gb_s']:.0f} GB/s (graph), {b['copy']['eager_gb_s']:.0f} GB/s "
                     "(do_bench)")
    for r in b.get("rotary", []):
        if r.get("seq_len") == 16384 and "graph_us" in r:
            lines.append(f"  16K {r['op']:26} {r['positions']:8} {r['impl']:24} {r['graph_us']:8.1f} us "
                         f"{r['graph_gb_s']:6.0f} GB/s {100 * r['frac_of_copy']:5.1f}% of copy")
    for r in b.get("fused", []):
        if r.get("seq_len") == 16384 and "graph_us" in r:
            lines.append(f"  16K {r['op']:28} {r['impl']:24} {r['graph_us']:8.1f} us {r['graph_gb_s']:6.0f} GB/s "
                         f"{100 * r['frac_of_copy']:5.1f}% of copy")
    for r in b.get("fused_block_savings", []):
        lines.append(f"  {r['block']:6} block S={r['seq_len']:5}: norms+SwiGLU eager {r['eager_us']:7.1f} us -> fused "
                     f"{r['fused_us']:6.1f} us; x{r['layers']} layers saves {r['saved_ms_per_prefill']:.2f} ms/prefill")
    for r in b.get("attention", []):
        if "tflop_s" in r:
            lines.append(f"  attention S={r['seq_len']:5} {r['backend']:9} {r['eager_ms']:.3f} ms "
                         f"{r['tflop_s']:.0f} TFLOP/s")
    if report["skipped"]:
        lines.append(f"skipped (budget): {', '.join(report['skipped'])}")
    lines.append(f"elapsed {report['elapsed_s']:.0f} s")
    return lines


def _markdown(report: dict) -> str:
    parts = ["# posbench kernels: GPU check", "", "```", *_summary_lines(report), "```", "",
             "## Parity checks", "",
             bench.to_markdown([{k: c.get(k) for k in ("status", "kind", "case", "dtype", "worst", "tolerance",
                                                       "seed", "error")} for c in report["checks"]])]
    for name, rows in report["bench"].items():
        parts += ["", f"## {name}", "", bench.to_markdown(rows if isinstance(rows, list) else [rows])]
    if report.get("kernels"):
        parts += ["", "## Compiled Triton kernels", "", bench.to_markdown(report["kernels"])]
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--quick", action="store_true", help="fewer parity cases; benchmarks at 16K only")
    parser.add_argument("--budget-s", type=float, default=170.0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    report = {"env": {}, "checks": [], "bench": {}, "skipped": [], "errors": []}

    def finish(status: int) -> int:
        report["elapsed_s"] = time.time() - start
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        (out / "gpu_check.md").write_text(_markdown(report))
        print("\n".join(_summary_lines(report)))
        return status

    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        report["errors"].append("TRITON_INTERPRET=1 is set: unset it so that the kernels compile for the GPU")
        return finish(2)
    try:
        report["env"] = bench.device_info()
    except RuntimeError as e:
        report["errors"].append(str(e))
        return finish(2)

    report["checks"] = parity_checks(args.quick)
    seq_lens = (16384,) if args.quick else (4096, 8192, 16384)
    copy_gb_s = None
    sections = [
        ("copy", lambda: bench.copy_bandwidth()),
        ("rotary", lambda: bench.rotary_bench(seq_lens, copy_gb_s=copy_gb_s, include_compile=not args.quick)),
        ("fused", lambda: bench.fused_bench(seq_lens, copy_gb_s=copy_gb_s, include_compile=not args.quick,
                                            eager=not args.quick)),
        ("attention", lambda: bench.attention_bench(seq_lens)),
        ("decode_attention", lambda: bench.decode_attention_bench()),
        ("rotary_decode", lambda: bench.rotary_decode_latency()),
        ("rotary_config_sweep", lambda: bench.rotary_config_sweep(16384, copy_gb_s=copy_gb_s)),
        ("fused_config_sweep", lambda: bench.fused_config_sweep(16384, copy_gb_s=copy_gb_s)),
    ]
    for name, fn in sections:
        if time.time() - start + _SECTION_ESTIMATE_S[name] > args.budget_s:
            report["skipped"].append(name)
            continue
        try:
            report["bench"][name] = fn()
            if name == "copy":
                copy_gb_s = report["bench"]["copy"]["gb_s"]
            if name == "fused":
                report["bench"]["fused_block_savings"] = bench.block_savings(report["bench"]["fused"])
        except Exception as e:
            report["bench"][name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
        torch.cuda.empty_cache()
    try:
        report["kernels"] = compiled_kernel_resources()
    except Exception as e:  # triton internals differ between versions: informative only
        report["errors"].append(f"compiled kernel resources unavailable: {type(e).__name__}: {e}")
    failed = any(c["status"] != "pass" for c in report["checks"] if not c["kind"].startswith("attention"))
    return finish(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
