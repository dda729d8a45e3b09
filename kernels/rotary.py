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


def apply_rotary(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor,
                 attention_scaling: float = 1.0) -> torch.Tensor:
    """The model core's entry point: the fastest correct path for x's device."""
    return rotary_reference(x, positions, inv_freq, attention_scaling)
