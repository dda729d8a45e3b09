"""The one backend choice every kernel module makes: "auto" (Triton where it runs and takes the tensors, else the
plain-PyTorch reference), "triton" (the kernels or a clear error) or "reference"."""
import os

import torch

BACKENDS = ("auto", "triton", "reference")


def interpreting() -> bool:
    """Triton's interpreter (TRITON_INTERPRET=1, read when the kernels were defined) runs kernels on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def on_cuda(device: torch.device) -> bool:
    return device.type == "cuda"


def use_triton(backend: str, loaded: bool, device: torch.device, why_not: str | None = None, auto_on=on_cuda) -> bool:
    """Whether to run the Triton kernels. loaded: the module's Triton kernels imported (triton is installed).
    why_not: why the kernels cannot take these tensors (None: they can); "auto" then falls back, "triton" raises.
    auto_on(device): where "auto" runs Triton (CUDA; tests substitute it to run the GPU path in the interpreter)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return False
    if not loaded:
        if backend == "triton":
            raise RuntimeError("backend='triton' needs the triton package")
        return False
    if backend == "auto":
        return why_not is None and auto_on(device)
    if why_not is not None:
        raise ValueError(f"backend='triton' cannot take {why_not}")
    if device.type != "cuda" and not interpreting():
        raise RuntimeError("backend='triton' on CPU tensors needs TRITON_INTERPRET=1 set before import")
    return True
