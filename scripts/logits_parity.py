"""Logits before and after a refactor of the model core: dump them with one checkout, compare with another.

    python scripts/logits_parity.py make-random DIR            # random OLMo-2 / Llama / Qwen2 checkpoints (once)
    python scripts/logits_parity.py dump OUT.pt CKPT_DIR...    # fp32 CPU logits: prefill, padded batch, decode steps
    python scripts/logits_parity.py compare A.pt B.pt          # max abs difference per checkpoint and input

Run `dump` with each checkout (e.g. `git worktree add /tmp/base c4692f2`, then run the script from there with
PYTHONPATH=. and the same arguments); the refactor passes when every difference is exactly 0.
"""
import sys
from pathlib import Path

import torch

RANDOM = {  # name -> (config.json fields, scheme spec): each architecture, GQA, biases and every layer kind
    "olmo2_repo": ({"model_type": "olmo2"}, "repo,start_layer=1,fresh_init=true"),
    "llama_gqa_rope": ({"model_type": "llama", "num_key_value_heads": 2}, "rope"),
    "llama_hybrid": ({"model_type": "llama", "num_key_value_heads": 2}, "hybrid,pattern=RN"),
    "qwen2_bias_repo": ({"model_type": "qwen2", "num_key_value_heads": 2}, "repo,start_layer=2,fresh_init=true"),
}


def make_random(root):
    from posbench.harness.core.checkpoint import as_scheme, save_model
    from posbench.harness.core.model import ModelConfig, Transformer

    for i, (name, (fields, spec)) in enumerate(RANDOM.items()):
        hf = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 4,
              "num_attention_heads": 4, "max_position_embeddings": 1024, "rms_norm_eps": 1e-6,
              "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False, **fields}
        torch.manual_seed(i)
        model = Transformer(ModelConfig.from_hf(hf), as_scheme(spec))
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1) + (1.0 if p.dim() == 1 else 0.0))
        save_model(model, Path(root) / name)


@torch.no_grad()
def logits_of(path) -> dict:
    from posbench.harness.core.checkpoint import load_model

    model = load_model(path)[0]
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (2, 48), generator=gen)
    out = {"prefill": model(ids)}
    mask = torch.ones(2, 48, dtype=torch.bool)
    mask[0, :7] = False  # left padding in row 0
    out["padded"] = model(ids, attention_mask=mask)
    cache = model.setup_cache(2, 56)
    steps = [model(ids[:, :40], cache=cache, last_only=True)]
    for t in range(40, 48):
        steps.append(model(ids[:, t:t + 1], cache=cache))
    out["decode"] = torch.cat(steps, 1)
    return {k: v.float().clone() for k, v in out.items()}


def main(argv):
    command, *rest = argv
    if command == "make-random":
        make_random(rest[0])
    elif command == "dump":
        torch.save({str(Path(p).resolve()): logits_of(p) for p in rest[1:]}, rest[0])
    elif command == "compare":
        a, b = torch.load(rest[0]), torch.load(rest[1])
        worst = 0.0
        for path in a:
            for key in a[path]:
                diff = (a[path][key] - b[path][key]).abs().max().item()
                worst = max(worst, diff)
                print(f"{Path(path).name:18s} {key:8s} max abs diff {diff:.3g}  {list(a[path][key].shape)}")
        print(f"worst: {worst}")
        return 0 if worst == 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
