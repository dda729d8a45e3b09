"""RePo: a checkpoint in Sakana's exact format loads as repo, computes what the paper's formula says (checked
against a plain-torch reference written here, independent of posbench/harness/core/model.py), and decodes through the
KV cache
exactly as the full forward does. Tolerance: max abs logit difference <= 1e-4 in fp32."""
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tiny_checkpoints import VOCAB, edit_config, hf_model, sakana_checkpoint, save_hf

from posbench.harness.core.checkpoint import CheckpointError, load_model
from posbench.harness.core.model import ModelConfig, Transformer
from posbench.position_schemes import get_scheme

TOL = 1e-4


def reference_olmo2_repo(weights: dict, ids, num_layers, start_layer, heads=4, theta=500000.0, eps=1e-5):
    """OLMo-2 with RePo from the formulas: post-norm blocks, QK-norm over the whole projection, and in layers >=
    start_layer each head's q and k rotated by p = W_z(SiLU(W_g h) * (W_c h)) with h the residual stream."""
    def rms(x, w):
        return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    def rotate(x, pos):  # x [B, H, N, D], pos [B, H, N]: pair i with i + D/2, angle pos * theta^(-2i/D)
        half = x.shape[-1] // 2
        angle = pos[..., None] * theta ** (-torch.arange(half, dtype=torch.float64) * 2 / x.shape[-1])
        cos, sin = torch.cos(angle), torch.sin(angle)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

    w = {k: v.double() for k, v in weights.items()}
    B, N = ids.shape
    x = w["model.embed_tokens.weight"][ids]
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    for i in range(num_layers):
        p = f"model.layers.{i}."
        split = lambda t: t.view(B, N, heads, -1).transpose(1, 2)  # noqa: E731
        q = split(rms(x @ w[p + "self_attn.q_proj.weight"].T, w[p + "self_attn.q_norm.weight"]))
        k = split(rms(x @ w[p + "self_attn.k_proj.weight"].T, w[p + "self_attn.k_norm.weight"]))
        v = split(x @ w[p + "self_attn.v_proj.weight"].T)
        if i >= start_layer:
            gate, content = x @ w[p + "self_attn.gate_map.weight"].T, x @ w[p + "self_attn.content_map.weight"].T
            pos = (F.silu(gate) * content @ w[p + "self_attn.final_map.weight"].T).transpose(1, 2)  # [B, H, N]
        else:
            pos = torch.arange(N, dtype=torch.float64).expand(B, heads, N)
        q, k = rotate(q, pos), rotate(k, pos)
        scores = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).masked_fill(~causal, float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, N, -1) @ w[p + "self_attn.o_proj.weight"].T
        h = x + rms(attn, w[p + "post_attention_layernorm.weight"])
        mlp = (F.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) \
            @ w[p + "mlp.down_proj.weight"].T
        x = h + rms(mlp, w[p + "post_feedforward_layernorm.weight"])
    return rms(x, w["model.norm.weight"]) @ w["lm_head.weight"].T


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


@torch.no_grad()
def test_sakana_checkpoint_matches_the_formula(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana")
    model, _, info = load_model(path)
    assert info["scheme"] == {"name": "repo", "params": {"start_layer": 5}}
    assert info["layer_schemes"] == ["rope"] * 5 + ["repo"] * 11
    assert info["position_parameters"] == 11 * (2 * 64 * 8 + 8 * 4)
    torch.manual_seed(3)
    ids = torch.randint(0, VOCAB, (2, 16))
    logits, positions = model(ids, return_positions=True)
    ref = reference_olmo2_repo(load_file(path / "model.safetensors"), ids, num_layers=16, start_layer=5)
    assert max_diff(logits, ref) <= TOL, f"RePo logits differ from the formula by more than {TOL}"
    # What each layer rotated by: integer positions below the start layer, learned fp32 per-head ones above.
    assert torch.equal(positions[0], torch.arange(16).expand(2, 16))
    assert positions[5].shape == (2, 16, 4) and positions[5].dtype == torch.float32
    assert positions[5].std() > 1.0, "learned positions should spread (else the test cannot tell them from zero)"
    with pytest.warns(UserWarning, match="ignoring the RePo weights of layers 5-15"):
        rope, _, _ = load_model(path, scheme="rope")
    assert max_diff(rope(ids), logits) > 1e-2, "learned positions should change the logits"


@torch.no_grad()
def test_repo_decoding_with_cache_matches_full_forward(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=8, start_layer=2)
    model, _, _ = load_model(path)
    ids = torch.randint(0, VOCAB, (2, 14))
    full = model(ids)
    cache = model.setup_cache(2, 20)
    prefill = model(ids[:, :6], cache=cache)  # a prompt, then one token at a time
    steps = [model(ids[:, t:t + 1], cache=cache) for t in range(6, 14)]
    assert cache.offset == 14
    assert max_diff(torch.cat([prefill, *steps], dim=1), full) <= TOL, f"decoding differs by more than {TOL}"


@torch.no_grad()
def test_repo_with_gqa_and_yarn_decodes_like_the_full_forward(tmp_path):
    """A Llama GQA checkpoint without RePo weights, forced to repo with fresh modules: each KV group shares one
    learned position, so cached keys stay valid; YaRN rescales the learned layers too."""
    path = save_hf(hf_model("llama", num_attention_heads=8, num_key_value_heads=2), tmp_path / "llama")
    spec = "repo,start_layer=1,fresh_init=true,init_std=0.3,scaling=yarn,factor=2,original_max_position_embeddings=8"
    model, _, info = load_model(path, scheme=spec)
    assert info["fresh_position_layers"] == [1, 2, 3]
    assert model.layers[1].self_attn.position.final_map.weight.shape == (2, 64 // 8)
    assert info["rope_parameters"]["rope_type"] == "yarn"
    ids = torch.randint(0, VOCAB, (2, 10))
    full, positions = model(ids, return_positions=True)
    assert positions[1].shape == (2, 10, 2) and 1.0 < positions[1].std() < 10, "positions should spread a few units"
    cache = model.setup_cache(2, 10)
    steps = torch.cat([model(ids[:, t:t + 1], cache=cache) for t in range(10)], dim=1)
    assert max_diff(steps, full) <= TOL, f"decoding differs by more than {TOL}"


def test_checkpoint_rope_scaling_carries_through_to_repo_layers(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=8, start_layer=5)
    edit_config(path, rope_scaling={"type": "linear", "factor": 2.0})  # the legacy key their transformers fork reads
    model, _, info = load_model(path)
    assert info["scheme_spec"] == "repo,start_layer=5"
    assert info["rope_parameters"] == {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0,
                                       "partial_rotary_factor": 1.0}
    unscaled, _, _ = load_model(path, scheme="repo,scaling=none")
    inv_freq = model.frequencies(torch.zeros(1, 1, dtype=torch.long))[0]
    assert torch.allclose(inv_freq, unscaled.frequencies(torch.zeros(1, 1, dtype=torch.long))[0] / 2)


def test_forcing_repo_without_weights_is_an_error(tmp_path):
    path = save_hf(hf_model("olmo2", num_hidden_layers=8), tmp_path / "plain")
    with pytest.raises(CheckpointError, match=r"needs RePo weights .* in layers 5-7, which the checkpoint lacks; "
                                              r"add fresh_init=true"):
        load_model(path, scheme="repo")


def test_fresh_init_follows_the_authors_init(tmp_path):
    path = save_hf(hf_model("olmo2", num_hidden_layers=8, hidden_size=256), tmp_path / "plain")
    torch.manual_seed(0)
    model, _, info = load_model(path, scheme="repo,fresh_init=true")
    assert info["fresh_position_layers"] == [5, 6, 7]
    attn = model.layers[5].self_attn
    weights = torch.cat([w.flatten() for w in [*attn.position_maps().values(), attn.position.final_map.weight]])
    assert weights.abs().max() <= 0.06 + 1e-7, "truncated at 3 std = 0.06"
    assert 0.015 < weights.std() < 0.02, "std 0.02 before truncation (about 0.0176 after)"
    model(torch.randint(0, VOCAB, (1, 5)))  # runs


def test_repo_weights_of_unused_layers_are_ignored_with_a_warning(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=8, start_layer=5)
    with pytest.warns(UserWarning, match="ignoring the RePo weights of layers 5-7: scheme nope does not use"):
        _, _, info = load_model(path, scheme="nope")
    assert info["unused_weights"][0] == "model.layers.5.self_attn.content_map.weight"


def test_forcing_repo_keeps_the_checkpoints_start_layer(tmp_path):
    """`DIR:repo` is the checkpoint's RePo (start_layer=2 here, not the scheme's default 5) with only the given
    parameters changed; parameters that would drop trained RePo layers are an error naming the weights."""
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=8, start_layer=2)
    for spec in ("repo", ("repo", {}), ("repo", {"scaling": "yarn", "factor": 2,
                                               "original_max_position_embeddings": 8})):
        _, _, info = load_model(path, scheme=spec)
        assert info["layer_schemes"] == ["rope"] * 2 + ["repo"] * 6, spec
        assert info["scheme"]["params"]["start_layer"] == 2 and not info["unused_weights"], spec
    assert info["rope_parameters"]["rope_type"] == "yarn"
    ids = torch.randint(0, VOCAB, (1, 9))
    with torch.no_grad():
        assert torch.equal(load_model(path, scheme="repo")[0](ids), load_model(path)[0](ids))
    with pytest.raises(CheckpointError, match=r"scheme repo,start_layer=4 drops the trained RePo weights of layers "
                                              r"2-3 \(model.layers.2.self_attn.content_map.weight, .*start_layer=2"):
        load_model(path, scheme="repo,start_layer=4")
    # Another scheme is an explicit choice to run without RePo: a warning, as before.
    with pytest.warns(UserWarning, match="ignoring the RePo weights of layers 2-7"):
        load_model(path, scheme="rope")


def test_olmo2_1b_shapes_give_the_published_parameter_counts():
    """OLMo-2-1B as RePo-OLMo2-1B-stage2-L5 (repo-model.md section 1), built on the meta device: 1,484,916,736
    backbone parameters, and RePo adds 11 x 1,052,672."""
    config = ModelConfig.from_hf({
        "model_type": "olmo2", "vocab_size": 100352, "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 4096,
        "rope_theta": 500000, "rms_norm_eps": 1e-6, "tie_word_embeddings": False})
    with torch.device("meta"):
        model = Transformer(config, get_scheme("repo"))
    assert model.parameter_counts() == {"total": 1_484_916_736 + 11_579_392, "position": 11_579_392}
