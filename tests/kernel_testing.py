"""What the kernel tests share. Where they run: "cpu" executes the Triton kernels through Triton's interpreter (needs
triton and TRITON_INTERPRET=1, which scripts/test.sh sets), "cuda" natively (needs a GPU and TRITON_INTERPRET unset).
How they judge: posbench.kernels.parity's tolerances."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posbench.kernels import parity

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
HAVE_TRITON = importlib.util.find_spec("triton") is not None
DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not (INTERPRET and HAVE_TRITON),
                                                 reason="Triton kernels on CPU need triton and TRITON_INTERPRET=1")),
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
        INTERPRET or not torch.cuda.is_available(), reason="needs a CUDA device and TRITON_INTERPRET unset")]),
]


def run_without_triton(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter at the repo root where `import triton` fails (a CPU install without it)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-c", "import sys; sys.modules['triton'] = None\n" + code],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, check=False)


def assert_within(errors: dict, dtype, what: str):
    """Every relative error of a kernels.parity check below its dtype's tolerance (the seed is in the message)."""
    tol = parity.TOLERANCE[dtype]
    bad = {k: v for k, v in errors.items() if k != "seed" and not v < tol}
    assert not bad, f"{what}: relative errors {bad} not < {tol} (seed {errors['seed']})"
