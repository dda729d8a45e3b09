"""Where the kernel tests run: "cpu" executes the Triton kernels through Triton's interpreter (needs triton and
TRITON_INTERPRET=1, which scripts/test.sh sets), "cuda" natively (needs a GPU and TRITON_INTERPRET unset)."""
import importlib.util
import os

import pytest
import torch

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
HAVE_TRITON = importlib.util.find_spec("triton") is not None
DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not (INTERPRET and HAVE_TRITON),
                                                 reason="Triton kernels on CPU need triton and TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
        INTERPRET or not torch.cuda.is_available(), reason="needs a CUDA device and TRITON_INTERPRET unset")]),
]
