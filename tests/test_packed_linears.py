"""Inference packs q/k/v (+ RePo's maps) and gate/up into one matrix product: same values as the separate layers,
repacked whenever a weight changes, and never used while gradients are on (training sees the real parameters)."""
import torch
from torch import nn

from harness.model import PackedLinears


def test_packed_equals_separate_and_follows_weight_updates():
    torch.manual_seed(0)
    layers = [nn.Linear(16, 8), nn.Linear(16, 4, bias=False), nn.Linear(16, 2)]
    packed = PackedLinears(*layers)
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        got = packed(x)
        assert [t.shape[-1] for t in got] == [8, 4, 2]
        for out, layer in zip(got, layers):
            torch.testing.assert_close(out, layer(x), rtol=1e-6, atol=1e-6)
        layers[1].weight.add_(1.0)                    # an optimizer step or a load changes a weight in place
        torch.testing.assert_close(packed(x)[1], layers[1](x), rtol=1e-6, atol=1e-6)
    out = packed(x)                                   # gradients on: the members run themselves
    out[0].sum().backward()
    assert layers[0].weight.grad is not None and packed._key is not None
