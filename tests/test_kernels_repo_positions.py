"""RePo's fused position kernel (posbench.kernels.fused.repo_positions: SwiGLU, final map and fp32 cast in one pass)
against
the eager reference and against position_schemes' RepoPositions, on fresh random inputs.

Tolerances: fp32 ||out - ref|| / ||ref|| < 1e-5. bf16: the kernel repeats eager's roundings (silu and the product to
bf16, fp32 accumulation, the result rounded to bf16), so outputs differ from eager by at most one bf16 step (2^-7
relative: a different summation order can round the other way), and under the interpreter in < 2% of elements.
"""

import pytest
import torch

from posbench.kernels import fused
from posbench.position_schemes.repo import RepoPositions
from tests.kernel_testing import DEVICES

# (batch, tokens, hidden d, position heads P): odd token counts, K = d/8 not a multiple of 16, P from 1 to 16
CASES = [(2, 37, 256, 4), (1, 5, 200, 3), (1, 70, 2048, 16), (3, 9, 128, 1)]


def _maps(B, N, d, P, dtype, device, seed):
    """gate and content as slices of one packed projection (strided rows, as the model passes them), the module."""
    gen = torch.Generator().manual_seed(seed)
    K = d // 8
    packed = (torch.randn(B, N, 3 * K + 5, generator=gen) * 3).to(device=device, dtype=dtype)
    module = RepoPositions(d, P, init_std=0.5).to(device=device, dtype=dtype)
    return packed[..., 5:5 + K], packed[..., 5 + 2 * K:5 + 3 * K], module


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_repo_positions_kernel_matches_the_reference(case, dtype, device):
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    gate, content, module = _maps(*case, dtype, device, seed)
    with torch.no_grad():
        got = fused.repo_positions(gate, content, module.final_map.weight, backend="triton")
        ref = fused.repo_positions_reference(gate, content, module.final_map.weight)
        scheme = module.from_maps(gate, content)
    assert got.dtype == torch.float32 and got.shape == (*case[:2], case[3]) and torch.isfinite(got).all()
    torch.testing.assert_close(ref, scheme, rtol=0, atol=0)   # the kernels' reference is the scheme's formula
    if dtype == torch.float32:
        rel = ((got - ref).norm() / ref.norm()).item()
        assert rel < 1e-5, f"fp32 relative error {rel} (seed {seed})"
    else:
        torch.testing.assert_close(got, ref, rtol=2**-7, atol=1e-6, msg=lambda m: f"{m} (seed {seed})")
        if device == "cpu":
            assert (got != ref).float().mean().item() < 0.02, f"too many bf16 flips (seed {seed})"


@pytest.mark.parametrize("device", DEVICES)
def test_repo_positions_with_gradients_stays_differentiable(device):
    gate, content, module = _maps(2, 11, 64, 4, torch.float32, device, seed=3)
    gate, content = gate.detach().requires_grad_(), content.detach().requires_grad_()
    out = fused.repo_positions(gate, content, module.final_map.weight, backend="triton")
    out.square().sum().backward()
    grads = [t.grad.clone() for t in (gate, content, module.final_map.weight)]
    for t in (gate, content, module.final_map.weight):
        t.grad = None
    module.from_maps(gate, content).square().sum().backward()
    for got, want in zip(grads, (gate.grad, content.grad, module.final_map.weight.grad)):
        assert ((got - want).norm() / want.norm()).item() < 1e-5   # fp32 tolerance, as every kernel's gradients


def test_repo_positions_on_cpu_is_the_reference_without_triton():
    gate, content, module = _maps(1, 7, 64, 2, torch.float32, "cpu", seed=5)
    with torch.no_grad():
        torch.testing.assert_close(fused.repo_positions(gate, content, module.final_map.weight, backend="reference"),
                                   module.from_maps(gate, content), rtol=0, atol=0)
