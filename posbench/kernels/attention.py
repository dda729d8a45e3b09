"""Attention through torch's scaled_dot_product_attention with the backend chosen explicitly.

Why this choice (see /work/shared/reference/performance.md §4 and §6):
- Prefill on H100/H200: cuDNN is the fastest built-in kernel (1.6-2.1x ATen's FlashAttention-2 at 4K-16K, ~93% of
  FlashAttention-3). It is torch 2.11's default on sm90 today, but that default depends on the bundled cuDNN version
  and on TORCH_CUDNN_SDPA_DEPRIORITIZED, so prefill asks for it by name with a priority list
  cuDNN > FLASH > EFFICIENT > MATH; torch takes the first backend that accepts the inputs.
- Decode (one query against the cache): forcing a backend through `sdpa_kernel` costs host time that is visible next
  to a ~15-60 us kernel (measured up to 2x slower for GQA decode), while the default already picks cuDNN for these
  shapes on H100 with torch 2.11. So "auto" leaves single-query calls to the default.
- CPU: the default (torch's CPU flash kernel or MATH); no backend forcing.

Layout: q [B, Hq, Nq, D], k and v [B, Hk, Nk, D] (SDPA's; views of [B, N, H, D] via .transpose(1, 2) are fine).
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

_SINGLE = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
           "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
BACKENDS = ("auto", "default") + tuple(_SINGLE)
PREFILL_PRIORITY = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                    SDPBackend.MATH]
# enable_gqa arrived in torch 2.5; older versions get K/V repeated per query head.
_HAS_ENABLE_GQA = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 5)


def _backend_context(backends: list):
    try:
        return sdpa_kernel(backends, set_priority=True)
    except TypeError:  # torch without set_priority: the list is a set of allowed backends
        return sdpa_kernel(backends)


def build_mask(batch: int, num_queries: int, num_keys: int, *, causal: bool, mask: torch.Tensor | None,
               device: torch.device) -> torch.Tensor | None:
    """The boolean SDPA mask (True = attend) for causal attention aligned to the last key and/or a key mask.

    Returns None when no mask is needed. Rows that would attend to nothing (queries sitting on left padding) are
    opened to all keys: their outputs are finite garbage the caller ignores, where SDPA would give NaN, which a later
    matmul would spread into real tokens."""
    allowed = None
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = attend), got {mask.dtype}")
        allowed = mask[:, None, None, :] if mask.dim() == 2 else mask
        allowed = allowed.to(device)
    if causal and num_queries > 1:
        i = torch.arange(num_queries, device=device)[:, None]
        j = torch.arange(num_keys, device=device)[None, :]
        tri = (j <= i + (num_keys - num_queries))[None, None]
        allowed = tri if allowed is None else allowed & tri
    if allowed is None:
        return None
    if allowed.dim() != 4 or allowed.shape[0] not in (1, batch):
        raise ValueError(f"mask must be [B, Nk] or broadcastable to [B, H, Nq, Nk], got {tuple(mask.shape)}")
    allowed = allowed.expand(*allowed.shape[:2], num_queries, num_keys)
    return allowed | ~allowed.any(-1, keepdim=True)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, mask: torch.Tensor | None = None,
              backend: str = "auto", scale: float | None = None) -> torch.Tensor:
    """Scaled dot-product attention; returns [B, Hq, Nq, D].

    causal: query i sees keys j <= i + (Nk - Nq), i.e. the queries are the last Nq positions (prefill: Nq == Nk;
    decode: Nq == 1 sees the whole cache). mask: None, a boolean key mask [B, Nk] (True = real token, e.g. left
    padding), or a boolean mask broadcastable to [B, Hq, Nq, Nk]; an explicit mask costs B*Nq*Nk bytes (268 MB per
    sequence at 16K) and leaves the fastest kernels, so unpadded prefill should pass mask=None.
    backend: "auto" (see the module docstring), "default" (torch's own choice), or one of cudnn/flash/efficient/math
    to force it (an error if it cannot take the inputs). GQA (Hq a multiple of Hk) uses enable_gqa where torch has
    it; with an explicit mask K/V are repeated instead, because EFFICIENT, the fallback that takes masks, rejects
    unequal head counts."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"expected q [B, Hq, Nq, D] and k, v [B, Hk, Nk, D], got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    B, Hq, Nq, _ = q.shape
    Hk, Nk = k.shape[1], k.shape[2]
    if Hq % Hk:
        raise ValueError(f"{Hq} query heads are not a multiple of {Hk} key heads")
    # Plain causal prefill (Nq == Nk, no key mask) takes SDPA's is_causal: an explicit triangular mask would shut
    # out FLASH and cuDNN's causal kernels (measured 6.7x slower at 16K on an H200). is_causal is top-left aligned,
    # so any other shape gets the explicit mask.
    is_causal = causal and mask is None and Nq == Nk
    attn_mask = None if is_causal else build_mask(B, Nq, Nk, causal=causal, mask=mask, device=q.device)
    kwargs = dict(attn_mask=attn_mask, is_causal=is_causal, scale=scale)
    if Hq != Hk:
        if _HAS_ENABLE_GQA and attn_mask is None:
            kwargs["enable_gqa"] = True
        else:
            k = k.repeat_interleave(Hq // Hk, dim=1)
            v = v.repeat_interleave(Hq // Hk, dim=1)
    if q.device.type != "cuda" or backend == "default" or (backend == "auto" and Nq == 1):
        return F.scaled_dot_product_attention(q, k, v, **kwargs)
    backends = PREFILL_PRIORITY if backend == "auto" else [_SINGLE[backend]]
    with _backend_context(backends):
        return F.scaled_dot_product_attention(q, k, v, **kwargs)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool,
                        mask: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """Plain softmax(q k^T * scale + mask) v in fp32 with explicit head repetition, for tests."""
    B, Hq, Nq, D = q.shape
    Hk, Nk = k.shape[1], k.shape[2]
    k = k.float().repeat_interleave(Hq // Hk, dim=1)
    v = v.float().repeat_interleave(Hq // Hk, dim=1)
    scores = q.float() @ k.transpose(-1, -2) * (D ** -0.5 if scale is None else scale)
    allowed = build_mask(B, Nq, Nk, causal=causal, mask=mask, device=q.device)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return (scores.softmax(-1) @ v).to(q.dtype)
