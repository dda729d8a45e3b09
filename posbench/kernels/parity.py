"""Parity checks of the Triton rotary kernels against the plain-PyTorch references.

Shared by tests/test_kernels_*.py (CPU through Triton's interpreter, CUDA natively) and posbench.kernels.gpu_check.
Each check
draws fresh random inputs (the seed is returned, to replay a failure), fills every buffer the kernels allocate with
NaN first so that an element left unwritten cannot pass, and returns ||out - ref|| / ||ref|| per output.
"""
import random
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .attention import attention, attention_reference
from .rotary import apply_qk_norm_rotary, apply_rotary, apply_rotary_qk, qk_norm_rotary_reference, rotary_reference

# Forward: kernel vs the reference in the same dtype. Gradients: fp32 inputs vs autograd through the fp32 reference;
# 16-bit inputs vs the fp32 reference on the same (upcast) values.
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}
# The reference against a float64 computation from the same fp32 angles.
REFERENCE_TOLERANCE = 1e-6


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64 (NaN anywhere gives NaN, which fails every `<` comparison)."""
    out, ref = out.detach().double(), ref.detach().double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-300)).item()


@contextmanager
def poisoned_allocations():
    """Make torch.empty return NaN-filled floating tensors while active (the kernels' outputs and scratch)."""
    real_empty = torch.empty

    def empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        if t.is_floating_point():
            t.fill_(float("nan"))
        return t

    torch.empty = empty
    try:
        yield
    finally:
        torch.empty = real_empty


@dataclass(frozen=True)
class Case:
    """One input shape. positions: "int" [B, N] integers, "float" [B, N] floats shared by all heads, "heads"
    [B, N, P] floats (P = position_heads). strided: q/k are views into a fused qkv projection (rotary cases) and
    k is also written straight into a [B, Hk, S, D] cache slice. batch_broadcast: positions given for one sequence
    ([1, N])."""
    name: str
    batch: int
    seq: int
    q_heads: int
    kv_heads: int
    head_dim: int
    rotary_dim: int
    positions: str
    position_heads: int = 1
    max_position: float = 4096.0
    scaling: float = 1.0
    strided: bool = False
    batch_broadcast: bool = False


ROTARY_CASES = (
    Case("mha_int", 2, 7, 4, 4, 32, 32, "int", max_position=100),
    Case("gqa_heads_far", 2, 33, 8, 2, 32, 32, "heads", position_heads=2, max_position=5e4, scaling=1.25),
    Case("decode_int_1e5", 3, 1, 4, 4, 64, 64, "int", max_position=1e5),
    Case("partial_odd_half", 1, 7, 4, 2, 40, 24, "heads", position_heads=2, max_position=300.0),
    Case("shared_float_odd_heads", 2, 5, 6, 3, 16, 16, "float", max_position=5e4, scaling=0.8),
    Case("beyond_fast_trig", 1, 9, 2, 2, 16, 16, "heads", position_heads=2, max_position=4e5),
    Case("strided_cache", 2, 7, 4, 2, 32, 32, "heads", position_heads=1, max_position=1e3, strided=True),
    Case("one_token_broadcast", 2, 1, 2, 1, 16, 8, "int", max_position=1e5, batch_broadcast=True),
)
NORM_CASES = (
    Case("norm_mha_heads", 2, 7, 4, 4, 32, 32, "heads", position_heads=4, max_position=5e4),
    Case("norm_gqa_int_partial_cache", 1, 33, 8, 2, 16, 8, "int", max_position=1e5, scaling=1.1, strided=True),
    Case("norm_shared_float_odd", 2, 3, 6, 3, 24, 24, "float", max_position=2e3),
)


def inv_freq_for(rotary_dim: int, theta: float = 10000.0) -> torch.Tensor:
    return 1.0 / theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim)


def make_positions(case: Case, device, gen: torch.Generator, requires_grad: bool = False) -> torch.Tensor:
    b = 1 if case.batch_broadcast else case.batch
    shape = (b, case.seq) if case.positions in ("int", "float") else (b, case.seq, case.position_heads)
    if case.positions == "int":
        pos = torch.randint(0, int(case.max_position) + 1, shape, device=device, generator=gen)
        pos.view(-1)[0] = int(case.max_position)  # the far end of the range is always exercised
        return pos
    pos = torch.rand(shape, device=device, generator=gen) * case.max_position
    pos.view(-1)[0] = case.max_position
    return pos.requires_grad_(requires_grad)


def make_qk(case: Case, dtype, device, gen: torch.Generator):
    B, N, Hq, Hk, D = case.batch, case.seq, case.q_heads, case.kv_heads, case.head_dim
    if case.strided:
        qkv = torch.randn(B, N, (Hq + 2 * Hk) * D, device=device, generator=gen).to(dtype)
        return qkv[..., :Hq * D].view(B, N, Hq, D), qkv[..., Hq * D:(Hq + Hk) * D].view(B, N, Hk, D)
    return (torch.randn(B, N, Hq, D, device=device, generator=gen).to(dtype),
            torch.randn(B, N, Hk, D, device=device, generator=gen).to(dtype))


def _generator(device, seed: int | None):
    seed = random.randrange(2 ** 31) if seed is None else seed
    return seed, torch.Generator(device).manual_seed(seed)


def check_rotary_forward(case: Case, dtype, device, seed: int | None = None) -> dict:
    """apply_rotary_qk (Triton) and apply_rotary vs rotary_reference; for strided cases k is also written into a
    poisoned cache slice, whose other slots must stay untouched."""
    seed, gen = _generator(device, seed)
    q, k = make_qk(case, dtype, device, gen)
    pos = make_positions(case, device, gen)
    inv_freq = inv_freq_for(case.rotary_dim).to(device)
    with poisoned_allocations():
        out_q, out_k = apply_rotary_qk(q, k, pos, inv_freq, case.scaling, backend="triton")
        out_single = apply_rotary(k, pos, inv_freq, case.scaling, backend="triton")
    pos_full = pos.expand(case.batch, *pos.shape[1:])
    ref_q = rotary_reference(q, pos_full, inv_freq, case.scaling)
    ref_k = rotary_reference(k, pos_full, inv_freq, case.scaling)
    errors = dict(seed=seed, q=rel_err(out_q, ref_q), k=rel_err(out_k, ref_k), single=rel_err(out_single, ref_k))
    if case.strided:
        from .rotary_triton import rotary_qk_forward
        B, N, Hk, D = k.shape
        cache = torch.full((B, Hk, N + 2, D), float("nan"), device=device, dtype=dtype)
        rotary_qk_forward(q, k, pos_full, inv_freq, case.scaling, out_k=cache[:, :, 1:N + 1].transpose(1, 2))
        errors["cache"] = rel_err(cache[:, :, 1:N + 1].transpose(1, 2), ref_k)
        # Slots outside the slice must still hold the NaN poison: report any written one as an infinite error.
        errors["cache_outside"] = 0.0 if cache[:, :, [0, N + 1]].isnan().all() else float("inf")
    return errors


def check_rotary_backward(case: Case, dtype, device, seed: int | None = None) -> dict:
    """Gradients of apply_rotary_qk (Triton) w.r.t. q, k and float positions vs autograd through the fp32 reference."""
    seed, gen = _generator(device, seed)
    q, k = make_qk(case, dtype, device, gen)
    q, k = q.detach().requires_grad_(), k.detach().requires_grad_()
    learned = case.positions != "int"
    pos = make_positions(case, device, gen, requires_grad=learned)
    inv_freq = inv_freq_for(case.rotary_dim).to(device)
    grad_q = torch.randn(q.shape, device=device, generator=gen).to(dtype)
    grad_k = torch.randn(k.shape, device=device, generator=gen).to(dtype)
    inputs = [q, k] + ([pos] if learned else [])
    with poisoned_allocations():
        out_q, out_k = apply_rotary_qk(q, k, pos, inv_freq, case.scaling, backend="triton")
        got = torch.autograd.grad([out_q, out_k], inputs, [grad_q, grad_k])
    q32, k32 = q.detach().float().requires_grad_(), k.detach().float().requires_grad_()
    pos32 = pos.detach().requires_grad_(learned)
    pos_full = pos32.expand(case.batch, *pos32.shape[1:])
    ref = torch.autograd.grad(
        [rotary_reference(q32, pos_full, inv_freq, case.scaling),
         rotary_reference(k32, pos_full, inv_freq, case.scaling)],
        [q32, k32] + ([pos32] if learned else []), [grad_q.float(), grad_k.float()])
    errors = dict(seed=seed, dq=rel_err(got[0], ref[0]), dk=rel_err(got[1], ref[1]))
    if learned:
        errors["dpos"] = rel_err(got[2], ref[2])
    return errors


def _norm_inputs(case: Case, dtype, device, gen, requires_grad: bool):
    B, N, Hq, Hk, D = case.batch, case.seq, case.q_heads, case.kv_heads, case.head_dim
    q_proj = torch.randn(B, N, Hq * D, device=device, generator=gen).mul(3).to(dtype).requires_grad_(requires_grad)
    k_proj = torch.randn(B, N, Hk * D, device=device, generator=gen).mul(3).to(dtype).requires_grad_(requires_grad)
    q_w = (1 + 0.2 * torch.randn(Hq * D, device=device, generator=gen)).to(dtype).requires_grad_(requires_grad)
    k_w = (1 + 0.2 * torch.randn(Hk * D, device=device, generator=gen)).to(dtype).requires_grad_(requires_grad)
    return q_proj, k_proj, q_w, k_w


def check_norm_forward(case: Case, dtype, device, seed: int | None = None) -> dict:
    seed, gen = _generator(device, seed)
    q_proj, k_proj, q_w, k_w = _norm_inputs(case, dtype, device, gen, False)
    pos = make_positions(case, device, gen)
    inv_freq = inv_freq_for(case.rotary_dim).to(device)
    args = (1e-6, pos, inv_freq, case.scaling, case.q_heads, case.kv_heads)
    with poisoned_allocations():
        out_q, out_k = apply_qk_norm_rotary(q_proj, k_proj, q_w, k_w, *args, backend="triton")
    ref_q, ref_k = qk_norm_rotary_reference(q_proj, k_proj, q_w, k_w, *args)
    errors = dict(seed=seed, q=rel_err(out_q, ref_q), k=rel_err(out_k, ref_k))
    if case.strided:  # k written straight into a poisoned [B, Hk, S, D] cache slice
        from .rotary_triton import qk_norm_rotary_forward
        B, N, Hk, D = ref_k.shape
        cache = torch.full((B, Hk, N + 2, D), float("nan"), device=device, dtype=dtype)
        qk_norm_rotary_forward(q_proj, k_proj, q_w, k_w, *args, out_k=cache[:, :, 1:N + 1].transpose(1, 2))
        errors["cache"] = rel_err(cache[:, :, 1:N + 1].transpose(1, 2), ref_k)
        errors["cache_outside"] = 0.0 if cache[:, :, [0, N + 1]].isnan().all() else float("inf")
    return errors


def check_norm_backward(case: Case, dtype, device, seed: int | None = None) -> dict:
    """Gradients of the fused norm + rotary w.r.t. both projections, both weights and float positions."""
    seed, gen = _generator(device, seed)
    learned = case.positions != "int"
    tensors = _norm_inputs(case, dtype, device, gen, True)
    pos = make_positions(case, device, gen, requires_grad=learned)
    inv_freq = inv_freq_for(case.rotary_dim).to(device)
    args = (1e-6, pos, inv_freq, case.scaling, case.q_heads, case.kv_heads)
    B, N, D = case.batch, case.seq, case.head_dim
    grad_q = torch.randn(B, N, case.q_heads, D, device=device, generator=gen).to(dtype)
    grad_k = torch.randn(B, N, case.kv_heads, D, device=device, generator=gen).to(dtype)
    with poisoned_allocations():
        out = apply_qk_norm_rotary(*tensors, *args, backend="triton")
        got = torch.autograd.grad(out, list(tensors) + ([pos] if learned else []), [grad_q, grad_k])
    tensors32 = [t.detach().float().requires_grad_() for t in tensors]
    pos32 = pos.detach().requires_grad_(learned)
    ref_out = qk_norm_rotary_reference(*tensors32, 1e-6, pos32, *args[2:])
    ref = torch.autograd.grad(ref_out, tensors32 + ([pos32] if learned else []), [grad_q.float(), grad_k.float()])
    names = ["dq_proj", "dk_proj", "dq_weight", "dk_weight"] + (["dpos"] if learned else [])
    return dict(seed=seed, **{name: rel_err(g, r) for name, g, r in zip(names, got, ref, strict=True)})


def check_reference_float64(device, seed: int | None = None) -> dict:
    """rotary_reference (fp32) against a float64 complex rotation from the same fp32 angles: pair (x_i, x_{i+R/2})
    is the complex number x_i + 1j * x_{i+R/2}, multiplied by attention_scaling * exp(1j * angle_i)."""
    seed, gen = _generator(device, seed)
    B, N, H, D, R, P = 2, 5, 4, 16, 12, 2
    x = torch.randn(B, N, H, D, device=device, generator=gen)
    pos = torch.rand(B, N, P, device=device, generator=gen) * 3e4
    inv_freq = inv_freq_for(R).to(device)
    scaling = 1.3
    out = rotary_reference(x, pos, inv_freq, scaling)
    angle = (pos.float()[..., None] * inv_freq).double()  # [B, N, P, R/2], fp32 product as the contract says
    angle = angle.repeat_interleave(H // P, dim=2)
    z = torch.complex(x[..., :R // 2].double(), x[..., R // 2:R].double()) * scaling * torch.exp(1j * angle)
    expected = torch.cat([z.real, z.imag, x[..., R:].double()], dim=-1)
    return dict(seed=seed, reference=rel_err(out, expected))


ATTENTION_CASES = (
    # (name, B, Hq, Hk, Nq, Nk, causal, left padding of the second sequence)
    ("prefill_causal", 2, 4, 4, 33, 33, True, 0),
    ("prefill_gqa", 1, 8, 2, 17, 17, True, 0),
    ("prefill_left_padded", 2, 4, 2, 12, 12, True, 5),
    ("chunk_with_cache", 1, 4, 4, 5, 21, True, 0),
    ("decode_left_padded", 3, 8, 2, 1, 40, True, 7),
    ("bidirectional", 1, 2, 2, 9, 9, False, 0),
)


def check_attention(case: tuple, dtype, device, backend: str = "auto", head_dim: int = 64,
                    seed: int | None = None) -> dict:
    """attention() vs attention_reference (fp32 softmax, explicit head repetition) on fresh inputs."""
    _, B, Hq, Hk, Nq, Nk, causal, pad = case
    seed, gen = _generator(device, seed)
    q = torch.randn(B, Nq, Hq, head_dim, device=device, generator=gen).to(dtype).transpose(1, 2)  # strided views
    k = torch.randn(B, Nk, Hk, head_dim, device=device, generator=gen).to(dtype).transpose(1, 2)
    v = torch.randn(B, Nk, Hk, head_dim, device=device, generator=gen).to(dtype).transpose(1, 2)
    mask = None
    if pad:
        mask = torch.ones(B, Nk, dtype=torch.bool, device=device)
        mask[-1, :pad] = False
    out = attention(q, k, v, causal=causal, mask=mask, backend=backend)
    ref = attention_reference(q, k, v, causal=causal, mask=mask)
    if pad:  # rows of padding queries are garbage by design; compare real query rows only
        real = mask[:, -Nq:]
        out, ref = out.transpose(1, 2)[real], ref.transpose(1, 2)[real]
    return dict(seed=seed, out=rel_err(out, ref))


# ---------------------------------------------------------------------------------------------------------------------
# RMSNorm variants and SwiGLU (posbench/kernels/fused.py)

FUSED_EPS = 1e-6
NORM_OPS = ("rms_norm", "add_rms_norm", "add_then_rms_norm")


@dataclass(frozen=True)
class FusedCase:
    """One input shape [..., width] for the norm and SwiGLU checks. config: FusedConfig fields (None: the defaults),
    e.g. small tiles so that programs hold several rows with a partial last block, and a backward with few persistent
    programs looping over several blocks. strided: inputs are views with a row stride wider than the row (for SwiGLU,
    gate and up are the two halves of one [..., 2 * width] tensor, as a fused gate/up projection gives).
    weight_dtype: the norm weight's dtype (None: the inputs')."""
    name: str
    shape: tuple
    config: tuple | None = None
    strided: bool = False
    weight_dtype: torch.dtype | None = None


FUSED_CASES = (
    FusedCase("w48_rows7", (7, 48)),
    FusedCase("w100_rows33", (3, 11, 100)),
    FusedCase("w2048_row1", (1, 1, 2048)),
    FusedCase("w100_rows33_tiles", (33, 100), config=(256, 4, 1, 3)),
    FusedCase("w48_strided_fp32_weight", (2, 7, 48), strided=True, weight_dtype=torch.float32),
    FusedCase("w9000_rows3", (3, 9000)),
)
SWIGLU_CASES = (
    FusedCase("f48_rows7", (7, 48)),
    FusedCase("f100_rows33_tiles", (3, 11, 100), config=(64, 4, 1, None)),
    FusedCase("f96_gate_up_halves", (2, 5, 96), strided=True),
)
# gpu_check compiles every variant it runs (~0.5 s each), so it checks fewer combinations natively: the norm/cast pairs
# the models use (OLMo-2: cast after the weight; Llama: before) on a production-shaped case (4096 rows of 2048: the
# default tiles of 4 rows, and a backward whose 4-per-SM programs loop), plus the small-tile, strided and wide cases.
GPU_CHECK_NORMS = (("rms_norm", False), ("rms_norm", True), ("add_rms_norm", False), ("add_then_rms_norm", True))
GPU_CHECK_FUSED_CASES = (FusedCase("w2048_rows4096", (1, 4096, 2048)),) + tuple(
    c for c in FUSED_CASES if c.name in ("w100_rows33_tiles", "w48_strided_fp32_weight", "w9000_rows3"))
GPU_CHECK_SWIGLU_CASES = (FusedCase("f8192_rows512", (1, 512, 8192)),) + SWIGLU_CASES[1:]


def _fused_config(case: FusedCase):
    if case.config is None:
        return None
    from .fused_triton import FusedConfig
    return FusedConfig(*case.config)


def _fused_input(case: FusedCase, dtype, device, gen, scale: float = 1.0) -> torch.Tensor:
    *lead, width = case.shape
    if not case.strided:
        return (scale * torch.randn(*lead, width, device=device, generator=gen)).to(dtype)
    wide = (scale * torch.randn(*lead, width + 5, device=device, generator=gen)).to(dtype)
    return wide[..., 2:width + 2]


def _bit_mismatch(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Fraction of elements whose value differs from the reference's (NaN counts as different)."""
    return (out != ref).float().mean().item() if out.numel() else 0.0


def _forward_errors(outs, refs) -> dict:
    """rel_err per output; for 16-bit outputs computed on CPU (the interpreter) also the fraction of elements not
    bit-equal to the eager reference; any dtype difference is an infinite error."""
    errors = {}
    for i, (out, ref) in enumerate(zip(outs, refs, strict=True)):
        name = "out" if i == len(outs) - 1 else "h"
        errors[name] = rel_err(out, ref) if out.dtype == ref.dtype and out.shape == ref.shape else float("inf")
        # Under the interpreter the kernels repeat eager's roundings exactly. On a GPU, rsqrt and fused multiply-adds
        # round differently from eager's kernels (seen on an H200: 24% of bf16 outputs one bit apart at 7 x 48, all
        # within 2e-3 relative), so there the relative error alone is the criterion.
        if ref.dtype in (torch.bfloat16, torch.float16) and out.device.type == "cpu":
            errors[name + "_bits"] = _bit_mismatch(out, ref)
    return errors


def _norm_call(op: str, cast_before_weight: bool):
    from . import fused
    if op == "rms_norm":
        return lambda r, x, w, **kw: (fused.rms_norm(x, w, FUSED_EPS, cast_before_weight, **kw),)
    if op == "add_rms_norm":
        return lambda r, x, w, **kw: (fused.add_rms_norm(r, x, w, FUSED_EPS, cast_before_weight, **kw),)
    if op == "add_then_rms_norm":
        return lambda r, x, w, **kw: fused.add_then_rms_norm(r, x, w, FUSED_EPS, cast_before_weight, **kw)
    raise ValueError(f"unknown norm op {op!r}")


def check_fused_norm(op: str, cast_before_weight: bool, case: FusedCase, dtype, device,
                     seed: int | None = None) -> dict:
    """One of NORM_OPS through the Triton kernels vs the reference: forward in the same dtypes (values, dtypes and,
    for 16-bit outputs, the fraction of elements not bit-equal), and gradients w.r.t. residual, x and weight vs
    autograd through the fp32 reference. A zero row is included (rstd = 1/sqrt(eps))."""
    seed, gen = _generator(device, seed)
    call = _norm_call(op, cast_before_weight)
    width = case.shape[-1]
    x = _fused_input(case, dtype, device, gen, scale=3.0)
    if x.shape[:-1].numel() >= 3:
        x.view(-1, width)[-1] = 0.0
    residual = _fused_input(case, dtype, device, gen)
    weight = (1 + 0.2 * torch.randn(width, device=device, generator=gen)).to(case.weight_dtype or dtype)
    inputs = [t.detach().requires_grad_() for t in (residual, x, weight)]
    config = _fused_config(case)
    with poisoned_allocations():
        outs = call(*inputs, backend="triton", config=config)
        grads = [torch.randn(o.shape, device=device, generator=gen).to(o.dtype) for o in outs]
        wanted = inputs if op != "rms_norm" else inputs[1:]
        got = torch.autograd.grad(outs, wanted, grads)
    with torch.no_grad():
        refs = call(residual, x, weight, backend="reference")
    errors = dict(seed=seed, **_forward_errors(outs, refs))
    inputs32 = [t.detach().float().requires_grad_() for t in (residual, x, weight)]
    wanted32 = inputs32 if op != "rms_norm" else inputs32[1:]
    ref_grads = torch.autograd.grad(call(*inputs32, backend="reference"), wanted32, [g.float() for g in grads])
    names = ["dresidual", "dx", "dweight"] if op != "rms_norm" else ["dx", "dweight"]
    for name, g, r, t in zip(names, got, ref_grads, wanted, strict=True):
        errors[name] = rel_err(g, r) if g.dtype == t.dtype else float("inf")
    return errors


def check_swiglu(case: FusedCase, dtype, device, seed: int | None = None) -> dict:
    """swiglu through the Triton kernels vs F.silu(gate) * up: forward in the same dtype (values and, in 16 bits, the
    fraction of elements not bit-equal); gradients vs autograd through the fp32 reference. gate includes +-40 (exp
    overflow side of sigmoid)."""
    seed, gen = _generator(device, seed)
    from . import fused
    *lead, width = case.shape
    if case.strided:
        gate_up = (2 * torch.randn(*lead, 2 * width, device=device, generator=gen)).to(dtype)
        gate, up = gate_up[..., :width], gate_up[..., width:]
    else:
        gate = (2 * torch.randn(*lead, width, device=device, generator=gen)).to(dtype)
        up = torch.randn(*lead, width, device=device, generator=gen).to(dtype)
    gate.view(-1, width)[0, :2] = torch.tensor([-40.0, 40.0])
    gate, up = gate.detach().requires_grad_(), up.detach().requires_grad_()
    grad = torch.randn(case.shape, device=device, generator=gen).to(dtype)
    with poisoned_allocations():
        out = fused.swiglu(gate, up, backend="triton", config=_fused_config(case))
        got = torch.autograd.grad(out, [gate, up], grad)
    with torch.no_grad():
        errors = dict(seed=seed, **_forward_errors([out], [fused.swiglu_reference(gate, up)]))
    gate32, up32 = gate.detach().float().requires_grad_(), up.detach().float().requires_grad_()
    ref = torch.autograd.grad(fused.swiglu_reference(gate32, up32), [gate32, up32], grad.float())
    errors.update(dgate=rel_err(got[0], ref[0]), dup=rel_err(got[1], ref[1]))
    return errors
