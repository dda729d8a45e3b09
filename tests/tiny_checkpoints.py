"""Tiny random checkpoints written by transformers' own classes (nothing is downloaded), shared by the model tests.

Weights are drawn with std 0.2 and RMSNorm weights around 1, so attention is far from uniform and every position
error shows in the logits; the tests state their tolerances against logits of magnitude ~5.
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

CLASSES = {"llama": (LlamaConfig, LlamaForCausalLM), "olmo2": (Olmo2Config, Olmo2ForCausalLM),
           "qwen2": (Qwen2Config, Qwen2ForCausalLM), "mistral": (MistralConfig, MistralForCausalLM)}
VOCAB = 128


def hf_model(arch: str = "llama", seed: int = 0, **config):
    """A random transformers model: hidden 64, 4 layers, 4 heads (head_dim 16), vocab 128, unless overridden."""
    config_cls, model_cls = CLASSES[arch]
    kwargs = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, vocab_size=VOCAB, max_position_embeddings=64, initializer_range=0.2,
                  attn_implementation="eager", pad_token_id=0, bos_token_id=1, eos_token_id=2)
    kwargs.update(config)
    torch.manual_seed(seed)
    model = model_cls(config_cls(**kwargs))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
    return model.eval()


def save_hf(model, path) -> Path:
    path = Path(path)
    model.save_pretrained(path)
    return path


def edit_config(path, **changes):
    config_file = Path(path) / "config.json"
    config = json.loads(config_file.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    config_file.write_text(json.dumps(config, indent=2))


def edit_weights(path, add=None, drop=()):
    """Rewrite model.safetensors with tensors added or replaced (add) and removed (drop)."""
    weights_file = Path(path) / "model.safetensors"
    tensors = load_file(weights_file)
    for name in drop:
        del tensors[name]
    tensors.update(add or {})
    save_file(tensors, weights_file, metadata={"format": "pt"})


def repo_weights(hidden: int, heads: int, layers, seed: int = 1) -> dict:
    """Sakana-named RePo maps for these layers, scaled so that predicted positions spread over a few units (std 2-10
    in a 16-layer model). Much larger positions make the tiny model chaotic: fp32 rounding alone then moves logits."""
    gen = torch.Generator().manual_seed(seed)
    mid = hidden // 8
    out = {}
    for i in layers:
        prefix = f"model.layers.{i}.self_attn."
        out[prefix + "gate_map.weight"] = 0.2 * torch.randn(mid, hidden, generator=gen)
        out[prefix + "content_map.weight"] = 0.2 * torch.randn(mid, hidden, generator=gen)
        out[prefix + "final_map.weight"] = 0.05 * torch.randn(heads, mid, generator=gen)
    return out


SAKANA_PE_CONFIG = {
    "dynamic_pe_mode": "swigluex_multihead",
    "dynmaic_pe_start_layer": 5,
    "dynamic_pe_start_layer": 5,
    "dynamic_pe_layer_ids": "",
    "dynmaic_pe_layer_ids": "",
}


def sakana_checkpoint(path, num_layers: int = 16, start_layer: int = 5, pe_config=None, repo_layers=None):
    """A tiny OLMo-2 RePo checkpoint in Sakana's exact format: MHA, fp32, config pe_config with the keys in both
    spellings, RePo maps under model.layers.{i}.self_attn for i >= start_layer. Returns (path, transformers model
    without the RePo maps)."""
    model = hf_model("olmo2", num_hidden_layers=num_layers, rope_theta=500000.0)
    save_hf(model, path)
    layers = range(start_layer, num_layers) if repo_layers is None else repo_layers
    edit_weights(path, add=repo_weights(64, 4, layers))
    # Their converter ran transformers 4.52, which stores rope_theta at top level (no rope_parameters).
    if pe_config is None:
        pe_config = SAKANA_PE_CONFIG | {"dynamic_pe_start_layer": start_layer, "dynmaic_pe_start_layer": start_layer}
    edit_config(path, pe_config=pe_config, rope_parameters=None, rope_theta=500000.0)
    return Path(path), model
