"""Compile the rotary and fused norm/SwiGLU kernels for Hopper (sm_90) without a GPU and report the machine code.

    python -m posbench.kernels.compile_report [--seq-len 16384] [--heads 16] [--head-dim 128]

Triton's wheel carries ptxas and cuobjdump, so the exact launches the public functions would make (same constexprs,
same argument specialisation as the JIT) can be compiled here and read: registers per thread, local-memory (spill)
bytes, the width of global loads and stores (LDG.E.128 = 16 bytes per thread), and the static SASS instruction count
per program, from which a rough instruction-issue time is estimated. The launchers run on CPU tensors with the kernel
objects replaced by recorders, so nothing executes.
"""
import argparse
import collections
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager

import torch
import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend

from . import fused_triton as ft
from . import rotary_triton as rt

TARGET = GPUTarget("cuda", 90, 32)
KERNELS = ("_rotary_qk_kernel", "_qk_norm_rotary_fwd_kernel", "_qk_norm_rotary_bwd_kernel")
FUSED_KERNELS = ("_rms_norm_fwd_kernel", "_rms_norm_bwd_kernel", "_swiglu_fwd_kernel", "_swiglu_bwd_kernel")
# H100 SXM: 132 SMs x 4 warp schedulers, ~1.755 GHz sustained (1.98 boost): the instruction-issue rate used below.
SMS, SCHEDULERS, CLOCK_HZ = 132, 4, 1.755e9


class _Recorder:
    """Stands in for a @triton.jit kernel: `kernel[grid](*args, **kwargs)` records instead of launching."""

    def __init__(self, kernel, calls):
        self.kernel, self.calls = kernel, calls

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((self.kernel, grid, args, kwargs))


@contextmanager
def recording():
    modules = ((rt, KERNELS), (ft, FUSED_KERNELS))
    calls, saved = [], [(module, name, getattr(module, name)) for module, names in modules for name in names]
    try:
        for module, name, kernel in saved:
            setattr(module, name, _Recorder(kernel, calls))
        yield calls
    finally:
        for module, name, kernel in saved:
            setattr(module, name, kernel)


def compile_call(kernel, args, kwargs):
    """Specialise the arguments as the JIT would (ints == 1 become constexpr, 16-divisible values get the
    divisibility attribute; tensors are assumed 16-byte aligned, as torch allocations are) and compile."""
    backend = type(make_backend(TARGET))
    options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
    values = list(args) + [kwargs.get(p.name, p.default) for p in kernel.params[len(args):]]
    signature, constexprs, attrs = {}, {}, {}
    for i, (param, value) in enumerate(zip(kernel.params, values, strict=True)):
        if param.is_constexpr:
            kind, attr = "constexpr", None
        else:
            kind, attr = native_specialize_impl(backend, value, False, True, True)
        signature[param.name] = kind
        if kind == "constexpr":
            constexprs[(i,)] = value
        elif attr:
            attrs[(i,)] = backend.parse_attr(attr)
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=TARGET, options=options)


def _cuobjdump(flag: str, cubin: bytes) -> str:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([tool, flag, f.name], check=True, capture_output=True, text=True).stdout


def sass_summary(compiled) -> dict:
    cubin = compiled.asm["cubin"]
    usage = _cuobjdump("-res-usage", cubin)
    regs = int(re.search(r"REG:(\d+)", usage).group(1))
    stack = int(re.search(r"STACK:(\d+)", usage).group(1))
    local = int(re.search(r"LOCAL:(\d+)", usage).group(1))
    ops = collections.Counter()
    for line in _cuobjdump("-sass", cubin).splitlines():
        m = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if m:
            ops[m.group(1)] += 1
    mem = {op: n for op, n in ops.items() if op.startswith(("LDG", "STG"))}
    return dict(regs=regs, stack_bytes=stack, local_bytes=local, sass_instructions=sum(ops.values()),
                mufu=sum(n for op, n in ops.items() if op.startswith("MUFU")), global_memory_ops=mem)


def _cases(T: int, H: int, D: int, dtype=torch.bfloat16):
    """(label, thunk) pairs; each thunk calls a public launcher on CPU tensors (all launches are recorded)."""
    q = torch.empty(1, T, H, D, dtype=dtype)
    inv_freq = torch.ones(D // 2)
    int_pos = torch.zeros(1, T, dtype=torch.int64)
    float_pos = torch.zeros(1, T, H)
    proj = torch.empty(1, T, H * D, dtype=dtype)
    w = torch.ones(H * D, dtype=dtype)
    return [
        ("q/k fwd, integer positions", lambda: rt.rotary_qk_forward(q, q, int_pos, inv_freq)),
        ("q/k fwd, learned per-head positions", lambda: rt.rotary_qk_forward(q, q, float_pos, inv_freq)),
        ("q/k bwd, learned (with d pos)", lambda: rt.rotary_qk_backward(q, q, float_pos, inv_freq, q=q, k=q)),
        ("norm+rotary fwd, learned", lambda: rt.qk_norm_rotary_forward(proj, proj, w, w, 1e-6, float_pos, inv_freq,
                                                                        1.0, H, H)),
        ("norm+rotary bwd, learned", lambda: rt.qk_norm_rotary_backward(q, q, proj, proj, w, w, 1e-6, float_pos,
                                                                         inv_freq, 1.0, H, H, max_programs=528)),
    ]


def _fused_cases(T: int, hidden: int, intermediate: int, dtype=torch.bfloat16):
    """The norm and SwiGLU launches of one OLMo-2/Llama block at T tokens (backward with 4 programs per SM)."""
    x = torch.empty(T, hidden, dtype=dtype)
    w = torch.ones(hidden, dtype=dtype)
    rstd = torch.empty(T)
    gate = torch.empty(T, intermediate, dtype=dtype)
    bwd = ft.FusedConfig(ft.NORM_BACKWARD_CONFIG.tile, ft.NORM_BACKWARD_CONFIG.num_warps, max_programs=4 * SMS)
    return [
        ("rms_norm fwd (cast after weight)", lambda: ft.rms_norm_forward(x, w, 1e-6)),
        ("add_rms_norm fwd (post-norm)", lambda: ft.rms_norm_forward(x, w, 1e-6, residual=x, mode=ft.ADD_AFTER)),
        ("add_then_rms_norm fwd (pre-norm, cast before)", lambda: ft.rms_norm_forward(
            x, w, 1e-6, True, residual=x, mode=ft.ADD_BEFORE, store_rstd=True)),
        ("rms_norm bwd", lambda: ft.rms_norm_backward(x, x, w, rstd, config=bwd)),
        ("add_then_rms_norm bwd", lambda: ft.rms_norm_backward(x, x, w, rstd, True, grad_h=x, config=bwd)),
        ("swiglu fwd", lambda: ft.swiglu_forward(gate, gate)),
        ("swiglu bwd", lambda: ft.swiglu_backward(gate, gate, gate)),
    ]


def report(T: int = 16384, H: int = 16, D: int = 128, intermediate: int = 8192) -> list[dict]:
    """One row per launch. sass_instructions counts the whole kernel, including libdevice's large-angle fallback that
    typical inputs never run; common_path_instructions is the same kernel compiled without it
    (FAST_TRIG_ONLY). The issue-time
    estimate = common-path instructions x warps x programs (x loop trips) / (SMs x schedulers x clock): a floor on
    the time spent issuing instructions, to set against the memory time."""
    rows = []
    for label, thunk in _cases(T, H, D) + _fused_cases(T, H * D, intermediate):
        with recording() as calls:
            thunk()
        for kernel, grid, args, kwargs in calls:
            meta = {k: v for k, v in kwargs.items() if k.isupper()}
            warps = kwargs.get("num_warps", 4)
            summary = sass_summary(compile_call(kernel, args, dict(kwargs)))
            common = summary["sass_instructions"]
            if "FAST_TRIG_ONLY" in kernel.arg_names:
                common = sass_summary(compile_call(kernel, args, dict(kwargs, FAST_TRIG_ONLY=True)))[
                    "sass_instructions"]
            programs = 1
            for g in grid:
                programs *= g
            values = dict(zip(kernel.arg_names, list(args) + [kwargs.get(a) for a in kernel.arg_names[len(args):]],
                              strict=True))
            trips = values.get("iterations") or 1
            warp_instr = common * warps * programs * trips
            rows.append(dict(case=label, kernel=kernel.__name__, grid=tuple(grid), num_warps=warps, meta=meta,
                             common_path_instructions=common,
                             issue_us_estimate=warp_instr / (SMS * SCHEDULERS * CLOCK_HZ) * 1e6, **summary))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=16384)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--intermediate", type=int, default=8192, help="SwiGLU width")
    a = parser.parse_args(argv)
    for row in report(a.seq_len, a.heads, a.head_dim, a.intermediate):
        m = row["meta"]
        blocks = {k: m[k] for k in ("BLOCK_S", "BLOCK_P", "GQ", "GK", "BLOCK_M", "BLOCK_N", "MODE") if k in m}
        print(f"{row['case']:<38} grid={row['grid']} warps={row['num_warps']} {blocks}\n"
              f"    regs={row['regs']} stack={row['stack_bytes']}B local={row['local_bytes']}B "
              f"sass={row['sass_instructions']} (common path {row['common_path_instructions']}) "
              f"mem={row['global_memory_ops']} "
              f"issue~{row['issue_us_estimate']:.1f}us")


if __name__ == "__main__":
    main()
