"""Eval mode packs q/k/v (+ RePo's maps) and gate/up into one matrix product: same values as the separate layers,
and never stale. A fused AdamW step changes weights without bumping their version counters; the packed copy is
dropped whenever the model switches train/eval mode, so evaluations during training see the current weights."""
import torch
from torch import nn

from posbench.harness.core.model import ModelConfig, PackedLinears, Transformer
from posbench.position_schemes import get_scheme


def test_packed_equals_separate_and_follows_loads():
    torch.manual_seed(0)
    layers = [nn.Linear(16, 8), nn.Linear(16, 4, bias=False), nn.Linear(16, 2)]
    packed = PackedLinears(*layers)
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        got = packed(x, packed=True)
        assert [t.shape[-1] for t in got] == [8, 4, 2]
        for out, layer in zip(got, layers):
            torch.testing.assert_close(out, layer(x), rtol=1e-6, atol=1e-6)
        layers[1].weight.copy_(torch.randn(4, 16))     # a load bumps the version counter
        torch.testing.assert_close(packed(x, packed=True)[1], layers[1](x), rtol=1e-6, atol=1e-6)
    out = packed(x, packed=True)                         # gradients on: the members run themselves
    out[0].sum().backward()
    assert layers[0].weight.grad is not None


def test_evaluation_during_training_sees_fused_optimizer_updates():
    cfg = ModelConfig.from_hf({"model_type": "olmo2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
                               "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64})
    torch.manual_seed(0)
    model = Transformer(cfg, get_scheme("repo", start_layer=1, fresh_init=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    ids = torch.randint(0, 64, (2, 12))
    version = model.layers[0].self_attn.q_proj.weight._version
    for _ in range(3):
        model.eval()
        with torch.no_grad():
            packed = model(ids)
        model.train()
        with torch.no_grad():
            separate = model(ids)                          # train mode: the members themselves
        torch.testing.assert_close(packed, separate, rtol=1e-5, atol=1e-5)
        model(ids).float().logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model.layers[0].self_attn.q_proj.weight._version == version   # why the version key alone was not enough


def test_split_packing_gives_the_same_outputs():
    """split_at packs the members as two products (RePo's maps apart from q/k/v): same values, same order."""
    torch.manual_seed(1)
    layers = [nn.Linear(16, 8, bias=False), nn.Linear(16, 8, bias=False), nn.Linear(16, 2, bias=False)]
    packed = PackedLinears(*layers)
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        one = packed(x, packed=True)
        packed.split_at = 2
        two = packed(x, packed=True)
        assert len(packed._packs) == 2 and [t.shape[-1] for t in two] == [8, 8, 2]
        for a, b, layer in zip(one, two, layers):
            torch.testing.assert_close(b, layer(x), rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
