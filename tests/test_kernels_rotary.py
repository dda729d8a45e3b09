"""Rotary kernels (posbench/kernels/rotary_triton.py) against the plain-PyTorch references (posbench/kernels/rotary.py).

Devices: "cpu" runs the Triton kernels through Triton's interpreter and needs TRITON_INTERPRET=1 (set by
scripts/test.sh); "cuda" runs them natively and needs a GPU with TRITON_INTERPRET unset. Each check draws fresh random
inputs (the seed is in the failure message) and poisons every buffer the kernels allocate with NaN. Tolerances:
||out - ref|| / ||ref|| < 1e-5 in fp32 and < 1e-2 in bf16 (posbench.kernels.parity.TOLERANCE). Note: Triton 3.6's
interpreter
truncates fp32 -> bf16 where the GPU rounds to nearest, so interpreted bf16 errors (~4e-3) are larger than native ones.
"""

import pytest
import torch

from posbench.kernels import parity
from posbench.kernels.rotary import apply_qk_norm_rotary, apply_rotary_qk, rotary_reference, triton_available
from tests.kernel_testing import DEVICES, INTERPRET, assert_within, run_without_triton

DTYPES = [torch.float32, torch.bfloat16]



@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", parity.ROTARY_CASES, ids=lambda c: c.name)
def test_rotary_forward(case, dtype, device):
    assert_within(parity.check_rotary_forward(case, dtype, device), dtype, f"forward {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", parity.ROTARY_CASES, ids=lambda c: c.name)
def test_rotary_gradients(case, dtype, device):
    assert_within(parity.check_rotary_backward(case, dtype, device), dtype, f"gradients {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", parity.NORM_CASES, ids=lambda c: c.name)
def test_qk_norm_rotary_forward(case, dtype, device):
    assert_within(parity.check_norm_forward(case, dtype, device), dtype, f"norm+rotary forward {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", parity.NORM_CASES, ids=lambda c: c.name)
def test_qk_norm_rotary_gradients(case, dtype, device):
    assert_within(parity.check_norm_backward(case, dtype, device), dtype, f"norm+rotary gradients {case}")


@pytest.mark.parametrize("device", DEVICES)
def test_decode_matches_prefill_last_token(device):
    """Rotating the newest token alone (N = 1, position = cache length) equals the last row of a full prefill."""
    gen = torch.Generator(device).manual_seed(1234)
    B, N, H, D = 2, 9, 4, 32
    q = torch.randn(B, N, H, D, device=device, generator=gen)
    k = torch.randn(B, N, H, D, device=device, generator=gen)
    pos = torch.rand(B, N, H, device=device, generator=gen) * 1e4
    inv_freq = parity.inv_freq_for(D).to(device)
    full_q, full_k = apply_rotary_qk(q, k, pos, inv_freq, backend="triton")
    step_q, step_k = apply_rotary_qk(q[:, -1:], k[:, -1:], pos[:, -1:], inv_freq, backend="triton")
    torch.testing.assert_close(step_q, full_q[:, -1:], rtol=0, atol=0)
    torch.testing.assert_close(step_k, full_k[:, -1:], rtol=0, atol=0)


def test_reference_matches_float64():
    errors = parity.check_reference_float64("cpu")
    assert errors["reference"] < parity.REFERENCE_TOLERANCE, errors


def test_nope_returns_inputs_unchanged():
    q, k = torch.randn(1, 3, 2, 8), torch.randn(1, 3, 2, 8)
    out_q, out_k = apply_rotary_qk(q, k, None, torch.ones(4))
    assert out_q is q and out_k is k


def test_auto_backend_on_cpu_is_the_reference():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 5, 4, 16, generator=gen), torch.randn(2, 5, 2, 16, generator=gen)
    pos = torch.arange(5).expand(2, 5)
    inv_freq = parity.inv_freq_for(16)
    out_q, out_k = apply_rotary_qk(q, k, pos, inv_freq, 1.5, backend="auto")
    assert torch.equal(out_q, rotary_reference(q, pos, inv_freq, 1.5))
    assert torch.equal(out_k, rotary_reference(k, pos, inv_freq, 1.5))


def test_invalid_arguments_are_rejected():
    q, k = torch.randn(1, 3, 4, 8), torch.randn(1, 3, 2, 8)
    with pytest.raises(ValueError, match="backend"):
        apply_rotary_qk(q, k, torch.zeros(1, 3), torch.ones(4), backend="fast")
    if triton_available() and INTERPRET:
        with pytest.raises(ValueError, match="position heads"):  # 3 position heads cannot split 4 and 2 heads
            apply_rotary_qk(q, k, torch.zeros(1, 3, 3), torch.ones(4), backend="triton")
        with pytest.raises(ValueError, match="inv_freq"):
            apply_rotary_qk(q, k, torch.zeros(1, 3), torch.ones(5), backend="triton")
        with pytest.raises(ValueError, match="num_kv_heads"):
            apply_qk_norm_rotary(torch.randn(1, 3, 32), torch.randn(1, 3, 24), torch.ones(32), torch.ones(16), 1e-6,
                                 torch.zeros(1, 3), torch.ones(4), 1.0, 4, 2, backend="triton")


def test_kernels_import_without_triton():
    """CPU installs without triton must import posbench/kernels/ and fall back to the references."""
    code = ("import torch, posbench.kernels.rotary as r, posbench.kernels.attention, posbench.kernels.bench\n"
            "import posbench.kernels.parity\n"
            "assert not r.triton_available()\n"
            "q = torch.randn(1, 2, 2, 8)\n"
            "assert torch.equal(r.apply_rotary(q, torch.arange(2)[None], torch.ones(4)),\n"
            "                   r.rotary_reference(q, torch.arange(2)[None], torch.ones(4)))\n")
    result = run_without_triton(code)
    assert result.returncode == 0, result.stderr
