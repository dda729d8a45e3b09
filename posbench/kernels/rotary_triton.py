"""Triton kernels for rotary position embedding: q and k in one launch, optionally fused with OLMo-2's q/k RMSNorm.

Layouts and numerics follow `posbench/kernels/rotary.py` (rotate-half pairing, fp32 angles = positions * inv_freq,
cos/sin
times attention_scaling, output in the input dtype). This module needs triton; `posbench/kernels/rotary.py` imports it
only when
triton is installed and dispatches here.

Why the kernels look the way they do (H100/H200, memory-bound):
- One pass: each program reads its q and k elements once and writes them once; cos/sin are computed in registers
  from pos * inv_freq (fp32), never read from per-head tables in HBM. sin and cos share one range reduction
  (_sincos): with per-head learned positions the trigonometry, not the rotation, is most of the instructions.
- Sharing cos/sin: the q/k kernel works on rows = (token, position head). The angle tile [tokens, position heads,
  R/2] is computed once and reused by every query head and key head that shares that position head (GQA group, and q
  with k). For integer positions shared by all heads the tile is [tokens, 1, R/2] and serves a whole group of heads.
- Loads are contiguous half-rows (R/2 elements, 128 B for D = 128 bf16), so they vectorise to 16-byte accesses.
- The fused norm kernels hold the whole projection row of a token (H*D elements) in registers: the RMS statistic,
  the weight, the rotation and the store happen in one pass (unfused, the norm costs an extra read and write).
- Backward is the same rotation by -angle. d loss / d position = sum over its heads and pairs of
  inv_freq_i * (x1 * dx2 - x2 * dx1) (x the forward input, dx the gradient w.r.t. x), so learned positions cost one
  extra read of q and k and no atomics.
"""
import functools
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# The heuristics below aim at >= 8 programs per SM on a 132-SM H100/H200 so the last wave is short.
_MIN_PROGRAMS = 1024
# Heads (q plus k) one program handles per position head when positions are shared by all heads: enough to amortise
# the cos/sin of a token, few enough that the unrolled head loop stays short and the grid stays wide.
_SHARED_HEADS_PER_PROGRAM = 8


@dataclass(frozen=True)
class RotaryConfig:
    """Launch shape of a rotary kernel.

    tile: elements of one half-head tile a program holds per load (tokens x heads x R/2, padded to powers of two);
          it sets how many tokens a program covers. num_warps: warps per program.
    """
    tile: int = 1024
    num_warps: int = 4


# The forward default is the H200 sweep's winner (posbench.kernels.gpu_check's rotary_config_sweep, 2026-11-27, 16K
# tokens,
# 16 heads x 128): one token of 16 heads per program on 4 warps. Against the earlier 2048-element tile it took the fused
# qk-norm + rotary from 99 to 77 us (its 139 registers per thread had left 3 programs per SM; ncu: 18.75% occupancy,
# DRAM 52% busy) and learned-position rotary from 74 to 67 us; integer rotary stayed at 69 us. The fused backward keeps
# x, the output gradient, weights and weight-gradient accumulators live at once: at 4 warps and 2 tokens it needs
# > 255 registers per thread and spills (posbench.kernels.compile_report), so it runs 1 token on 8 warps.
DEFAULT_CONFIG = RotaryConfig(1024, 4)
NORM_BACKWARD_CONFIG = RotaryConfig(1024, 8)
SWEEP_CONFIGS = (RotaryConfig(1024, 2), RotaryConfig(1024, 4), RotaryConfig(1024, 8), RotaryConfig(2048, 4),
                 RotaryConfig(2048, 8), RotaryConfig(4096, 8))


def _pow2(n: int) -> int:
    return triton.next_power_of_2(max(int(n), 1))


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


# ---------------------------------------------------------------------------------------------------------------------
# Shared device helpers

# Above this |angle| the shared-reduction sincos below loses exactness (its pi/2 multiples stop being exact products in
# fp32 without FMA), so a program whose angles exceed it takes libdevice's sinf/cosf instead. Every kernel has a
# constexpr FAST_TRIG_ONLY (default False) that drops this fallback: posbench.kernels.compile_report compiles with it
# to count
# the instructions of the common path alone.
_FAST_TRIG_LIMIT = tl.constexpr(1.0e5)


@triton.jit
def _sincos(x):
    """sin(x), cos(x) for fp32 |x| <= _FAST_TRIG_LIMIT, max abs error ~1.1e-7 (libdevice: ~6e-8) at ~half the
    instructions of sinf + cosf: one Cody-Waite reduction by pi/2 shared by both, then short polynomials on
    [-pi/4, pi/4] (least-squares fits made for posbench). The four pi/2 pieces carry 8 significant bits each (the
    last the remainder), so j * piece is exact in fp32 for |j| < 2**16 with or without FMA contraction: the
    interpreter (no FMA) and the GPU (FMA) compute the same function to within rounding."""
    t = x * 0.6366197723675814 + 12582912.0  # + 1.5 * 2**23 rounds x * 2/pi to an integer j held in the low bits
    j = t - 12582912.0
    r = x - j * 1.5703125
    r = r - j * 4.825592041015625e-04
    r = r - j * 1.2665987014770508e-06
    r = r - j * 9.92093629470503e-10
    r2 = r * r
    s = r + r * r2 * (-0.16666649281978607 + r2 * (0.00833186786621809 + r2 * -0.0001948179124156013))
    c = 1.0 - 0.5 * r2 + r2 * r2 * (0.04166664555668831 + r2 * (-0.0013887243112549186 + r2 * 2.4423905415460467e-05))
    q = t.to(tl.int32, bitcast=True)  # low bits = j mod 4: the quadrant
    swap = (q & 1) != 0
    sin = tl.where(swap, c, s)
    cos = tl.where(swap, s, c)
    sin = tl.where((q & 2) != 0, -sin, sin)
    cos = tl.where(((q + 1) & 2) != 0, -cos, cos)
    return sin, cos


@triton.jit
def _cos_sin(angle, scaling, FAST_TRIG_ONLY: tl.constexpr):
    """(cos, sin) * scaling; the fast sincos unless this program has an angle beyond its exact range."""
    if not FAST_TRIG_ONLY:
        if tl.max(tl.abs(angle)) <= _FAST_TRIG_LIMIT:
            sin, cos = _sincos(angle)
        else:
            sin = tl.sin(angle)
            cos = tl.cos(angle)
    else:
        sin, cos = _sincos(angle)
    return cos * scaling, sin * scaling


@triton.jit
def _angles(pos_ptr, b, n, p, row_ok, pos_sb, pos_sn, pos_sp, inv_freq_ptr, d, HALF: tl.constexpr):
    """Angles [rows, heads, HALF_P2] for rows (b, n) x position heads p, and inv_freq [1, 1, HALF_P2] (d: the pair
    index as [1, 1, HALF_P2])."""
    position = tl.load(pos_ptr + b[:, None] * pos_sb + n[:, None] * pos_sn + p[None, :] * pos_sp, mask=row_ok,
                       other=0).to(tl.float32)
    freq = tl.load(inv_freq_ptr + d, mask=d < HALF, other=0.0)
    return position[:, :, None] * freq, freq


@triton.jit
def _offsets(b, n, h, sb, sn, sh):
    """Element offset of head h ([1, heads]) of token (b, n) ([rows]) -> [rows, heads, 1] (int64)."""
    return (b[:, None] * sb + n[:, None] * sn + h * sh)[:, :, None]


@triton.jit
def _head_ptr(j: tl.constexpr, GQ: tl.constexpr, q_base, q_sh, k_base, k_sh):
    """Pointers of the j-th head a program visits: its GQ query heads first, then its key heads."""
    if j < GQ:
        ptr = q_base + j * q_sh
    else:
        ptr = k_base + (j - GQ) * k_sh
    return ptr


# ---------------------------------------------------------------------------------------------------------------------
# Rotary of q and k


@triton.jit
def _rotary_qk_kernel(
        xq_ptr, xk_ptr, oq_ptr, ok_ptr, sq_ptr, sk_ptr, pos_ptr, dpos_ptr, inv_freq_ptr, scaling, T, N, P,
        xq_sb, xq_sn, xq_sh, xk_sb, xk_sn, xk_sh, oq_sb, oq_sn, oq_sh, ok_sb, ok_sn, ok_sh,
        sq_sb, sq_sn, sq_sh, sk_sb, sk_sn, sk_sh, pos_sb, pos_sn, pos_sp,
        GQ: tl.constexpr, GK: tl.constexpr, HALF: tl.constexpr, HALF_P2: tl.constexpr, REST: tl.constexpr,
        REST_P2: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BACKWARD: tl.constexpr,
        NEED_DPOS: tl.constexpr, FAST_TRIG_ONLY: tl.constexpr = False):
    """Program (token block, position-head block). Forward: o = rotate(x, +angle). Backward: x are the output
    gradients, o = rotate(x, -angle) the input gradients, and with NEED_DPOS the saved inputs s give d loss / d pos.
    Query head p*GQ + j and key head p*GK + j use position head p (GK = 0: no keys).

    Memory order: the first head's loads are issued before the trigonometry, and head j+1's before head j's stores
    (the compiler may not move a load above a store that could alias it), so each program keeps loads in flight."""
    t = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    row_ok = (t < T)[:, None] & (p < P)[None, :]
    b = (t // N).to(tl.int64)
    n = (t % N).to(tl.int64)
    d = tl.arange(0, HALF_P2)[None, None, :]
    angle, freq = _angles(pos_ptr, b, n, p, row_ok, pos_sb, pos_sn, pos_sp, inv_freq_ptr, d, HALF)
    r = tl.arange(0, REST_P2)[None, None, :]
    mask = row_ok[:, :, None] & (d < HALF)
    rest_mask = row_ok[:, :, None] & (r < REST)
    # Heads p*GQ (queries) and p*GK (keys): the first of each group; head j of the visit order is _head_ptr(j).
    x_q = xq_ptr + _offsets(b, n, (p * GQ)[None, :], xq_sb, xq_sn, xq_sh)
    x_k = xk_ptr + _offsets(b, n, (p * GK)[None, :], xk_sb, xk_sn, xk_sh)
    o_q = oq_ptr + _offsets(b, n, (p * GQ)[None, :], oq_sb, oq_sn, oq_sh)
    o_k = ok_ptr + _offsets(b, n, (p * GK)[None, :], ok_sb, ok_sn, ok_sh)
    s_q = sq_ptr + _offsets(b, n, (p * GQ)[None, :], sq_sb, sq_sn, sq_sh)
    s_k = sk_ptr + _offsets(b, n, (p * GK)[None, :], sk_sb, sk_sn, sk_sh)
    x1, x2, s1, s2 = _load_pairs(_head_ptr(0, GQ, x_q, xq_sh, x_k, xk_sh), _head_ptr(0, GQ, s_q, sq_sh, s_k, sk_sh),
                                 d, mask, HALF, NEED_DPOS)
    cos, sin = _cos_sin(angle, scaling, FAST_TRIG_ONLY)
    if BACKWARD:
        sin = -sin
    dangle = tl.zeros([BLOCK_S, BLOCK_P, HALF_P2], dtype=tl.float32)
    for j in tl.static_range(GQ + GK):
        if j + 1 < GQ + GK:
            nx1, nx2, ns1, ns2 = _load_pairs(_head_ptr(j + 1, GQ, x_q, xq_sh, x_k, xk_sh),
                                             _head_ptr(j + 1, GQ, s_q, sq_sh, s_k, sk_sh), d, mask, HALF, NEED_DPOS)
        out = _head_ptr(j, GQ, o_q, oq_sh, o_k, ok_sh)
        o1 = x1 * cos - x2 * sin
        o2 = x2 * cos + x1 * sin
        tl.store(out + d, o1.to(out.dtype.element_ty), mask=mask)
        tl.store(out + HALF + d, o2.to(out.dtype.element_ty), mask=mask)
        if REST > 0:  # dims past the rotary ones pass through
            rest = tl.load(_head_ptr(j, GQ, x_q, xq_sh, x_k, xk_sh) + 2 * HALF + r, mask=rest_mask)
            tl.store(out + 2 * HALF + r, rest.to(out.dtype.element_ty), mask=rest_mask)
        if NEED_DPOS:  # d loss / d angle = x1 * dx2 - x2 * dx1 (s: the forward input, o: its gradient)
            dangle += s1 * o2 - s2 * o1
        if j + 1 < GQ + GK:
            x1, x2, s1, s2 = nx1, nx2, ns1, ns2
    if NEED_DPOS:
        dpos = tl.sum(dangle * freq, axis=2)
        tl.store(dpos_ptr + t[:, None] * P + p[None, :], dpos, mask=row_ok)


@triton.jit
def _load_pairs(x, s, d, mask, HALF: tl.constexpr, NEED_DPOS: tl.constexpr):
    """The rotary halves (x[d], x[d + HALF]) as fp32, and those of s when NEED_DPOS (else x's again, unused)."""
    x1 = tl.load(x + d, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x + HALF + d, mask=mask, other=0.0).to(tl.float32)
    if NEED_DPOS:
        s1 = tl.load(s + d, mask=mask, other=0.0).to(tl.float32)
        s2 = tl.load(s + HALF + d, mask=mask, other=0.0).to(tl.float32)
    else:
        s1 = x1
        s2 = x2
    return x1, x2, s1, s2


def _check_heads(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"{name} must be [B, N, H, D], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"{name} must be fp16, bf16 or fp32, got {x.dtype}")
    return x if x.stride(-1) == 1 else x.contiguous()


def _strides3(x: torch.Tensor | None, fallback: torch.Tensor) -> tuple[int, int, int]:
    """(batch, token, head) strides in elements; `fallback` stands in for an absent tensor (never dereferenced)."""
    return tuple((x if x is not None else fallback).stride()[:3])


def _position_layout(positions: torch.Tensor, B: int, N: int, Hq: int, Hk: int) -> tuple[int, tuple[int, int, int]]:
    """Number of position heads the kernel iterates over and the positions' (b, n, p) strides.

    Positions shared by all heads ([B, N]) are spread over `virtual` position heads with a zero head stride, so that a
    program covers a group of about _SHARED_HEADS_PER_PROGRAM heads and the grid stays wide; each program then
    computes one cos/sin tile per token for that whole group."""
    if positions.shape[:2] != (B, N):
        raise ValueError(f"positions must be [B, N] or [B, N, P] with B={B}, N={N}, got {tuple(positions.shape)}")
    if positions.dim() == 3:
        P = positions.shape[2]
        if Hq % P or Hk % P:
            raise ValueError(f"{P} position heads must divide the query heads ({Hq}) and key heads ({Hk})")
        return P, tuple(positions.stride())
    if positions.dim() != 2:
        raise ValueError(f"positions must be [B, N] or [B, N, P], got shape {tuple(positions.shape)}")
    common = math.gcd(Hq, Hk)  # gcd(Hq, 0) == Hq: q alone
    virtual = next(v for v in range(1, common + 1)
                   if common % v == 0 and ((Hq + Hk) // v <= _SHARED_HEADS_PER_PROGRAM or v == common))
    return virtual, (positions.stride(0), positions.stride(1), 0)


def _qk_blocks(T: int, P: int, half_p2: int, config: RotaryConfig) -> tuple[int, int]:
    """(BLOCK_S, BLOCK_P) for the q/k kernel: a tile of config.tile elements, narrowed while the grid is too small."""
    tile = config.tile
    while True:
        block_p = min(_pow2(P), max(1, tile // half_p2))
        block_s = min(_pow2(T), max(1, tile // (block_p * half_p2)))
        programs = triton.cdiv(T, block_s) * triton.cdiv(P, block_p)
        if programs >= _MIN_PROGRAMS or tile <= 512 or block_s == 1:
            return block_s, block_p
        tile //= 2


def _launch_rotary_qk(x_q, x_k, positions, inv_freq, scaling, out_q, out_k, saved_q, saved_k, need_dpos, backward,
                      config):
    B, N, Hq, D = x_q.shape
    Hk = 0 if x_k is None else x_k.shape[2]
    if x_k is not None and (x_k.shape[:2] != (B, N) or x_k.shape[3] != D):
        raise ValueError(f"k {tuple(x_k.shape)} does not match q {tuple(x_q.shape)} in B, N or D")
    half = inv_freq.shape[-1]
    if half == 0 or 2 * half > D:
        raise ValueError(f"inv_freq has {half} frequencies; need 1 <= R/2 <= D/2 = {D // 2}")
    P, (pos_sb, pos_sn, pos_sp) = _position_layout(positions, B, N, Hq, Hk)
    T = B * N
    half_p2, rest = _pow2(half), D - 2 * half
    block_s, block_p = _qk_blocks(T, P, half_p2, config or DEFAULT_CONFIG)
    dpos = torch.empty((T, P), device=x_q.device, dtype=torch.float32) if need_dpos else None
    grid = (triton.cdiv(T, block_s), triton.cdiv(P, block_p))
    if T == 0:
        return dpos
    _rotary_qk_kernel[grid](
        x_q, x_q if x_k is None else x_k, out_q, out_q if out_k is None else out_k,
        x_q if saved_q is None else saved_q, x_q if saved_k is None else saved_k,
        positions, x_q if dpos is None else dpos, inv_freq, float(scaling), T, N, P,
        *_strides3(x_q, x_q), *_strides3(x_k, x_q), *_strides3(out_q, x_q), *_strides3(out_k, x_q),
        *_strides3(saved_q, x_q), *_strides3(saved_k, x_q), pos_sb, pos_sn, pos_sp,
        GQ=Hq // P, GK=Hk // P, HALF=half, HALF_P2=half_p2, REST=rest, REST_P2=_pow2(rest), BLOCK_S=block_s,
        BLOCK_P=block_p, BACKWARD=backward, NEED_DPOS=need_dpos, num_warps=(config or DEFAULT_CONFIG).num_warps)
    return dpos


def _prepare_common(q, positions, inv_freq):
    inv_freq = inv_freq.to(device=q.device, dtype=torch.float32).contiguous()
    positions = positions.to(q.device)
    if positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be an integer or floating tensor, got {positions.dtype}")
    return positions, inv_freq


def _output(shape, like: torch.Tensor, out: torch.Tensor | None, name: str) -> torch.Tensor:
    """A new contiguous tensor of `shape` with like's device and dtype, or the caller's `out` after checking that the
    kernel can write it (any strides with a contiguous last dim)."""
    shape = tuple(shape)
    if out is None:
        return torch.empty(shape, device=like.device, dtype=like.dtype)
    if tuple(out.shape) != shape or out.device != like.device or out.stride(-1) != 1:
        raise ValueError(f"{name} must have shape {shape} on {like.device} with a contiguous last dim, got "
                         f"{tuple(out.shape)} on {out.device} with strides {out.stride()}")
    return out


def rotary_qk_forward(q: torch.Tensor, k: torch.Tensor | None, positions: torch.Tensor, inv_freq: torch.Tensor,
                      attention_scaling: float = 1.0, *, out_q: torch.Tensor | None = None,
                      out_k: torch.Tensor | None = None, config: RotaryConfig | None = None):
    """Rotate q [B, N, Hq, D] and k [B, N, Hk, D] (or None) in one launch; no autograd. Returns (out_q, out_k).

    out_q/out_k may be given (any strides with a contiguous last dim, e.g. a slice of a KV cache); otherwise they are
    allocated contiguous. positions: [B, N] (any integer or float dtype) or [B, N, P] (P divides Hq and Hk)."""
    q = _check_heads(q, "q")
    k = None if k is None else _check_heads(k, "k")
    positions, inv_freq = _prepare_common(q, positions, inv_freq)
    out_q = _output(q.shape, q, out_q, "out_q")
    out_k = None if k is None else _output(k.shape, k, out_k, "out_k")
    _launch_rotary_qk(q, k, positions, inv_freq, attention_scaling, out_q, out_k, None, None, False, False, config)
    return out_q, out_k


def rotary_qk_backward(grad_q: torch.Tensor, grad_k: torch.Tensor | None, positions: torch.Tensor,
                       inv_freq: torch.Tensor, attention_scaling: float = 1.0, *, q: torch.Tensor | None = None,
                       k: torch.Tensor | None = None, config: RotaryConfig | None = None):
    """Gradients of rotary_qk_forward: returns (dq, dk, dpos). Pass the forward inputs q (and k) to get dpos
    (shape and dtype of positions, fp32 math); without them dpos is None."""
    grad_q = _check_heads(grad_q, "grad_q")
    grad_k = None if grad_k is None else _check_heads(grad_k, "grad_k")
    positions, inv_freq = _prepare_common(grad_q, positions, inv_freq)
    need_dpos = q is not None
    if need_dpos and (grad_k is None) != (k is None):
        raise ValueError("pass k exactly when grad_k is given")
    q = None if q is None else _check_heads(q, "q")
    k = None if k is None else _check_heads(k, "k")
    dq = _output(grad_q.shape, grad_q, None, "dq")
    dk = None if grad_k is None else _output(grad_k.shape, grad_k, None, "dk")
    dpos = _launch_rotary_qk(grad_q, grad_k, positions, inv_freq, attention_scaling, dq, dk, q, k, need_dpos, True,
                             config)
    if dpos is not None:
        dpos = _fold_position_grad(dpos, positions)
    return dq, dk, dpos


def _fold_position_grad(dpos: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[T, P'] fp32 partial sums -> positions' shape and dtype (virtual position heads summed for [B, N] positions)."""
    B, N = positions.shape[:2]
    dpos = dpos.view(B, N, -1)
    if positions.dim() == 2:
        dpos = dpos.sum(-1)
    return dpos.to(positions.dtype)


class RotaryQK(torch.autograd.Function):
    """Autograd wrapper of rotary_qk_forward/backward: gradients to q, k and (float) positions."""

    @staticmethod
    def forward(ctx, q, k, positions, inv_freq, attention_scaling, config):
        out_q, out_k = rotary_qk_forward(q, k, positions, inv_freq, attention_scaling, config=config)
        need_dpos = ctx.needs_input_grad[2]
        ctx.save_for_backward(q if need_dpos else None, k if need_dpos else None, positions, inv_freq)
        ctx.attention_scaling, ctx.config, ctx.need_dpos = attention_scaling, config, need_dpos
        return out_q, out_k

    @staticmethod
    def backward(ctx, grad_q, grad_k):
        q, k, positions, inv_freq = ctx.saved_tensors
        dq, dk, dpos = rotary_qk_backward(grad_q, grad_k, positions, inv_freq, ctx.attention_scaling,
                                          q=q if ctx.need_dpos else None, k=k if ctx.need_dpos else None,
                                          config=ctx.config)
        return dq, dk, dpos, None, None, None


# ---------------------------------------------------------------------------------------------------------------------
# q/k RMSNorm (over the whole H*D projection row) fused with the rotation


@triton.jit
def _head_angles(pos_ptr, b, n, t_ok, h, H: tl.constexpr, G: tl.constexpr, pos_sb, pos_sn, pos_sp, inv_freq_ptr,
                 HALF: tl.constexpr, HALF_P2: tl.constexpr, scaling, FAST_TRIG_ONLY: tl.constexpr):
    """cos, sin [rows, heads, HALF_P2] and inv_freq [1, 1, HALF_P2] for heads h ([H_P2]) using position head
    h // G."""
    row_ok = t_ok[:, None] & (h < H)[None, :]
    angle, freq = _angles(pos_ptr, b, n, h // G, row_ok, pos_sb, pos_sn, pos_sp, inv_freq_ptr,
                          tl.arange(0, HALF_P2)[None, None, :], HALF)
    cos, sin = _cos_sin(angle, scaling, FAST_TRIG_ONLY)
    return cos, sin, freq


@triton.jit
def _load_head_tiles(base, t_ok, h, d, r, H: tl.constexpr, HALF: tl.constexpr, REST: tl.constexpr):
    """fp32 tiles [rows, heads, .] of every head h ([1, H_P2, 1]) at pointers base: the two rotary halves and the
    pass-through dims (the first half again when there are none, unused)."""
    mask = t_ok[:, None, None] & (h < H) & (d < HALF)
    x1 = tl.load(base + d, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(base + HALF + d, mask=mask, other=0.0).to(tl.float32)
    if REST > 0:
        xr = tl.load(base + 2 * HALF + r, mask=t_ok[:, None, None] & (h < H) & (r < REST), other=0.0).to(tl.float32)
    else:
        xr = x1
    return x1, x2, xr


@triton.jit
def _load_weight_tiles(w_ptr, h, d, r, H: tl.constexpr, D: tl.constexpr, HALF: tl.constexpr, REST: tl.constexpr):
    """The norm weight [H*D] as fp32 tiles [1, heads, .] laid out like _load_head_tiles' (rest: w1 when absent)."""
    base = w_ptr + h * D
    w1 = tl.load(base + d, mask=(h < H) & (d < HALF), other=0.0).to(tl.float32)
    w2 = tl.load(base + HALF + d, mask=(h < H) & (d < HALF), other=0.0).to(tl.float32)
    if REST > 0:
        wr = tl.load(base + 2 * HALF + r, mask=(h < H) & (r < REST), other=0.0).to(tl.float32)
    else:
        wr = w1
    return w1, w2, wr


@triton.jit
def _store_head_tiles(base, v1, v2, vr, t_ok, h, d, r, H: tl.constexpr, HALF: tl.constexpr, REST: tl.constexpr):
    mask = t_ok[:, None, None] & (h < H) & (d < HALF)
    tl.store(base + d, v1.to(base.dtype.element_ty), mask=mask)
    tl.store(base + HALF + d, v2.to(base.dtype.element_ty), mask=mask)
    if REST > 0:
        tl.store(base + 2 * HALF + r, vr.to(base.dtype.element_ty), mask=t_ok[:, None, None] & (h < H) & (r < REST))


@triton.jit
def _rms(x1, x2, xr, eps, H: tl.constexpr, D: tl.constexpr, REST: tl.constexpr):
    """1 / RMS of each row (all heads), [rows, 1, 1]."""
    sumsq = tl.sum(tl.sum(x1 * x1 + x2 * x2, axis=2), axis=1)
    if REST > 0:
        sumsq += tl.sum(tl.sum(xr * xr, axis=2), axis=1)
    return tl.rsqrt(sumsq / (H * D) + eps)[:, None, None]


@triton.jit
def _norm_rotate_store(o_base, x1, x2, xr, w_ptr, cos, sin, eps, t_ok, h, d, r, H: tl.constexpr, D: tl.constexpr,
                       HALF: tl.constexpr, REST: tl.constexpr):
    """o = rotate(RMSNorm(x) * w) for whole rows x (tiles of _load_head_tiles)."""
    rstd = _rms(x1, x2, xr, eps, H, D, REST)
    w1, w2, wr = _load_weight_tiles(w_ptr, h, d, r, H, D, HALF, REST)
    y1 = x1 * rstd * w1
    y2 = x2 * rstd * w2
    _store_head_tiles(o_base, y1 * cos - y2 * sin, y2 * cos + y1 * sin, xr * rstd * wr, t_ok, h, d, r, H, HALF, REST)


@triton.jit
def _qk_norm_rotary_fwd_kernel(
        xq_ptr, xk_ptr, wq_ptr, wk_ptr, oq_ptr, ok_ptr, pos_ptr, inv_freq_ptr, scaling, eps, T, N,
        xq_sb, xq_sn, xk_sb, xk_sn, oq_sb, oq_sn, oq_sh, ok_sb, ok_sn, ok_sh, pos_sb, pos_sn, pos_sp,
        HQ: tl.constexpr, HK: tl.constexpr, HQ_P2: tl.constexpr, HK_P2: tl.constexpr, GQ: tl.constexpr,
        GK: tl.constexpr, D: tl.constexpr, HALF: tl.constexpr, HALF_P2: tl.constexpr, REST: tl.constexpr,
        REST_P2: tl.constexpr, BLOCK_S: tl.constexpr, FAST_TRIG_ONLY: tl.constexpr = False):
    """Program = BLOCK_S tokens with all their q and k heads (the norm needs whole rows). Both rows are loaded before
    the trigonometry so that the loads are in flight while it runs."""
    t = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
    t_ok = t < T
    b = (t // N).to(tl.int64)
    n = (t % N).to(tl.int64)
    d = tl.arange(0, HALF_P2)[None, None, :]
    r = tl.arange(0, REST_P2)[None, None, :]
    hq = tl.arange(0, HQ_P2)
    hk = tl.arange(0, HK_P2)
    q1, q2, qr = _load_head_tiles(xq_ptr + (b * xq_sb + n * xq_sn)[:, None, None] + hq[None, :, None] * D, t_ok,
                                  hq[None, :, None], d, r, HQ, HALF, REST)
    k1, k2, kr = _load_head_tiles(xk_ptr + (b * xk_sb + n * xk_sn)[:, None, None] + hk[None, :, None] * D, t_ok,
                                  hk[None, :, None], d, r, HK, HALF, REST)
    cos, sin, _ = _head_angles(pos_ptr, b, n, t_ok, hq, HQ, GQ, pos_sb, pos_sn, pos_sp, inv_freq_ptr, HALF, HALF_P2,
                               scaling, FAST_TRIG_ONLY)
    _norm_rotate_store(oq_ptr + _offsets(b, n, hq[None, :], oq_sb, oq_sn, oq_sh), q1, q2, qr, wq_ptr, cos, sin, eps,
                       t_ok, hq[None, :, None], d, r, HQ, D, HALF, REST)
    if HQ != HK:  # with as many key heads as query heads, both use the same positions: reuse cos/sin
        cos, sin, _ = _head_angles(pos_ptr, b, n, t_ok, hk, HK, GK, pos_sb, pos_sn, pos_sp, inv_freq_ptr, HALF,
                                   HALF_P2, scaling, FAST_TRIG_ONLY)
    _norm_rotate_store(ok_ptr + _offsets(b, n, hk[None, :], ok_sb, ok_sn, ok_sh), k1, k2, kr, wk_ptr, cos, sin, eps,
                       t_ok, hk[None, :, None], d, r, HK, D, HALF, REST)


@triton.jit
def _norm_rotate_bwd(x1, x2, xr, g1, g2, gr, w1, w2, wr, dx_base, dpos_ptr, t, t_ok, cos, sin, freq, heads, d, r,
                     acc1, acc2, accr, eps, H: tl.constexpr, D: tl.constexpr, HALF: tl.constexpr,
                     REST: tl.constexpr, NEED_DPOS: tl.constexpr):
    """Backward of _norm_rotate_store for whole rows x given the output gradients g and the weight tiles w. Writes
    dx (and each head's d loss / d pos to dpos_ptr[t, head]) and returns the weight-gradient accumulators plus this
    block's sum over tokens of g_y * x_hat."""
    h = heads[None, :, None]
    rstd = _rms(x1, x2, xr, eps, H, D, REST)
    xh1 = x1 * rstd
    xh2 = x2 * rstd
    xhr = xr * rstd
    # Gradient w.r.t. the normalised, weighted, not yet rotated y: the rotation by -angle.
    gy1 = g1 * cos + g2 * sin
    gy2 = g2 * cos - g1 * sin
    if NEED_DPOS:
        dangle = (xh1 * w1) * gy2 - (xh2 * w2) * gy1
        tl.store(dpos_ptr + t[:, None] * H + heads[None, :], tl.sum(dangle * freq, axis=2),
                 mask=t_ok[:, None] & (heads < H)[None, :])
    acc1 += tl.sum(gy1 * xh1, axis=0)
    acc2 += tl.sum(gy2 * xh2, axis=0)
    gx1 = gy1 * w1
    gx2 = gy2 * w2
    gxr = gr * wr
    dot = tl.sum(tl.sum(gx1 * xh1 + gx2 * xh2, axis=2), axis=1)
    if REST > 0:
        accr += tl.sum(gr * xhr, axis=0)
        dot += tl.sum(tl.sum(gxr * xhr, axis=2), axis=1)
    # RMSNorm backward: dx = rstd * (g_xhat - xhat * mean(g_xhat * xhat)).
    mean = (dot / (H * D))[:, None, None]
    _store_head_tiles(dx_base, rstd * (gx1 - xh1 * mean), rstd * (gx2 - xh2 * mean), rstd * (gxr - xhr * mean), t_ok,
                      h, d, r, H, HALF, REST)
    return acc1, acc2, accr


@triton.jit
def _store_weight_grad(part_ptr, acc1, acc2, accr, h, d, r, H: tl.constexpr, D: tl.constexpr, HALF: tl.constexpr,
                       REST: tl.constexpr):
    hd = h * D
    w_mask = (h < H) & (d < HALF)
    tl.store(part_ptr + hd + d, acc1, mask=w_mask)
    tl.store(part_ptr + hd + HALF + d, acc2, mask=w_mask)
    if REST > 0:
        tl.store(part_ptr + hd + 2 * HALF + r, accr, mask=(h < H) & (r < REST))


@triton.jit
def _qk_norm_rotary_bwd_kernel(
        xq_ptr, xk_ptr, wq_ptr, wk_ptr, gq_ptr, gk_ptr, dxq_ptr, dxk_ptr, dwq_ptr, dwk_ptr, dposq_ptr, dposk_ptr,
        pos_ptr, inv_freq_ptr, scaling, eps, T, N, num_programs, iterations,
        xq_sb, xq_sn, xk_sb, xk_sn, gq_sb, gq_sn, gq_sh, gk_sb, gk_sn, gk_sh, pos_sb, pos_sn, pos_sp,
        HQ: tl.constexpr, HK: tl.constexpr, HQ_P2: tl.constexpr, HK_P2: tl.constexpr, GQ: tl.constexpr,
        GK: tl.constexpr, D: tl.constexpr, HALF: tl.constexpr, HALF_P2: tl.constexpr, REST: tl.constexpr,
        REST_P2: tl.constexpr, BLOCK_S: tl.constexpr, NEED_DPOS: tl.constexpr,
        FAST_TRIG_ONLY: tl.constexpr = False):
    """Persistent programs over token blocks; each accumulates its weight-gradient partial sums in registers and
    writes one row of dwq/dwk ([programs, H*D] fp32, summed on the host side). dx rows are contiguous [T, H*D]."""
    pid = tl.program_id(0)
    d = tl.arange(0, HALF_P2)[None, None, :]
    r = tl.arange(0, REST_P2)[None, None, :]
    hq = tl.arange(0, HQ_P2)
    hk = tl.arange(0, HK_P2)
    accq1 = tl.zeros([HQ_P2, HALF_P2], dtype=tl.float32)
    accq2 = tl.zeros([HQ_P2, HALF_P2], dtype=tl.float32)
    accqr = tl.zeros([HQ_P2, REST_P2], dtype=tl.float32)
    acck1 = tl.zeros([HK_P2, HALF_P2], dtype=tl.float32)
    acck2 = tl.zeros([HK_P2, HALF_P2], dtype=tl.float32)
    acckr = tl.zeros([HK_P2, REST_P2], dtype=tl.float32)
    # Loaded once: inside the loop the compiler could not hoist them above the dx stores (possible aliasing).
    wq1, wq2, wqr = _load_weight_tiles(wq_ptr, hq[None, :, None], d, r, HQ, D, HALF, REST)
    wk1, wk2, wkr = _load_weight_tiles(wk_ptr, hk[None, :, None], d, r, HK, D, HALF, REST)
    # Block pid + i * num_programs; blocks past the end are fully masked. A while loop because Triton's interpreter
    # cannot take a runtime argument as a range() bound (its scalars are 1-element arrays).
    i = 0
    while i < iterations:
        t = (pid + i * num_programs) * BLOCK_S + tl.arange(0, BLOCK_S)
        i += 1
        t_ok = t < T
        b = (t // N).to(tl.int64)
        n = (t % N).to(tl.int64)
        q_rows = (b * xq_sb + n * xq_sn)[:, None, None] + hq[None, :, None] * D
        k_rows = (b * xk_sb + n * xk_sn)[:, None, None] + hk[None, :, None] * D
        # All of this block's loads first (see the forward kernel).
        xq1, xq2, xqr = _load_head_tiles(xq_ptr + q_rows, t_ok, hq[None, :, None], d, r, HQ, HALF, REST)
        gq1, gq2, gqr = _load_head_tiles(gq_ptr + _offsets(b, n, hq[None, :], gq_sb, gq_sn, gq_sh), t_ok,
                                         hq[None, :, None], d, r, HQ, HALF, REST)
        xk1, xk2, xkr = _load_head_tiles(xk_ptr + k_rows, t_ok, hk[None, :, None], d, r, HK, HALF, REST)
        gk1, gk2, gkr = _load_head_tiles(gk_ptr + _offsets(b, n, hk[None, :], gk_sb, gk_sn, gk_sh), t_ok,
                                         hk[None, :, None], d, r, HK, HALF, REST)
        cos, sin, freq = _head_angles(pos_ptr, b, n, t_ok, hq, HQ, GQ, pos_sb, pos_sn, pos_sp, inv_freq_ptr, HALF,
                                      HALF_P2, scaling, FAST_TRIG_ONLY)
        accq1, accq2, accqr = _norm_rotate_bwd(
            xq1, xq2, xqr, gq1, gq2, gqr, wq1, wq2, wqr, dxq_ptr + t.to(tl.int64)[:, None, None] * (HQ * D)
            + hq[None, :, None] * D, dposq_ptr, t, t_ok, cos, sin, freq, hq, d, r, accq1, accq2, accqr, eps, HQ, D,
            HALF, REST, NEED_DPOS)
        if HQ != HK:
            cos, sin, freq = _head_angles(pos_ptr, b, n, t_ok, hk, HK, GK, pos_sb, pos_sn, pos_sp, inv_freq_ptr, HALF,
                                          HALF_P2, scaling, FAST_TRIG_ONLY)
        acck1, acck2, acckr = _norm_rotate_bwd(
            xk1, xk2, xkr, gk1, gk2, gkr, wk1, wk2, wkr, dxk_ptr + t.to(tl.int64)[:, None, None] * (HK * D)
            + hk[None, :, None] * D, dposk_ptr, t, t_ok, cos, sin, freq, hk, d, r, acck1, acck2, acckr, eps, HK, D,
            HALF, REST, NEED_DPOS)
    d2 = tl.arange(0, HALF_P2)[None, :]
    r2 = tl.arange(0, REST_P2)[None, :]
    _store_weight_grad(dwq_ptr + pid * (HQ * D), accq1, accq2, accqr, hq[:, None], d2, r2, HQ, D, HALF, REST)
    _store_weight_grad(dwk_ptr + pid * (HK * D), acck1, acck2, acckr, hk[:, None], d2, r2, HK, D, HALF, REST)


def _check_rows(x: torch.Tensor, name: str, B: int | None = None, N: int | None = None) -> torch.Tensor:
    if x.dim() != 3:
        raise ValueError(f"{name} must be [B, N, H*D], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"{name} must be fp16, bf16 or fp32, got {x.dtype}")
    if B is not None and x.shape[:2] != (B, N):
        raise ValueError(f"{name} {tuple(x.shape)} does not match B={B}, N={N}")
    return x if x.stride(-1) == 1 else x.contiguous()


@dataclass(frozen=True)
class _NormShape:
    B: int
    N: int
    Hq: int
    Hk: int
    D: int
    half: int
    P: int
    pos_strides: tuple[int, int, int]

    @property
    def T(self) -> int:
        return self.B * self.N

    def meta(self, block_s: int) -> dict:
        rest = self.D - 2 * self.half
        return dict(HQ=self.Hq, HK=self.Hk, HQ_P2=_pow2(self.Hq), HK_P2=_pow2(self.Hk), GQ=self.Hq // self.P,
                    GK=self.Hk // self.P, D=self.D, HALF=self.half, HALF_P2=_pow2(self.half), REST=rest,
                    REST_P2=_pow2(rest), BLOCK_S=block_s)

    def block_s(self, config: RotaryConfig) -> int:
        per_token = max(_pow2(self.Hq), _pow2(self.Hk)) * _pow2(self.half)
        return min(_pow2(self.T), max(1, config.tile // per_token))


def _norm_shape(q_proj, k_proj, q_weight, k_weight, positions, inv_freq, num_heads, num_kv_heads) -> _NormShape:
    B, N, q_width = q_proj.shape
    if q_width % num_heads:
        raise ValueError(f"q_proj width {q_width} is not a multiple of num_heads={num_heads}")
    D = q_width // num_heads
    if k_proj.shape[2] != num_kv_heads * D:
        raise ValueError(f"k_proj width {k_proj.shape[2]} != num_kv_heads * head_dim = {num_kv_heads * D}")
    if q_weight.shape != (q_width,) or k_weight.shape != (num_kv_heads * D,):
        raise ValueError(f"norm weights must be [{q_width}] and [{num_kv_heads * D}], got "
                         f"{tuple(q_weight.shape)} and {tuple(k_weight.shape)}")
    half = inv_freq.shape[-1]
    if half == 0 or 2 * half > D:
        raise ValueError(f"inv_freq has {half} frequencies; need 1 <= R/2 <= D/2 = {D // 2}")
    if positions.shape[:2] != (B, N) or positions.dim() not in (2, 3):
        raise ValueError(f"positions must be [B, N] or [B, N, P] with B={B}, N={N}, got {tuple(positions.shape)}")
    P = 1 if positions.dim() == 2 else positions.shape[2]
    if num_heads % P or num_kv_heads % P:
        raise ValueError(f"{P} position heads must divide num_heads={num_heads} and num_kv_heads={num_kv_heads}")
    pos_strides = (positions.stride(0), positions.stride(1), 0 if positions.dim() == 2 else positions.stride(2))
    return _NormShape(B, N, num_heads, num_kv_heads, D, half, P, pos_strides)


def qk_norm_rotary_forward(q_proj: torch.Tensor, k_proj: torch.Tensor, q_weight: torch.Tensor,
                           k_weight: torch.Tensor, eps: float, positions: torch.Tensor, inv_freq: torch.Tensor,
                           attention_scaling: float, num_heads: int, num_kv_heads: int, *,
                           out_q: torch.Tensor | None = None, out_k: torch.Tensor | None = None,
                           config: RotaryConfig | None = None):
    """RMSNorm(q_proj [B, N, Hq*D]) * q_weight, then rotation, -> q [B, N, Hq, D]; the same for k. No autograd.
    out_q/out_k as in rotary_qk_forward (e.g. k written straight into a KV-cache slice when decoding)."""
    q_proj = _check_rows(q_proj, "q_proj")
    k_proj = _check_rows(k_proj, "k_proj", *q_proj.shape[:2])
    positions, inv_freq = _prepare_common(q_proj, positions, inv_freq)
    s = _norm_shape(q_proj, k_proj, q_weight, k_weight, positions, inv_freq, num_heads, num_kv_heads)
    config = config or DEFAULT_CONFIG
    out_q = _output((s.B, s.N, s.Hq, s.D), q_proj, out_q, "out_q")
    out_k = _output((s.B, s.N, s.Hk, s.D), k_proj, out_k, "out_k")
    if s.T == 0:
        return out_q, out_k
    block_s = s.block_s(config)
    _qk_norm_rotary_fwd_kernel[(triton.cdiv(s.T, block_s),)](
        q_proj, k_proj, q_weight.contiguous(), k_weight.contiguous(), out_q, out_k, positions, inv_freq,
        float(attention_scaling), float(eps), s.T, s.N, q_proj.stride(0), q_proj.stride(1), k_proj.stride(0),
        k_proj.stride(1), *out_q.stride()[:3], *out_k.stride()[:3], *s.pos_strides, **s.meta(block_s),
        num_warps=config.num_warps)
    return out_q, out_k


def qk_norm_rotary_backward(grad_q: torch.Tensor, grad_k: torch.Tensor, q_proj: torch.Tensor, k_proj: torch.Tensor,
                            q_weight: torch.Tensor, k_weight: torch.Tensor, eps: float, positions: torch.Tensor,
                            inv_freq: torch.Tensor, attention_scaling: float, num_heads: int, num_kv_heads: int, *,
                            need_dpos: bool = True, config: RotaryConfig | None = None,
                            max_programs: int | None = None):
    """Gradients of qk_norm_rotary_forward: (dq_proj, dk_proj, dq_weight, dk_weight, dpos or None).

    dq_proj/dk_proj come out contiguous [B, N, H*D]; weight gradients are the sum of per-program fp32 partials
    (max_programs persistent programs, 4 per SM by default)."""
    q_proj = _check_rows(q_proj, "q_proj")
    k_proj = _check_rows(k_proj, "k_proj", *q_proj.shape[:2])
    positions, inv_freq = _prepare_common(q_proj, positions, inv_freq)
    s = _norm_shape(q_proj, k_proj, q_weight, k_weight, positions, inv_freq, num_heads, num_kv_heads)
    grad_q = _check_heads(grad_q, "grad_q")
    grad_k = _check_heads(grad_k, "grad_k")
    config = config or NORM_BACKWARD_CONFIG
    dev = q_proj.device
    dq = torch.empty((s.B, s.N, s.Hq * s.D), device=dev, dtype=q_proj.dtype)
    dk = torch.empty((s.B, s.N, s.Hk * s.D), device=dev, dtype=k_proj.dtype)
    block_s = s.block_s(config)
    num_blocks = triton.cdiv(s.T, block_s)
    if max_programs is None:
        max_programs = 4 * _sm_count(dev.index if dev.index is not None else torch.cuda.current_device()) \
            if dev.type == "cuda" else 4
    programs = max(1, min(num_blocks, max_programs))
    dwq = torch.empty((programs, s.Hq * s.D), device=dev, dtype=torch.float32)
    dwk = torch.empty((programs, s.Hk * s.D), device=dev, dtype=torch.float32)
    dposq = torch.empty((s.T, s.Hq), device=dev, dtype=torch.float32) if need_dpos else dwq
    dposk = torch.empty((s.T, s.Hk), device=dev, dtype=torch.float32) if need_dpos else dwk
    if s.T == 0:
        dwq.zero_()
        dwk.zero_()
    else:
        _qk_norm_rotary_bwd_kernel[(programs,)](
            q_proj, k_proj, q_weight.contiguous(), k_weight.contiguous(), grad_q, grad_k, dq, dk, dwq, dwk, dposq,
            dposk, positions, inv_freq, float(attention_scaling), float(eps), s.T, s.N, programs,
            triton.cdiv(num_blocks, programs),
            q_proj.stride(0), q_proj.stride(1), k_proj.stride(0), k_proj.stride(1), *grad_q.stride()[:3],
            *grad_k.stride()[:3], *s.pos_strides, **s.meta(block_s), NEED_DPOS=need_dpos,
            num_warps=config.num_warps)
    dpos = None
    if need_dpos:
        # Per-head partials -> per position head (head h uses position head h // G).
        dpos = (dposq.view(s.T, s.P, s.Hq // s.P).sum(-1) + dposk.view(s.T, s.P, s.Hk // s.P).sum(-1))
        dpos = dpos.view(positions.shape).to(positions.dtype)
    return dq, dk, dwq.sum(0).to(q_weight.dtype), dwk.sum(0).to(k_weight.dtype), dpos


class QKNormRotary(torch.autograd.Function):
    """Autograd wrapper of the fused q/k RMSNorm + rotary: gradients to q_proj, k_proj, both weights and positions."""

    @staticmethod
    def forward(ctx, q_proj, k_proj, q_weight, k_weight, eps, positions, inv_freq, attention_scaling, num_heads,
                num_kv_heads, config):
        out_q, out_k = qk_norm_rotary_forward(q_proj, k_proj, q_weight, k_weight, eps, positions, inv_freq,
                                              attention_scaling, num_heads, num_kv_heads, config=config)
        ctx.save_for_backward(q_proj, k_proj, q_weight, k_weight, positions, inv_freq)
        ctx.args = (eps, attention_scaling, num_heads, num_kv_heads, config)
        return out_q, out_k

    @staticmethod
    def backward(ctx, grad_q, grad_k):
        q_proj, k_proj, q_weight, k_weight, positions, inv_freq = ctx.saved_tensors
        eps, scaling, num_heads, num_kv_heads, config = ctx.args
        dq, dk, dwq, dwk, dpos = qk_norm_rotary_backward(
            grad_q, grad_k, q_proj, k_proj, q_weight, k_weight, eps, positions, inv_freq, scaling, num_heads,
            num_kv_heads, need_dpos=ctx.needs_input_grad[5], config=config)
        return dq, dk, dwq, dwk, None, dpos, None, None, None, None, None
