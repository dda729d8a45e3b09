"""Weights fused at build time (gpt-fast style): q/k/v (+ a position layer's input maps) and gate/up are one parameter
each. Their outputs equal the separate maps, the checkpoint's names are views of the rows (no copy), and an
optimizer step is seen by the very next evaluation."""
import torch
import torch.nn.functional as F

from posbench.harness.core.checkpoint import checkpoint_tensors
from posbench.harness.core.model import FusedLinear, ModelConfig, Transformer
from posbench.position_schemes import get_scheme


def test_fused_outputs_equal_the_separate_maps():
    torch.manual_seed(0)
    fused = FusedLinear(16, {"a": 8, "b": 4, "c": 2}, biased=2)
    x = torch.randn(3, 5, 16)
    views = fused.views()
    assert set(views) == {"a.weight", "a.bias", "b.weight", "b.bias", "c.weight"}
    with torch.no_grad():
        for out, name in zip(fused(x), "abc"):
            expected = F.linear(x, views[f"{name}.weight"], views.get(f"{name}.bias"))
            torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert all(v.untyped_storage().data_ptr() == fused.weight.untyped_storage().data_ptr()
               for k, v in views.items() if k.endswith(".weight"))


def test_checkpoint_names_are_rows_and_training_steps_are_seen():
    cfg = ModelConfig.from_hf({"model_type": "qwen2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
                               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                               "max_position_embeddings": 64})
    torch.manual_seed(0)
    model = Transformer(cfg, get_scheme("repo", start_layer=1))
    tensors = checkpoint_tensors(model)
    attn = model.layers[1].self_attn
    assert [n for n in tensors if n.startswith("model.layers.1.self_attn.")] == [
        f"model.layers.1.self_attn.{n}" for n in ("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
                                                  "v_proj.weight", "v_proj.bias", "gate_map.weight",
                                                  "content_map.weight", "o_proj.weight", "final_map.weight")]
    assert tensors["model.layers.1.self_attn.gate_map.weight"].shape == (32 // 8, 32)
    assert attn.qkv_proj.weight[attn.qkv_proj.rows("k_proj")].data_ptr() == \
        tensors["model.layers.1.self_attn.k_proj.weight"].data_ptr()

    # Evaluations between fused AdamW steps (which do not bump version counters) see the current weights: the same
    # logits as a model freshly built from them.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    ids = torch.randint(0, 64, (2, 12))
    for _ in range(2):
        model.train()
        model(ids).float().logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        model.eval()
        fresh = Transformer(cfg, get_scheme("repo", start_layer=1)).eval()
        with torch.no_grad():
            for name, t in checkpoint_tensors(fresh).items():
                t.copy_(tensors[name])
            assert torch.equal(model(ids), fresh(ids))
