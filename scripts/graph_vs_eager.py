"""Greedy agreement of the engine's continuous-batching decoder (CUDA graphs on GPU) with the eager reference path.

    python scripts/graph_vs_eager.py TOKENIZER.json --checkpoint /tmp/olmo2-1b-random --out agreement.json
    python scripts/graph_vs_eager.py TOKENIZER.json --random-1b --out agreement.json   # no checkpoint on disk

Two checks, every scheme (rope, nope, hybrid, repo), the same prompts (random token ids decoded to text, 200 to
3000 tokens, seeded), 4 slots for 12 prompts so slots are refilled:
  fp32  a tiny random OLMo-2 model on the device in fp32: the tokens must be identical (exit 1 otherwise);
  bf16  the given checkpoint, or OLMo-2-1B-shaped random weights built in memory (--random-1b), in bf16: the share
        of prompts whose tokens are
        identical, and of generated tokens up to the first difference (bf16 kernels of different shapes round
        differently, and random weights give near-tied logits, so a few early divergences are expected).
"""
import argparse
import json
import sys

import torch

from posbench.harness.bench import SCHEMES, build_models, tiny_config
from posbench.harness.core.checkpoint import load_tokenizer
from posbench.harness.evaluation.engine import TorchEngine

SCHEME_NAMES = ("rope", "nope", "hybrid", "repo")


def prompts(tokenizer, count=12, seed=0, lo=200, hi=3000) -> list:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (count,), generator=gen).tolist()
    return [tokenizer.decode(torch.randint(1000, 50000, (n,), generator=gen).tolist()) for n in lengths]


def agreement(engine, texts, max_new=24) -> dict:
    from types import SimpleNamespace
    samples = [SimpleNamespace(prompt=t, max_new_tokens=max_new, stop=[], token_count=len(t)) for t in texts]
    fast = {id(s): g for s, g in engine.generate_samples(samples)}
    same, prefix, total = 0, 0, 0
    for s in samples:
        ref = engine.generate([s.prompt], max_new)[0]
        a = engine.tokenizer.encode(fast[id(s)].text, add_special_tokens=False)
        b = engine.tokenizer.encode(ref.text, add_special_tokens=False)
        same += fast[id(s)].text == ref.text
        n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        prefix, total = prefix + n, total + max(len(b), 1)
    return {"identical": same, "prompts": len(samples), "identical_rate": round(same / len(samples), 3),
            "tokens_before_first_difference": round(prefix / total, 3),
            "graph": engine._decoder is not None and engine._decoder[1].graph is not None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tokenizer")
    p.add_argument("--checkpoint", help="a RoPE checkpoint for the bf16 check (other schemes are forced onto it)")
    p.add_argument("--random-1b", action="store_true", help="bf16 check on OLMo-2-1B-shaped random weights")
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    tokenizer.eos_token, tokenizer.pad_token = "<|endoftext|>", "<|pad|>"
    texts = prompts(tokenizer, count=args.prompts)
    result = {"fp32": {}, "bf16": {}}
    config = {**tiny_config(max_positions=4096), "vocab_size": (len(tokenizer) + 63) // 64 * 64,
              "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    models = build_models(config, {k: SCHEMES[k] for k in SCHEME_NAMES}, args.device, torch.float32)
    for label, model in models.items():
        engine = TorchEngine(model, tokenizer, {}, args.device, torch.float32, batch_size=4)
        result["fp32"][label] = agreement(engine, texts)
        print("fp32", label, result["fp32"][label], flush=True)
    del models
    if args.random_1b:
        from posbench.harness.bench import olmo2_1b_config
        config = {**olmo2_1b_config(max_positions=4096), "vocab_size": max(100352, config["vocab_size"]),
                  "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
        models = build_models(config, {k: SCHEMES[k] for k in SCHEME_NAMES}, args.device, torch.bfloat16)
        for label, model in models.items():
            engine = TorchEngine(model, tokenizer, {}, args.device, torch.bfloat16, batch_size=4)
            result["bf16"][label] = agreement(engine, texts)
            print("bf16", label, result["bf16"][label], flush=True)
        del models, engine
    if args.checkpoint:
        engine = None
        for label in SCHEME_NAMES:
            name, *params = SCHEMES[label].split(",")
            params = dict(kv.split("=") for kv in params)
            if name == "repo":
                params["fresh_init"] = True
            params = {k: (int(v) if str(v).isdigit() else v) for k, v in params.items()}
            engine = TorchEngine.load(args.checkpoint, scheme=(name, params), device=args.device,
                                      dtype=torch.bfloat16, batch_size=4)
            result["bf16"][label] = agreement(engine, texts)
            print("bf16", label, result["bf16"][label], flush=True)
            del engine
            torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0 if all(r["identical"] == r["prompts"] for r in result["fp32"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
