"""RMSNorm variants and SwiGLU (posbench/kernels/fused_triton.py) against the plain-PyTorch references
(posbench/kernels/fused.py), and
the model core wired through them.

Devices: "cpu" runs the Triton kernels through Triton's interpreter and needs TRITON_INTERPRET=1 (set by
scripts/test.sh); "cuda" runs them natively and needs a GPU with TRITON_INTERPRET unset. Each check draws fresh random
inputs (the seed is in the failure message) and poisons every buffer the kernels allocate with NaN.

Tolerances (posbench.kernels.parity.TOLERANCE): ||out - ref|| / ||ref|| < 1e-5 in fp32 and < 1e-2 in bf16, for outputs
(kernel
vs the reference in the same dtypes) and gradients (vs autograd through the fp32 reference on the same values). Under
the interpreter, bf16 outputs must also be bit-equal to eager's in all but < 1e-2 of the elements (the kernels repeat
eager's roundings, see fused_triton._cast); on a GPU, hardware rsqrt/FMA rounding makes last-bit flips common, so
there the relative error is the criterion.
"""

import pytest
import torch
import torch.nn.functional as F

from posbench.kernels import fused, parity
from tests.kernel_testing import DEVICES, INTERPRET, assert_within, run_without_triton

DTYPES = [torch.float32, torch.bfloat16]
needs_interpreter = pytest.mark.skipif(not (INTERPRET and fused.triton_available()),
                                       reason="runs the Triton kernels on CPU: needs triton and TRITON_INTERPRET=1")



@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cast_before_weight", [False, True], ids=["cast_after", "cast_before"])
@pytest.mark.parametrize("op", parity.NORM_OPS)
@pytest.mark.parametrize("case", parity.FUSED_CASES, ids=lambda c: c.name)
def test_norm_forward_and_gradients(case, op, cast_before_weight, dtype, device):
    errors = parity.check_fused_norm(op, cast_before_weight, case, dtype, device)
    assert_within(errors, dtype, f"{op} cast_before_weight={cast_before_weight} {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", parity.SWIGLU_CASES, ids=lambda c: c.name)
def test_swiglu_forward_and_gradients(case, dtype, device):
    assert_within(parity.check_swiglu(case, dtype, device), dtype, f"swiglu {case}")


def _old_rms_norm(x, weight, eps, cast_before_weight):
    """core/model.py's RMSNorm.forward before it called kernels.fused (the CPU path must not change)."""
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if cast_before_weight:
        return weight * xf.to(x.dtype)
    return (weight * xf).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cast_before_weight", [False, True], ids=["cast_after", "cast_before"])
def test_auto_on_cpu_is_the_old_eager_code_bit_for_bit(cast_before_weight, dtype):
    gen = torch.Generator().manual_seed(0)
    x, a = (torch.randn(2, 5, 24, generator=gen).to(dtype) for _ in range(2))
    w = (1 + 0.2 * torch.randn(24, generator=gen)).to(dtype)
    eps = 1e-5
    assert torch.equal(fused.rms_norm(x, w, eps, cast_before_weight), _old_rms_norm(x, w, eps, cast_before_weight))
    # OLMo-2 block: h = x + norm(a); Llama block: h = x + a, then norm(h)
    assert torch.equal(fused.add_rms_norm(x, a, w, eps, cast_before_weight),
                       x + _old_rms_norm(a, w, eps, cast_before_weight))
    h, normed = fused.add_then_rms_norm(x, a, w, eps, cast_before_weight)
    assert torch.equal(h, x + a) and torch.equal(normed, _old_rms_norm(x + a, w, eps, cast_before_weight))
    assert torch.equal(fused.swiglu(x, a), F.silu(x) * a)


def test_invalid_arguments_are_rejected():
    x, w = torch.randn(3, 8), torch.ones(8)
    with pytest.raises(ValueError, match="backend"):
        fused.rms_norm(x, w, 1e-6, backend="fast")
    if fused.triton_available() and INTERPRET:
        with pytest.raises(ValueError, match="dtypes"):
            fused.rms_norm(x.double(), w, 1e-6, backend="triton")
        with pytest.raises(ValueError, match="weight"):
            fused.rms_norm(x, torch.ones(4), 1e-6, backend="triton")
        with pytest.raises(ValueError, match="shapes"):
            fused.add_rms_norm(x, x[:1], w, 1e-6, backend="triton")
        with pytest.raises(ValueError, match="row width"):
            fused.rms_norm(torch.randn(1, 20000), torch.ones(20000), 1e-6, backend="triton")


@needs_interpreter
def test_auto_falls_back_to_the_reference_where_the_kernels_cannot(monkeypatch):
    """With "auto" meaning Triton (as on CUDA), float64, broadcasting and over-wide rows still take the reference."""
    monkeypatch.setattr(fused, "_auto_triton", lambda device: True)
    x = torch.randn(3, 8, dtype=torch.float64)
    assert torch.equal(fused.rms_norm(x, torch.ones(8, dtype=torch.float64), 1e-6),
                       fused.rms_norm_reference(x, torch.ones(8, dtype=torch.float64), 1e-6))
    x32 = torch.randn(3, 8)
    assert torch.equal(fused.add_rms_norm(x32, x32[:1], torch.ones(8), 1e-6),
                       fused.add_rms_norm_reference(x32, x32[:1], torch.ones(8), 1e-6))
    wide = torch.randn(1, fused._triton.MAX_COLUMNS + 1)
    assert torch.equal(fused.rms_norm(wide, torch.ones(wide.shape[1]), 1e-6),
                       fused.rms_norm_reference(wide, torch.ones(wide.shape[1]), 1e-6))


@needs_interpreter
def test_empty_inputs():
    x = torch.randn(0, 16)
    w = torch.ones(16, requires_grad=True)
    out = fused.rms_norm(x.requires_grad_(), w, 1e-6, backend="triton")
    assert out.shape == (0, 16)
    (dw,) = torch.autograd.grad(out.sum(), [w])
    assert torch.equal(dw, torch.zeros(16))
    assert fused.swiglu(torch.randn(2, 0), torch.randn(2, 0), backend="triton").shape == (2, 0)


@needs_interpreter
def test_no_grad_path_matches_autograd_path():
    """Under no_grad the dispatch calls the launchers directly (no autograd.Function): same values."""
    gen = torch.Generator().manual_seed(3)
    r, x = (torch.randn(5, 40, generator=gen, dtype=torch.float32) for _ in range(2))
    w = torch.randn(40, generator=gen).requires_grad_()
    with_grad = fused.add_then_rms_norm(r, x, w, 1e-6, True, backend="triton")
    with torch.no_grad():
        without = fused.add_then_rms_norm(r, x, w, 1e-6, True, backend="triton")
    assert all(torch.equal(a, b) for a, b in zip(with_grad, without, strict=True))


@needs_interpreter
@pytest.mark.parametrize("arch", ["olmo2", "llama"])
def test_model_through_the_kernels_matches_the_reference_path(tmp_path, monkeypatch, arch):
    """The model core with posbench.kernels.fused's "auto" meaning Triton (its CUDA path, here through the
    interpreter) against
    its CPU reference path: logits (full and last_only, whose final norm reads strided rows), and the gradients of
    every parameter. fp32: max abs logit difference <= 1e-4, gradients within 1e-4 relative."""
    from tiny_checkpoints import VOCAB, hf_model, save_hf

    from posbench.harness.core.checkpoint import load_model
    path = save_hf(hf_model(arch, num_key_value_heads=2, num_hidden_layers=2), tmp_path / arch)
    model, _, _ = load_model(path)
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(5))

    def run():
        model.zero_grad()
        logits = model(ids)
        (logits.float().square().mean()).backward()
        with torch.no_grad():
            last = model(ids, last_only=True)
        return logits.detach(), last, {n: p.grad.clone() for n, p in model.named_parameters()}

    ref_logits, ref_last, ref_grads = run()
    calls = []
    real = fused._auto_triton
    monkeypatch.setattr(fused, "_auto_triton", lambda device: calls.append(device) or True)
    logits, last, grads = run()
    monkeypatch.setattr(fused, "_auto_triton", real)
    assert len(calls) >= 2 * 3, "the model did not dispatch its norms and SwiGLU through posbench.kernels.fused"
    assert (logits - ref_logits).abs().max().item() <= 1e-4
    assert (last - ref_last).abs().max().item() <= 1e-4
    assert torch.allclose(last[:, -1], logits[:, -1], atol=1e-4)
    for name, g in grads.items():
        assert parity.rel_err(g, ref_grads[name]) < 1e-4, name


def test_fused_imports_without_triton():
    """CPU installs without triton must import posbench.kernels.fused and the model, and fall back to the references."""
    code = ("import torch, posbench.kernels.fused as f, posbench.harness.core.model\n"
            "assert not f.triton_available()\n"
            "x = torch.randn(2, 8)\n"
            "assert torch.equal(f.rms_norm(x, torch.ones(8), 1e-6), f.rms_norm_reference(x, torch.ones(8), 1e-6))\n"
            "assert torch.equal(f.swiglu(x, x), f.swiglu_reference(x, x))\n")
    result = run_without_triton(code)
    assert result.returncode == 0, result.stderr


def test_nope_qk_norm_goes_through_the_fused_norm():
    """apply_qk_norm_rotary without positions (NoPE) normalises through posbench.kernels.fused: on CPU the same values
    as the
    rotary module's own reference, bit for bit."""
    from posbench.kernels.rotary import apply_qk_norm_rotary, rms_norm_reference
    gen = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 3, 32, generator=gen).bfloat16(), torch.randn(2, 3, 16, generator=gen).bfloat16()
    wq, wk = ((1 + 0.2 * torch.randn(n, generator=gen)).bfloat16() for n in (32, 16))
    out_q, out_k = apply_qk_norm_rotary(q, k, wq, wk, 1e-6, None, None, 1.0, 4, 2)
    assert torch.equal(out_q, rms_norm_reference(q, wq, 1e-6).view(2, 3, 4, 8))
    assert torch.equal(out_k, rms_norm_reference(k, wk, 1e-6).view(2, 3, 2, 8))
    if INTERPRET and fused.triton_available():
        tq, tk = apply_qk_norm_rotary(q, k, wq, wk, 1e-6, None, None, 1.0, 4, 2, backend="triton")
        assert torch.equal(tq, out_q) and torch.equal(tk, out_k)
