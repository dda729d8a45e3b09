"""How fast `lm_eval --model posbench` generates at a given context length: greedy generate_until requests through
the adapter, timed end to end. Written against the adapter's public constructor, so it runs on any commit:

    python scripts/lm_eval_generation_speed.py [--model models/reference/rope] [--context 2048] [--new 32]
                                               [--requests 4] [--batch-size 4]

Prints one JSON line: seconds, new tokens, tokens per second and a hash of the generated texts (equal hashes across
commits mean the same outputs).
"""
import argparse
import hashlib
import json
import time

import torch


class Request:
    def __init__(self, *args):
        self.args = args


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/reference/rope")
    parser.add_argument("--context", type=int, default=2048, help="max_length: prompts are cut to context - new")
    parser.add_argument("--new", type=int, default=32, help="max_gen_toks")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--batch-size", default="4")
    args = parser.parse_args()
    torch.manual_seed(0)

    from posbench.harness.integrations.lm_eval_model import PosbenchLM

    lm = PosbenchLM(pretrained=args.model, max_length=args.context, batch_size=args.batch_size)
    words = "the river flows past the old mill and the children count the boats one two three".split()
    prompts = []
    for r in range(args.requests):  # different prompts, each longer than the context (the adapter cuts the left)
        gen = torch.Generator().manual_seed(r)
        picks = torch.randint(0, len(words), (2 * args.context,), generator=gen).tolist()
        prompts.append(" ".join(words[i] for i in picks))
    requests = [Request(p, {"until": [], "max_gen_toks": args.new}) for p in prompts]
    start = time.perf_counter()
    texts = lm.generate_until(requests, disable_tqdm=True)
    seconds = time.perf_counter() - start
    new_tokens = sum(len(lm.tok_encode(t)) for t in texts)
    print(json.dumps({"model": args.model, "context": args.context, "requests": args.requests,
                      "seconds": round(seconds, 2), "new_tokens_approx": new_tokens,
                      "tokens_per_s": round(new_tokens / seconds, 2),
                      "texts_sha1": hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:12]}))


if __name__ == "__main__":
    main()
