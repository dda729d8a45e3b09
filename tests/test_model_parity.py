"""Our decoder against transformers' on checkpoints that transformers wrote: full forward, token-by-token decoding
with our KV cache, scaling variants, GQA, left padding, NoPE and the hybrid layout.

Tolerance: max abs logit difference <= 1e-4 in fp32 (logits are of magnitude ~5).
"""
import copy
import inspect

import pytest
import torch
from tiny_checkpoints import VOCAB, hf_model, save_hf
from transformers import DynamicCache

from posbench.harness.core.checkpoint import load_model

TOL = 1e-4
SCALINGS = {
    "default": None,
    "linear": {"rope_type": "linear", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    "llama3": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16},
    # max_position_embeddings is 8 below, so 12 tokens make dynamic NTK rescale.
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    # Short factors up to 8 positions, long ones beyond (12 tokens switch).
    "longrope": {"rope_type": "longrope", "original_max_position_embeddings": 8,
                 "short_factor": [1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0],
                 "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0]},
}
LENGTH_DEPENDENT = ("dynamic", "longrope")


def checkpoint(tmp_path, arch, scaling="default", **config):
    rope = SCALINGS[scaling]
    if rope is not None:
        config["rope_parameters"] = {**rope, "rope_theta": 10000.0}
    if scaling == "dynamic":
        config["max_position_embeddings"] = 8
    hf = hf_model(arch, **config)
    return hf, save_hf(hf, tmp_path / f"{arch}-{scaling}")


def decode(model, ids, attention_mask=None):
    """Our logits fed one token at a time through the KV cache."""
    cache = model.setup_cache(ids.shape[0], ids.shape[1])
    steps = []
    for t in range(ids.shape[1]):
        mask = attention_mask[:, :t + 1] if attention_mask is not None else None
        steps.append(model(ids[:, t:t + 1], cache=cache, attention_mask=mask))
    return torch.cat(steps, dim=1)


def hf_decode(hf, ids):
    """transformers' logits fed one token at a time through its own cache (keys kept after rotation, like ours)."""
    cache = DynamicCache(config=hf.config)
    # transformers 5.24 renamed past_key_values to cache (the old name warns); 5.17 knows only past_key_values.
    key = "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"
    return torch.cat([hf(ids[:, t:t + 1], use_cache=True, **{key: cache}).logits for t in range(ids.shape[1])],
                     dim=1)


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("arch", ["olmo2", "llama"])
@pytest.mark.parametrize("scaling", list(SCALINGS))
@torch.no_grad()
def test_rope_matches_transformers(tmp_path, arch, scaling):
    hf, path = checkpoint(tmp_path, arch, scaling)
    model, _, info = load_model(path)
    assert info["layer_schemes"] == ["rope"] * 4 and info["rope_parameters"]["rope_type"] == scaling
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, 12))
    ref = hf(ids).logits
    assert max_diff(model(ids), ref) <= TOL, f"full forward differs by more than {TOL}"
    # Dynamic NTK and LongRoPE pick frequencies from each step's length, so with a cache they are compared with
    # transformers' own cached decoding, where past keys keep the frequencies they were rotated with.
    ref_steps = hf_decode(hf, ids) if scaling in LENGTH_DEPENDENT else ref
    assert max_diff(decode(model, ids), ref_steps) <= TOL, f"KV-cache decoding differs by more than {TOL}"


@torch.no_grad()
def test_scaling_changes_the_logits(tmp_path):
    """Guards the parity tests against being vacuous: positions matter in these tiny models."""
    _, path = checkpoint(tmp_path, "llama")
    model, _, _ = load_model(path)
    yarn, _, _ = load_model(path, scheme="rope,scaling=yarn,factor=4,original_max_position_embeddings=16")
    nope, _, _ = load_model(path, scheme="nope")
    ids = torch.randint(0, VOCAB, (1, 12))
    assert max_diff(model(ids), yarn(ids)) > 1e-2
    assert max_diff(model(ids), nope(ids)) > 1e-2


@pytest.mark.parametrize("arch", ["llama", "olmo2", "qwen2", "mistral"])
@torch.no_grad()
def test_gqa_and_biases_match_transformers(tmp_path, arch):
    """8 query heads over 2 KV heads; Qwen2 adds q/k/v biases; Mistral without a sliding window is Llama."""
    extra = {"sliding_window": None} if arch == "mistral" else {}
    hf, path = checkpoint(tmp_path, arch, "yarn", num_attention_heads=8, num_key_value_heads=2, **extra)
    model, _, _ = load_model(path)
    ids = torch.randint(0, VOCAB, (2, 10))
    ref = hf(ids).logits
    assert max_diff(model(ids), ref) <= TOL, f"GQA full forward differs by more than {TOL}"
    assert max_diff(decode(model, ids), ref) <= TOL, f"GQA KV-cache decoding differs by more than {TOL}"


@torch.no_grad()
def test_left_padding_matches_unpadded_rows(tmp_path):
    _, path = checkpoint(tmp_path, "llama", "yarn", num_attention_heads=8, num_key_value_heads=2)
    model, _, _ = load_model(path)
    torch.manual_seed(2)
    lengths = [12, 7, 9]
    rows = [torch.randint(3, VOCAB, (n,)) for n in lengths]
    ids = torch.zeros(len(rows), 12, dtype=torch.long)
    mask = torch.zeros(len(rows), 12, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, 12 - len(row):] = row
        mask[i, 12 - len(row):] = True
    full = model(ids, attention_mask=mask)
    steps = decode(model, ids, attention_mask=mask)
    for i, row in enumerate(rows):
        alone = model(row[None])[0]
        assert max_diff(full[i, 12 - len(row):], alone) <= TOL, f"row {i}: padded batch differs by more than {TOL}"
        assert max_diff(steps[i, 12 - len(row):], alone) <= TOL, f"row {i}: padded decoding differs by > {TOL}"


@pytest.mark.parametrize("arch", ["olmo2", "llama"])
@torch.no_grad()
def test_nope_matches_transformers_without_rotation(tmp_path, monkeypatch, arch):
    """NoPE = transformers with cos = 1 and sin = 0 (the DroPE trick)."""
    hf, path = checkpoint(tmp_path, arch)
    rotary_cls = type(hf.model.rotary_emb)

    def no_rotation(self, x, position_ids):
        shape = (*position_ids.shape, hf.config.hidden_size // hf.config.num_attention_heads)
        return torch.ones(shape, dtype=x.dtype), torch.zeros(shape, dtype=x.dtype)

    monkeypatch.setattr(rotary_cls, "forward", no_rotation)
    model, _, info = load_model(path, scheme="nope")
    assert info["layer_schemes"] == ["nope"] * 4
    ids = torch.randint(0, VOCAB, (2, 12))
    ref = hf(ids).logits
    assert max_diff(model(ids), ref) <= TOL, f"NoPE differs from cos=1, sin=0 by more than {TOL}"
    assert max_diff(decode(model, ids), ref) <= TOL, f"NoPE decoding differs by more than {TOL}"


@torch.no_grad()
def test_hybrid_rrrn_rotates_exactly_the_r_layers(tmp_path):
    """Behaviourally: with every other layer's attention switched off (o_proj = 0), changing the positions changes
    the logits iff the remaining layer rotates."""
    _, path = checkpoint(tmp_path, "llama", num_hidden_layers=8)
    model, _, info = load_model(path, scheme="hybrid,pattern=RRRN")
    assert [i for i, kind in enumerate(info["layer_schemes"]) if kind == "rope"] == [0, 1, 2, 4, 5, 6]
    ids = torch.randint(0, VOCAB, (1, 12))
    spaced = torch.arange(12)[None] * 3  # same order, other distances
    for layer in range(8):
        alone = copy.deepcopy(model)
        for j, block in enumerate(alone.layers):
            if j != layer:
                block.self_attn.o_proj.weight.zero_()
        change = max_diff(alone(ids), alone(ids, position_ids=spaced))
        if info["layer_schemes"][layer] == "rope":
            assert change > 1e-3, f"layer {layer} should rotate: positions changed logits by only {change}"
        else:
            assert change == 0.0, f"layer {layer} is NoPE but positions changed logits by {change}"


@pytest.mark.parametrize("arch", ["olmo2", "llama"])
@torch.no_grad()
def test_bf16_is_as_accurate_as_transformers_bf16(tmp_path, arch):
    hf, path = checkpoint(tmp_path, arch, "yarn")
    model, _, info = load_model(path, dtype=torch.bfloat16)
    assert info["dtype"] == "bfloat16" and model.embed_tokens.weight.dtype == torch.bfloat16
    ids = torch.randint(0, VOCAB, (2, 12))
    exact = hf(ids).logits
    ours = model(ids)
    assert ours.dtype == torch.bfloat16
    theirs = hf.to(torch.bfloat16)(ids).logits
    # Both round differently (we rotate in fp32, transformers in bf16), so each is compared with the fp32 logits.
    ours_err, theirs_err = max_diff(ours, exact), max_diff(theirs, exact)
    print(f"{arch} bf16 max error vs fp32: ours {ours_err:.4f}, transformers {theirs_err:.4f}")
    assert ours_err <= max(1.5 * theirs_err, 0.05), "our bf16 error exceeds 1.5x transformers' bf16 error"
    assert max_diff(decode(model, ids), ours) <= 0.1, "bf16 decoding differs from the bf16 forward by > 0.1"
