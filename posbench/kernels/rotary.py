"""Rotary position embedding: the plain-PyTorch reference and the dispatch the model core calls.

Layout conventions (shared by the reference and every GPU kernel):
  x          [B, N, H, D]   queries or keys, heads before head_dim (the layout a q/k projection reshapes to)
  positions  [B, N]         one position per token, shared by all heads (integer RoPE), or
             [B, N, P]      one position per token and position-head (RePo), with H % P == 0;
                            head h of x uses positions[..., h // (H // P)]. With P == H_kv, queries of a GQA
                            group and their key head share a position, so q.k still depends on a difference.
  inv_freq   [R/2]          fp32 inverse frequencies; the first R dims of each head are rotated (R <= D),
                            the rest pass through (partial rotary).
Pairing is rotate-half (NeoX/Hugging Face): dim i pairs with dim i + R/2 and turns by angle positions * inv_freq[i].
Angles, cos and sin are computed in fp32 (a 16-bit angle is useless once positions reach the thousands); cos and sin
are multiplied by attention_scaling (YaRN's mscale, 1.0 otherwise); the result is cast back to x's dtype.
"""
import torch

from .dispatch import use_triton
from .fused import rms_norm


def _expand_positions(positions: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, N] or [B, N, P] -> [B, N, H, 1] fp32, head h taking position-head h // (H // P)."""
    pos = positions.float()
    if pos.dim() == 2:
        return pos[:, :, None, None]
    per = pos.shape[-1]
    if num_heads % per:
        raise ValueError(f"{num_heads} heads cannot share {per} position heads")
    return pos.repeat_interleave(num_heads // per, dim=-1)[..., None]


def rotary_reference(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor,
                     attention_scaling: float = 1.0) -> torch.Tensor:
    """Rotate x by positions (see the module docstring for shapes). Differentiable in x and positions."""
    half = inv_freq.shape[-1]
    rot = 2 * half
    angle = _expand_positions(positions, x.shape[2]) * inv_freq.float().to(x.device)  # [B, N, H, R/2]
    cos = torch.cos(angle) * attention_scaling
    sin = torch.sin(angle) * attention_scaling
    xf = x.float()
    x1, x2, rest = xf[..., :half], xf[..., half:rot], xf[..., rot:]
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)
    return out.to(x.dtype)


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """OLMo-2's RMSNorm over the last dim (as Hugging Face's Olmo2RMSNorm): fp32 statistics, weight applied in fp32,
    result cast back to x's dtype."""
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * xf).to(x.dtype)


def qk_norm_rotary_reference(q_proj: torch.Tensor, k_proj: torch.Tensor, q_weight: torch.Tensor,
                             k_weight: torch.Tensor, eps: float, positions: torch.Tensor, inv_freq: torch.Tensor,
                             attention_scaling: float, num_heads: int, num_kv_heads: int):
    """OLMo-2 q/k path: RMSNorm over the whole projection row [B, N, H*D], split heads, rotate. Returns (q, k) as
    [B, N, H, D]. (The fused kernel skips the reference's intermediate rounding of the normalised row to 16 bits.)"""
    B, N = q_proj.shape[:2]
    q = rms_norm_reference(q_proj, q_weight, eps).view(B, N, num_heads, -1)
    k = rms_norm_reference(k_proj, k_weight, eps).view(B, N, num_kv_heads, -1)
    return (rotary_reference(q, positions, inv_freq, attention_scaling),
            rotary_reference(k, positions, inv_freq, attention_scaling))


# ---------------------------------------------------------------------------------------------------------------------
# Dispatch. Triton is optional: CPU installs without it import this module fine and always use the reference.

try:
    from . import rotary_triton as _triton
except ImportError:  # no triton package
    _triton = None

def triton_available() -> bool:
    return _triton is not None


def _use_triton(backend: str, device: torch.device) -> bool:
    """auto: Triton on CUDA, the reference elsewhere. triton: Triton or an error (CPU needs the interpreter)."""
    return use_triton(backend, _triton is not None, device)


def _expand_batch(positions: torch.Tensor, batch: int) -> torch.Tensor:
    """Positions given for one sequence ([1, N] or [1, N, P]) broadcast over the batch, as in the reference."""
    if positions.dim() >= 2 and positions.shape[0] == 1 and batch != 1:
        return positions.expand(batch, *positions.shape[1:])
    return positions


def apply_rotary_qk(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None, inv_freq: torch.Tensor,
                    attention_scaling: float = 1.0, *, backend: str = "auto", config=None):
    """Rotate q [B, N, Hq, D] and k [B, N, Hk, D] by positions ([B, N] integer or float, or [B, N, P] float with P
    dividing Hq and Hk); one Triton launch for both on CUDA. positions=None (NoPE) returns q, k unchanged.

    Differentiable in q, k and floating positions. For decoding pass N = 1 and the new token's position (cache
    length + offset). config: a rotary_triton.RotaryConfig to override the launch shape (benchmarks)."""
    if positions is None:
        return q, k
    positions = _expand_batch(positions, q.shape[0])
    if not _use_triton(backend, q.device):
        return (rotary_reference(q, positions, inv_freq, attention_scaling),
                rotary_reference(k, positions, inv_freq, attention_scaling))
    return _triton.RotaryQK.apply(q, k, positions, inv_freq, attention_scaling, config)


def apply_rotary(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, attention_scaling: float = 1.0,
                 *, backend: str = "auto", config=None) -> torch.Tensor:
    """Rotate one tensor x [B, N, H, D] (see apply_rotary_qk); the fastest correct path for x's device."""
    positions = _expand_batch(positions, x.shape[0])
    if not _use_triton(backend, x.device):
        return rotary_reference(x, positions, inv_freq, attention_scaling)
    return _triton.RotaryQK.apply(x, None, positions, inv_freq, attention_scaling, config)[0]


def apply_qk_norm_rotary(q_proj: torch.Tensor, k_proj: torch.Tensor, q_weight: torch.Tensor, k_weight: torch.Tensor,
                         eps: float, positions: torch.Tensor | None, inv_freq: torch.Tensor | None,
                         attention_scaling: float, num_heads: int, num_kv_heads: int, *, backend: str = "auto",
                         config=None):
    """OLMo-2's q/k RMSNorm (over the whole [B, N, H*D] projection row) followed by the rotation, fused into one
    Triton pass on CUDA. Returns q [B, N, num_heads, D], k [B, N, num_kv_heads, D]. positions=None (NoPE) only
    normalises. Differentiable in q_proj, k_proj, both weights and floating positions."""
    B, N = q_proj.shape[:2]
    if positions is None:  # the norms alone: kernels.fused (one Triton pass each on CUDA; the reference on CPU)
        return (rms_norm(q_proj, q_weight, eps, backend=backend).view(B, N, num_heads, -1),
                rms_norm(k_proj, k_weight, eps, backend=backend).view(B, N, num_kv_heads, -1))
    positions = _expand_batch(positions, B)
    if not _use_triton(backend, q_proj.device):
        return qk_norm_rotary_reference(q_proj, k_proj, q_weight, k_weight, eps, positions, inv_freq,
                                        attention_scaling, num_heads, num_kv_heads)
    return _triton.QKNormRotary.apply(q_proj, k_proj, q_weight, k_weight, eps, positions, inv_freq,
                                      attention_scaling, num_heads, num_kv_heads, config)
