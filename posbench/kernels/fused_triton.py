"""Triton kernels for a decoder block's memory-bound elementwise work: RMSNorm (alone, fused with the residual add
after it, or with the residual add before it) and SwiGLU, forward and backward.

Semantics and the plain references are in `posbench/kernels/fused.py`, which imports this module only when triton is
installed
and dispatches here. Rows are the last dim of a tensor (any leading shape; rows may be strided, the last dim must be
contiguous); outputs are allocated contiguous.

Numerics, chosen so that a bf16 model stays bit-close to eager PyTorch (and so to transformers):
- All arithmetic in fp32; the sum of squares is an fp32 reduction over the row.
- Every rounding that the eager composite does is done here too: the normalised row is rounded to the input dtype
  before the weight when cast_before_weight (Llama), the norm's output is rounded before the residual add (post-norm),
  the sum residual + x is rounded before it is normalised (pre-norm), and silu(gate) is rounded before the product.
  In fp32 these are no-ops.
- Gradients are computed in fp32 from the saved inputs and rounded once.

Why the kernels look the way they do (H100/H200, memory-bound: an eager RMSNorm makes ~7 passes over fp32 copies,
~10x the bytes of one read and one write):
- Norm forward: a program holds BLOCK_M whole rows (BLOCK_N = next power of two >= the width, <= MAX_COLUMNS) in
  registers, ~32 elements per thread, so each tensor is read once with 16-byte loads and written once. The weight is
  loaded once per program. The grid has >= min_programs programs so that the last wave is short.
- Norm backward: persistent programs (4 per SM) walk row blocks and keep the weight-gradient partial sums in registers;
  each writes one fp32 row of partials ([programs, H], 4.3 MB at H = 2048), summed by torch. rstd [rows] fp32 is
  saved by the forward (only when a gradient is needed), so the backward has one row reduction, not two.
- SwiGLU: a 2-D grid of [BLOCK_M, BLOCK_N] tiles; gate and up may be strided views (e.g. halves of a fused gate/up
  projection output).
"""
import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# Widest row the norm kernels hold in registers (16 warps x 32 threads x 32 elements). posbench/kernels/fused.py falls
# back to
# the reference for wider rows under backend="auto".
MAX_COLUMNS = 16384

_TL_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}
DTYPES = tuple(_TL_DTYPES)


@dataclass(frozen=True)
class FusedConfig:
    """Launch shape.

    tile: elements of one program's tile (rows x padded columns; a norm tile always holds at least one whole row).
    num_warps: warps per program; the norm kernels raise it (up to 16) so that a thread holds <= 32 elements of a tile.
    min_programs: norm forward tiles shrink (fewer rows per program) until the grid has this many programs.
    max_programs: persistent programs of the norm backward (None: 4 per SM on CUDA, 4 on CPU)."""
    tile: int = 8192
    num_warps: int = 8
    min_programs: int = 1024
    max_programs: int | None = None


NORM_CONFIG = FusedConfig(8192, 8)
NORM_BACKWARD_CONFIG = FusedConfig(4096, 8)
SWIGLU_CONFIG = FusedConfig(4096, 4)
# Alternatives the benchmark sweeps (posbench.kernels.bench.fused_config_sweep); the defaults above are untuned.
SWEEP_CONFIGS = (FusedConfig(2048, 4), FusedConfig(4096, 4), FusedConfig(4096, 8), FusedConfig(8192, 8),
                 FusedConfig(16384, 16))

# The norm kernels' modes (the kernel compares MODE with the literals).
PLAIN, ADD_AFTER, ADD_BEFORE = 0, 1, 2


def _pow2(n: int) -> int:
    return triton.next_power_of_2(max(int(n), 1))


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _max_programs(device: torch.device, config: FusedConfig) -> int:
    if config.max_programs is not None:
        return config.max_programs
    if device.type != "cuda":
        return 4
    return 4 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())


def _warps(block_elems: int, num_warps: int) -> int:
    """num_warps, raised (up to 16) so that a thread holds at most 32 elements of the tile."""
    while num_warps < 16 and block_elems > 32 * 32 * num_warps:
        num_warps *= 2
    return num_warps


# Triton 3.6's interpreter converts fp32 -> bf16 by truncation (and ignores fp_downcast_rounding) where the GPU rounds
# to nearest even. Under the interpreter _cast rounds bf16 with integer ops instead, so that CPU tests see the GPU's
# roundings and can check them; compiled for the GPU, _cast is a plain conversion.
_ROUND_BF16_BY_BITS = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") == "1")


@triton.jit
def _cast(x, DTYPE: tl.constexpr):
    """fp32 x converted to DTYPE, rounding to nearest even (also in the interpreter)."""
    if _ROUND_BF16_BY_BITS and DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(tl.bfloat16)  # exact: the low 16 bits are zero
    else:
        return x.to(DTYPE)


@triton.jit
def _round(x, DTYPE: tl.constexpr):
    """fp32 x rounded to DTYPE's precision, kept in fp32 (an intermediate rounding that eager PyTorch does)."""
    return _cast(x, DTYPE).to(tl.float32)


# ---------------------------------------------------------------------------------------------------------------------
# RMSNorm, optionally fused with a residual add


@triton.jit
def _rms_norm_fwd_kernel(
        x_ptr, r_ptr, w_ptr, out_ptr, h_ptr, rstd_ptr, M, H, eps, x_sm, r_sm, out_sm, h_sm,
        MODE: tl.constexpr, CAST_BEFORE_WEIGHT: tl.constexpr, NORM_IN_DTYPE: tl.constexpr,
        NORM_OUT_DTYPE: tl.constexpr, STORE_RSTD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """BLOCK_M whole rows per program.
    MODE 0 (PLAIN):      out = norm(x)
    MODE 1 (ADD_AFTER):  out = r + norm(x)                   (OLMo-2 post-norm residual add)
    MODE 2 (ADD_BEFORE): h = r + x; out = norm(h); h stored  (pre-norm: residual add, then the next norm)
    norm(v) = w * (v * rstd), rstd = 1 / sqrt(mean(v^2) + eps); with CAST_BEFORE_WEIGHT, v * rstd is rounded to
    NORM_IN_DTYPE (v's dtype) before the weight. NORM_OUT_DTYPE: the dtype eager gives norm(v), rounded to before the
    add of MODE 1."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    row_ok = rows < M
    mask = row_ok[:, None] & (cols < H)[None, :]
    rows64 = rows.to(tl.int64)[:, None]
    x = tl.load(x_ptr + rows64 * x_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if MODE != 0:
        res = tl.load(r_ptr + rows64 * r_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    else:
        res = x
    w = tl.load(w_ptr + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]
    if MODE == 2:
        x = _round(res + x, NORM_IN_DTYPE)
        tl.store(h_ptr + rows64 * h_sm + cols[None, :], _cast(x, h_ptr.dtype.element_ty), mask=mask)
    rstd = tl.rsqrt(tl.sum(x * x, axis=1) / H + eps)
    xhat = x * rstd[:, None]
    if CAST_BEFORE_WEIGHT:
        xhat = _round(xhat, NORM_IN_DTYPE)
    y = w * xhat
    if MODE == 1:
        y = res + _round(y, NORM_OUT_DTYPE)
    tl.store(out_ptr + rows64 * out_sm + cols[None, :], _cast(y, out_ptr.dtype.element_ty), mask=mask)
    if STORE_RSTD:
        tl.store(rstd_ptr + rows, rstd, mask=row_ok)


@triton.jit
def _rms_norm_bwd_kernel(
        x_ptr, w_ptr, g_ptr, gh_ptr, rstd_ptr, dx_ptr, dw_ptr, M, H, num_programs, iterations,
        x_sm, g_sm, gh_sm, dx_sm,
        CAST_BEFORE_WEIGHT: tl.constexpr, NORM_IN_DTYPE: tl.constexpr, ADD_GRAD: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Persistent programs over row blocks pid, pid + num_programs, ...: dx = rstd * (g*w - xhat * mean(g*w*xhat))
    (+ gh with ADD_GRAD: the pre-norm's gradient w.r.t. h also flows straight through), and this program's row of
    weight-gradient partials dw[pid] = sum over its rows of g * xhat (xhat rounded as in the forward)."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < H
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    # A while loop: Triton's interpreter cannot take a runtime argument as a range() bound.
    i = 0
    while i < iterations:
        rows = (pid + i * num_programs) * BLOCK_M + tl.arange(0, BLOCK_M)
        i += 1
        row_ok = rows < M
        mask = row_ok[:, None] & col_ok[None, :]
        rows64 = rows.to(tl.int64)[:, None]
        x = tl.load(x_ptr + rows64 * x_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + rows64 * g_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        if ADD_GRAD:
            gh = tl.load(gh_ptr + rows64 * gh_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + rows, mask=row_ok, other=0.0)[:, None]
        xhat = x * rstd
        if CAST_BEFORE_WEIGHT:
            acc += g * _round(xhat, NORM_IN_DTYPE)
        else:
            acc += g * xhat
        gx = g * w
        mean = tl.sum(gx * xhat, axis=1)[:, None] / H
        dx = rstd * (gx - xhat * mean)
        if ADD_GRAD:
            dx += gh
        tl.store(dx_ptr + rows64 * dx_sm + cols[None, :], _cast(dx, dx_ptr.dtype.element_ty), mask=mask)
    tl.store(dw_ptr + pid.to(tl.int64) * H + cols, tl.sum(acc, axis=0), mask=col_ok)


def _rows(x: torch.Tensor, name: str) -> torch.Tensor:
    """x [..., H] as a [M, H] view (a copy only when the leading dims cannot be flattened or the last dim is
    strided)."""
    if x.dtype not in DTYPES:
        raise TypeError(f"{name} must be fp16, bf16 or fp32, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dim")
    x2 = x.reshape(x.shape[:-1].numel(), x.shape[-1])
    return x2 if x2.stride(-1) == 1 or x2.shape[-1] == 1 else x2.contiguous()


def _row_stride(x2: torch.Tensor) -> int:
    return x2.stride(0) if x2.shape[0] > 1 else x2.shape[1]


def _norm_blocks(M: int, H: int, config: FusedConfig) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps) for the norm forward."""
    block_n = _pow2(H)
    block_m = min(_pow2(M), max(1, config.tile // block_n))
    while block_m > 1 and triton.cdiv(M, block_m) < config.min_programs:
        block_m //= 2
    return block_m, block_n, _warps(block_m * block_n, config.num_warps)


def _check_norm_args(x2: torch.Tensor, weight: torch.Tensor):
    H = x2.shape[1]
    if weight.shape != (H,):
        raise ValueError(f"weight must be [{H}] for rows of width {H}, got {tuple(weight.shape)}")
    if weight.dtype not in DTYPES or weight.device != x2.device:
        raise ValueError(f"weight must be fp16/bf16/fp32 on {x2.device}, got {weight.dtype} on {weight.device}")
    if H > MAX_COLUMNS:
        raise ValueError(f"rows of width {H} exceed the kernels' MAX_COLUMNS = {MAX_COLUMNS}")


def norm_dtypes(x_dtype: torch.dtype, weight_dtype: torch.dtype, cast_before_weight: bool) -> torch.dtype:
    """The dtype eager PyTorch gives RMSNorm's output: the input's (weight applied in fp32, then cast back), or with
    cast_before_weight the promotion of the input's and the weight's (weight * normalised value cast to the input's
    dtype)."""
    return torch.promote_types(x_dtype, weight_dtype) if cast_before_weight else x_dtype


def rms_norm_forward(x: torch.Tensor, weight: torch.Tensor, eps: float, cast_before_weight: bool = False, *,
                     residual: torch.Tensor | None = None, mode: int = PLAIN, store_rstd: bool = False,
                     config: FusedConfig | None = None):
    """One pass over the rows of x [..., H] (see _rms_norm_fwd_kernel for the modes); no autograd.

    Returns (out, h, rstd): out in the dtype eager gives (norm output's, or its promotion with residual's for
    ADD_AFTER); h (ADD_BEFORE only, else None) in promote(residual, x); rstd fp32 [rows] of the normalised rows when
    store_rstd, else None."""
    config = config or NORM_CONFIG
    shape = x.shape
    x2 = _rows(x, "x")
    _check_norm_args(x2, weight)
    M, H = x2.shape
    r2 = None
    if mode != PLAIN:
        if residual is None or residual.shape != shape:
            raise ValueError(f"residual must have x's shape {tuple(shape)}, got "
                             f"{None if residual is None else tuple(residual.shape)}")
        r2 = _rows(residual, "residual")
    dev = x.device
    norm_in = torch.promote_types(residual.dtype, x.dtype) if mode == ADD_BEFORE else x.dtype
    norm_out = norm_dtypes(norm_in, weight.dtype, cast_before_weight)
    out_dtype = torch.promote_types(residual.dtype, norm_out) if mode == ADD_AFTER else norm_out
    out = torch.empty((M, H), device=dev, dtype=out_dtype)
    h = torch.empty((M, H), device=dev, dtype=norm_in) if mode == ADD_BEFORE else None
    rstd = torch.empty((M,), device=dev, dtype=torch.float32) if store_rstd else None
    if M > 0:
        block_m, block_n, warps = _norm_blocks(M, H, config)
        _rms_norm_fwd_kernel[(triton.cdiv(M, block_m),)](
            x2, x2 if r2 is None else r2, weight, out, out if h is None else h, out if rstd is None else rstd, M, H,
            float(eps), _row_stride(x2), 0 if r2 is None else _row_stride(r2), H, H,
            MODE=mode, CAST_BEFORE_WEIGHT=bool(cast_before_weight), NORM_IN_DTYPE=_TL_DTYPES[norm_in],
            NORM_OUT_DTYPE=_TL_DTYPES[norm_out], STORE_RSTD=store_rstd, BLOCK_M=block_m, BLOCK_N=block_n,
            num_warps=warps)
    return out.view(shape), None if h is None else h.view(shape), rstd


def rms_norm_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor,
                      cast_before_weight: bool = False, *, grad_h: torch.Tensor | None = None,
                      config: FusedConfig | None = None):
    """Gradients of norm(x) = w * (x * rstd) given grad w.r.t. its output: (dx in x's dtype, dw in weight's dtype).
    With grad_h, dx also includes grad_h (ADD_BEFORE: both the residual and x receive d h = grad_h + d norm / d h).
    rstd: the forward's saved fp32 [rows]."""
    config = config or NORM_BACKWARD_CONFIG
    shape = x.shape
    x2 = _rows(x, "x")
    _check_norm_args(x2, weight)
    M, H = x2.shape
    g2 = _rows(grad, "grad")
    gh2 = None if grad_h is None else _rows(grad_h, "grad_h")
    if g2.shape != (M, H) or (gh2 is not None and gh2.shape != (M, H)) or rstd.shape != (M,):
        raise ValueError(f"grad {tuple(grad.shape)}, grad_h and rstd {tuple(rstd.shape)} do not match x "
                         f"{tuple(shape)}")
    dev = x.device
    block_n = _pow2(H)
    block_m = min(_pow2(M), max(1, config.tile // block_n))
    num_blocks = triton.cdiv(M, block_m)
    programs = max(1, min(num_blocks, _max_programs(dev, config)))
    dx = torch.empty((M, H), device=dev, dtype=x.dtype)
    partial = torch.empty((programs, H), device=dev, dtype=torch.float32)
    if M == 0:
        partial.zero_()
    else:
        _rms_norm_bwd_kernel[(programs,)](
            x2, weight, g2, g2 if gh2 is None else gh2, rstd, dx, partial, M, H, programs,
            triton.cdiv(num_blocks, programs), _row_stride(x2), _row_stride(g2),
            0 if gh2 is None else _row_stride(gh2), H, CAST_BEFORE_WEIGHT=bool(cast_before_weight),
            NORM_IN_DTYPE=_TL_DTYPES[x.dtype], ADD_GRAD=gh2 is not None, BLOCK_M=block_m, BLOCK_N=block_n,
            num_warps=_warps(block_m * block_n, config.num_warps))
    return dx.view(shape), partial.sum(0).to(weight.dtype)


class RMSNorm(torch.autograd.Function):
    """norm(x) with gradients to x and the weight."""

    @staticmethod
    def forward(ctx, x, weight, eps, cast_before_weight, config):
        out, _, rstd = rms_norm_forward(x, weight, eps, cast_before_weight, store_rstd=any(ctx.needs_input_grad),
                                        config=config)
        ctx.save_for_backward(x, weight, rstd)
        ctx.args = (cast_before_weight, config)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        dx, dw = rms_norm_backward(grad, x, weight, rstd, ctx.args[0], config=ctx.args[1])
        return dx, dw, None, None, None


class AddRMSNorm(torch.autograd.Function):
    """residual + norm(x) (post-norm residual add): the residual's gradient is the output's."""

    @staticmethod
    def forward(ctx, residual, x, weight, eps, cast_before_weight, config):
        out, _, rstd = rms_norm_forward(x, weight, eps, cast_before_weight, residual=residual, mode=ADD_AFTER,
                                        store_rstd=any(ctx.needs_input_grad), config=config)
        ctx.save_for_backward(x, weight, rstd)
        ctx.args = (cast_before_weight, config, residual.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        cast_before_weight, config, residual_dtype = ctx.args
        dx, dw = rms_norm_backward(grad, x, weight, rstd, cast_before_weight, config=config)
        return grad.to(residual_dtype), dx, dw, None, None, None


class AddThenRMSNorm(torch.autograd.Function):
    """(h, norm(h)) with h = residual + x (pre-norm): residual and x both receive d h."""

    @staticmethod
    def forward(ctx, residual, x, weight, eps, cast_before_weight, config):
        out, h, rstd = rms_norm_forward(x, weight, eps, cast_before_weight, residual=residual, mode=ADD_BEFORE,
                                        store_rstd=any(ctx.needs_input_grad), config=config)
        ctx.save_for_backward(h, weight, rstd)
        ctx.args = (cast_before_weight, config, residual.dtype, x.dtype)
        return h, out

    @staticmethod
    def backward(ctx, grad_h, grad_out):
        h, weight, rstd = ctx.saved_tensors
        cast_before_weight, config, residual_dtype, x_dtype = ctx.args
        dh, dw = rms_norm_backward(grad_out, h, weight, rstd, cast_before_weight, grad_h=grad_h, config=config)
        return dh.to(residual_dtype), dh.to(x_dtype), dw, None, None, None


# ---------------------------------------------------------------------------------------------------------------------
# SwiGLU


@triton.jit
def _swiglu_fwd_kernel(g_ptr, u_ptr, o_ptr, M, F, g_sm, u_sm, o_sm, SILU_DTYPE: tl.constexpr, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr):
    """o = silu(gate) * up, silu rounded to gate's dtype first (as eager's F.silu output is)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < F)[None, :]
    rows64 = rows.to(tl.int64)[:, None]
    gate = tl.load(g_ptr + rows64 * g_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    up = tl.load(u_ptr + rows64 * u_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    silu = _round(gate / (1.0 + tl.exp(-gate)), SILU_DTYPE)
    tl.store(o_ptr + rows64 * o_sm + cols[None, :], _cast(silu * up, o_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(g_ptr, u_ptr, go_ptr, dg_ptr, du_ptr, M, F, g_sm, u_sm, go_sm, dg_sm, du_sm,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """d gate = go * up * sig * (1 + gate * (1 - sig)), d up = go * silu(gate), sig = sigmoid(gate); fp32."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows < M)[:, None] & (cols < F)[None, :]
    rows64 = rows.to(tl.int64)[:, None]
    gate = tl.load(g_ptr + rows64 * g_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    up = tl.load(u_ptr + rows64 * u_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    go = tl.load(go_ptr + rows64 * go_sm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    sig = 1.0 / (1.0 + tl.exp(-gate))
    dgate = go * up * sig * (1.0 + gate * (1.0 - sig))
    dup = go * gate * sig
    tl.store(dg_ptr + rows64 * dg_sm + cols[None, :], _cast(dgate, dg_ptr.dtype.element_ty), mask=mask)
    tl.store(du_ptr + rows64 * du_sm + cols[None, :], _cast(dup, du_ptr.dtype.element_ty), mask=mask)


def _swiglu_blocks(M: int, F: int, config: FusedConfig) -> tuple[int, int]:
    block_n = min(_pow2(F), config.tile)
    block_m = min(_pow2(M), max(1, config.tile // block_n))
    return block_m, block_n


def _pair(gate: torch.Tensor, up: torch.Tensor):
    if gate.shape != up.shape:
        raise ValueError(f"gate {tuple(gate.shape)} and up {tuple(up.shape)} must have the same shape")
    if gate.device != up.device:
        raise ValueError(f"gate on {gate.device} and up on {up.device}")
    return _rows(gate, "gate"), _rows(up, "up")


def swiglu_forward(gate: torch.Tensor, up: torch.Tensor, *, config: FusedConfig | None = None) -> torch.Tensor:
    """silu(gate) * up in one pass; no autograd. gate, up [..., F] of one shape (any row strides), output contiguous in
    promote(gate, up)."""
    config = config or SWIGLU_CONFIG
    g2, u2 = _pair(gate, up)
    M, F = g2.shape
    out = torch.empty((M, F), device=gate.device, dtype=torch.promote_types(gate.dtype, up.dtype))
    if M > 0 and F > 0:
        block_m, block_n = _swiglu_blocks(M, F, config)
        _swiglu_fwd_kernel[(triton.cdiv(M, block_m), triton.cdiv(F, block_n))](
            g2, u2, out, M, F, _row_stride(g2), _row_stride(u2), F, SILU_DTYPE=_TL_DTYPES[gate.dtype],
            BLOCK_M=block_m, BLOCK_N=block_n, num_warps=config.num_warps)
    return out.view(gate.shape)


def swiglu_backward(grad: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, *,
                    config: FusedConfig | None = None):
    """(d gate, d up) of swiglu_forward, in gate's and up's dtypes."""
    config = config or SWIGLU_CONFIG
    g2, u2 = _pair(gate, up)
    go2 = _rows(grad, "grad")
    M, F = g2.shape
    if go2.shape != (M, F):
        raise ValueError(f"grad {tuple(grad.shape)} does not match gate {tuple(gate.shape)}")
    dgate = torch.empty((M, F), device=gate.device, dtype=gate.dtype)
    dup = torch.empty((M, F), device=gate.device, dtype=up.dtype)
    if M > 0 and F > 0:
        block_m, block_n = _swiglu_blocks(M, F, config)
        _swiglu_bwd_kernel[(triton.cdiv(M, block_m), triton.cdiv(F, block_n))](
            g2, u2, go2, dgate, dup, M, F, _row_stride(g2), _row_stride(u2), _row_stride(go2), F, F,
            BLOCK_M=block_m, BLOCK_N=block_n, num_warps=config.num_warps)
    return dgate.view(gate.shape), dup.view(up.shape)


class SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate, up, config):
        ctx.save_for_backward(gate, up)
        ctx.config = config
        return swiglu_forward(gate, up, config=config)

    @staticmethod
    def backward(ctx, grad):
        gate, up = ctx.saved_tensors
        dgate, dup = swiglu_backward(grad, gate, up, config=ctx.config)
        return dgate, dup, None


# ---------------------------------------------------------------------------------------------------------------------
# RePo's positions from its maps: final_map(silu(gate) * content), cast to fp32, in one pass (inference only)


@triton.jit
def _repo_positions_kernel(g_ptr, c_ptr, w_ptr, o_ptr, M, P, g_sm, c_sm, w_sp, K: tl.constexpr,
                           ACT_DTYPE: tl.constexpr, OUT_DTYPE: tl.constexpr, IEEE: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
    """out[m, p] = sum_k act[m, k] * w[p, k] with act = silu(gate) * content, repeating the eager path's roundings:
    silu and act rounded to ACT_DTYPE (what F.silu and the product return), the dot accumulated in fp32 and rounded
    to OUT_DTYPE (final_map's output dtype), stored as fp32. The dot runs on the tensor cores (16-wide tiles)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    rows64 = rows.to(tl.int64)[:, None]
    heads = tl.arange(0, BLOCK_P)
    acc = tl.zeros([BLOCK_M, BLOCK_P], dtype=tl.float32)
    for k0 in tl.static_range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        mask = row_ok[:, None] & (ks < K)[None, :]
        gate = tl.load(g_ptr + rows64 * g_sm + ks[None, :], mask=mask, other=0.0).to(tl.float32)
        content = tl.load(c_ptr + rows64 * c_sm + ks[None, :], mask=mask, other=0.0).to(tl.float32)
        silu = _round(gate / (1.0 + tl.exp(-gate)), ACT_DTYPE)
        act = _cast(silu * content, ACT_DTYPE)
        w = tl.load(w_ptr + heads[None, :] * w_sp + ks[:, None], mask=(heads < P)[None, :] & (ks < K)[:, None],
                    other=0.0).to(ACT_DTYPE)                                   # [BLOCK_K, BLOCK_P] = w^T
        if IEEE or _ROUND_BF16_BY_BITS:  # fp32 inputs; or the interpreter, whose dot mishandles bf16 (bf16 values
            acc += tl.dot(act.to(tl.float32), w.to(tl.float32), input_precision="ieee")  # are exact in fp32)
        else:
            acc += tl.dot(act, w)
    out = _round(acc, OUT_DTYPE)
    tl.store(o_ptr + rows64 * P + heads[None, :], out, mask=row_ok[:, None] & (heads < P)[None, :])


def repo_positions_forward(gate: torch.Tensor, content: torch.Tensor, weight: torch.Tensor, *,
                           block_m: int = 32, block_k: int = 128, num_warps: int = 2) -> torch.Tensor:
    """fp32 [..., P] = float(linear(silu(gate) * content, weight)) for gate, content [..., K] (any row strides, e.g.
    slices of a packed projection) and weight [P, K]; no autograd. block_m rows per program, block_k values per step
    (posbench.kernels.bench.repo_positions_sweep times the alternatives). The defaults won it on an H200 (graph-timed,
    OLMo-2-1B
    shape): 6.6 us at 16K tokens and 4.8 us at 4K, against 12.0 and 8.8 us for the three kernels it replaces, and
    about 65 instead of 150-210 us of host time per call."""
    g2, c2 = _pair(gate, content)
    M, K = g2.shape
    P = weight.shape[0]
    if weight.dim() != 2 or weight.shape[1] != K:
        raise ValueError(f"weight {tuple(weight.shape)} does not map {K} values to positions")
    act_dtype = torch.promote_types(gate.dtype, content.dtype)
    out_dtype = torch.promote_types(act_dtype, weight.dtype)
    out = torch.empty((M, P), device=gate.device, dtype=torch.float32)
    if M > 0 and P > 0:
        w = weight if weight.stride(-1) == 1 else weight.contiguous()
        block_k = max(16, min(_pow2(K), block_k))
        block_p = max(16, _pow2(P))
        _repo_positions_kernel[(triton.cdiv(M, block_m),)](
            g2, c2, w, out, M, P, _row_stride(g2), _row_stride(c2), w.stride(0), K=K,
            ACT_DTYPE=_TL_DTYPES[act_dtype], OUT_DTYPE=_TL_DTYPES[out_dtype], IEEE=act_dtype == torch.float32,
            BLOCK_M=max(16, block_m), BLOCK_K=block_k, BLOCK_P=block_p, num_warps=num_warps)
    return out.view(*gate.shape[:-1], P)
