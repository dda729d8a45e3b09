"""RMSNorm (alone or fused with a residual add) and SwiGLU: the plain-PyTorch references and the dispatch the model core
calls. On CUDA tensors each is one Triton pass (posbench/kernels/fused_triton.py), forward and backward; elsewhere the
reference.

    rms_norm(x, weight, eps, cast_before_weight=False)           -> norm(x)
    add_rms_norm(residual, x, weight, eps, cast_before_weight)   -> residual + norm(x)       (post-norm: OLMo-2)
    add_then_rms_norm(residual, x, weight, eps, cast_before_w.)  -> (h, norm(h)), h = residual + x   (pre-norm)
    swiglu(gate, up)                                             -> silu(gate) * up
    repo_positions(gate, content, weight)                        -> fp32(linear(silu(gate) * content, weight))

norm(x) = weight * (x * rsqrt(mean(x^2, last dim) + eps)), statistics in fp32. cast_before_weight (Llama) rounds the
normalised value to x's dtype before the weight, whose product is then in promote(weight, x); otherwise (OLMo-2) the
weight is applied in fp32 and the result cast to x's dtype. The references are exactly the eager code of the model
core and of transformers (same operations, same roundings); the kernels repeat every rounding of the references, so in
bf16 they differ from them only by the last bit now and then (fp32 sums in another order, rsqrt/exp approximations).
"""
import torch
import torch.nn.functional as F

from .dispatch import on_cuda, use_triton


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float,
                       cast_before_weight: bool = False) -> torch.Tensor:
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if cast_before_weight:
        return weight * xf.to(x.dtype)
    return (weight * xf).to(x.dtype)


def add_rms_norm_reference(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float,
                           cast_before_weight: bool = False) -> torch.Tensor:
    return residual + rms_norm_reference(x, weight, eps, cast_before_weight)


def add_then_rms_norm_reference(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float,
                                cast_before_weight: bool = False):
    h = residual + x
    return h, rms_norm_reference(h, weight, eps, cast_before_weight)


def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def repo_positions_reference(gate: torch.Tensor, content: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """RePo's positions from its gate/content maps' outputs: final_map(silu(gate) * content) in the model dtype, then
    fp32 (posbench/position_schemes/repo.py's RepoPositions.from_maps, the authors' formula)."""
    return F.linear(swiglu_reference(gate, content), weight).float()


# ---------------------------------------------------------------------------------------------------------------------
# Dispatch. Triton is optional: CPU installs without it import this module fine and always use the references.

try:
    from . import fused_triton as _triton
except ImportError:  # no triton package
    _triton = None


def triton_available() -> bool:
    return _triton is not None


def _auto_triton(device: torch.device) -> bool:
    """What backend="auto" picks on a device (tests patch this to run the model's GPU path through the interpreter)."""
    return on_cuda(device)


def _unsupported(tensors, width: int | None) -> str | None:
    """Why the kernels cannot take these tensors (None: they can)."""
    if any(t.dtype not in _triton.DTYPES for t in tensors):
        return f"dtypes {[t.dtype for t in tensors]} (the kernels take fp16, bf16 and fp32)"
    if len({t.device for t in tensors}) > 1:
        return "tensors on several devices"
    if any(t.shape != tensors[0].shape for t in tensors[1:]):
        return f"shapes {[tuple(t.shape) for t in tensors]} differ (no broadcasting)"
    if width is not None and (tensors[0].dim() == 0 or not 0 < tensors[0].shape[-1] <= _triton.MAX_COLUMNS):
        return f"row width {tuple(tensors[0].shape)[-1:]} (the norm kernels take 1..{_triton.MAX_COLUMNS})"
    return None


def _use_triton(backend: str, tensors, weight: torch.Tensor | None = None) -> bool:
    """posbench.kernels.dispatch.use_triton for these tensors (and a norm weight over their rows)."""
    why = None
    if _triton is not None and backend != "reference":
        why = _unsupported(tensors, None if weight is None else weight.shape[0])
        if why is None and weight is not None and (weight.shape != tensors[0].shape[-1:]
                                                   or weight.device != tensors[0].device
                                                   or weight.dtype not in _triton.DTYPES):
            why = f"weight {tuple(weight.shape)} {weight.dtype} on {weight.device} for rows {tuple(tensors[0].shape)}"
    return use_triton(backend, _triton is not None, tensors[0].device, why, auto_on=_auto_triton)


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, cast_before_weight: bool = False, *,
             backend: str = "auto", config=None) -> torch.Tensor:
    """weight * (x * rsqrt(mean(x^2) + eps)) over the last dim (see the module docstring for cast_before_weight).
    Differentiable in x and weight. config: a fused_triton.FusedConfig to override the launch shape."""
    if not _use_triton(backend, (x,), weight):
        return rms_norm_reference(x, weight, eps, cast_before_weight)
    if _needs_grad(x, weight):
        return _triton.RMSNorm.apply(x, weight, eps, cast_before_weight, config)
    return _triton.rms_norm_forward(x, weight, eps, cast_before_weight, config=config)[0]


def add_rms_norm(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float,
                 cast_before_weight: bool = False, *, backend: str = "auto", config=None) -> torch.Tensor:
    """residual + rms_norm(x) (the post-norm residual add of an OLMo-2 block) in one pass on CUDA: reads residual and
    x, writes the sum. Differentiable in all three tensors."""
    if not _use_triton(backend, (residual, x), weight):
        return add_rms_norm_reference(residual, x, weight, eps, cast_before_weight)
    if _needs_grad(residual, x, weight):
        return _triton.AddRMSNorm.apply(residual, x, weight, eps, cast_before_weight, config)
    return _triton.rms_norm_forward(x, weight, eps, cast_before_weight, residual=residual,
                                    mode=_triton.ADD_AFTER, config=config)[0]


def add_then_rms_norm(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float,
                      cast_before_weight: bool = False, *, backend: str = "auto", config=None):
    """(h, rms_norm(h)) with h = residual + x (a pre-norm block's residual add and the norm after it) in one pass on
    CUDA: reads residual and x, writes h and the normed h. Differentiable in all three tensors."""
    if not _use_triton(backend, (residual, x), weight):
        return add_then_rms_norm_reference(residual, x, weight, eps, cast_before_weight)
    if _needs_grad(residual, x, weight):
        return _triton.AddThenRMSNorm.apply(residual, x, weight, eps, cast_before_weight, config)
    out, h, _ = _triton.rms_norm_forward(x, weight, eps, cast_before_weight, residual=residual,
                                         mode=_triton.ADD_BEFORE, config=config)
    return h, out


def swiglu(gate: torch.Tensor, up: torch.Tensor, *, backend: str = "auto", config=None) -> torch.Tensor:
    """silu(gate) * up in one pass on CUDA (reads both, writes one). gate and up may be strided views, e.g. the two
    halves of a fused gate/up projection. Differentiable in both."""
    if not _use_triton(backend, (gate, up)):
        return swiglu_reference(gate, up)
    if _needs_grad(gate, up):
        return _triton.SwiGLU.apply(gate, up, config)
    return _triton.swiglu_forward(gate, up, config=config)


def repo_positions(gate: torch.Tensor, content: torch.Tensor, weight: torch.Tensor, *,
                   backend: str = "auto") -> torch.Tensor:
    """fp32 positions [..., P] = float(linear(silu(gate) * content, weight)): RePo's SwiGLU, final map and cast in one
    Triton pass on CUDA at inference (three kernels and two intermediates otherwise). With gradients it is SwiGLU
    (fused, differentiable) followed by the linear map."""
    if _needs_grad(gate, content, weight):
        return F.linear(swiglu(gate, content, backend=backend), weight).float()
    if not _use_triton(backend, (gate, content)) or weight.device != gate.device or weight.dtype not in _triton.DTYPES:
        return repo_positions_reference(gate, content, weight)
    return _triton.repo_positions_forward(gate, content, weight)
