"""Tiny random-weight checkpoints for tests and for the demo before trained reference models exist.

They compute real forward passes with real tokenizers, so every code path runs, but their scores are noise: the
demo says so whenever it uses them.
"""
from pathlib import Path

import torch

from posbench.harness.core.checkpoint import (
    as_scheme,
    checkpoint_tensors,
    load_tokenizer,
    position_weight_layers,
    save_model,
)
from posbench.harness.core.model import ModelConfig, Transformer


def tiny_config(arch="olmo2", vocab_size=100352, hidden=64, layers=4, heads=4, kv_heads=None,
                max_positions=32768, theta=10000.0, tokenizer=None) -> dict:
    """A config.json dict for a small model of the given architecture."""
    hf = {"model_type": arch, "vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": 2 * hidden,
          "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads or heads,
          "max_position_embeddings": max_positions, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
          "rope_theta": theta, "hidden_act": "silu"}
    if tokenizer is not None:
        hf.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=tokenizer.bos_token_id)
    return hf


def build_tiny_model(path, tokenizer_path, scheme="rope", seed=0, **config) -> Path:
    """Write a random tiny checkpoint with `scheme` (a spec string or (name, params)) and the given tokenizer."""
    tokenizer = load_tokenizer(tokenizer_path)
    vocab = tokenizer.get_vocab()
    # A bare tokenizer.json does not say which token ends a document; the OLMo-2 and GPT-style ones call it this.
    if tokenizer.eos_token_id is None and "<|endoftext|>" in vocab:
        tokenizer.eos_token = "<|endoftext|>"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = "<|pad|>" if "<|pad|>" in vocab else tokenizer.eos_token
    config.setdefault("vocab_size", (len(tokenizer) + 63) // 64 * 64)
    cfg = ModelConfig.from_hf(tiny_config(tokenizer=tokenizer, **config))
    scheme = as_scheme(scheme)
    torch.manual_seed(seed)
    model = Transformer(cfg, scheme)
    position = position_weight_layers(model)
    with torch.no_grad():
        for name, p in checkpoint_tensors(model).items():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3 if name not in position else 0.02)
    return save_model(model, path, tokenizer)
