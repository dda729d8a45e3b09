"""Time transformers `generate` (greedy, SDPA, left-padded batches of --batch-size) on exactly the samples a posbench
run used, and compare with the run's own throughput and predictions.

    python scripts/hf_generate_baseline.py SWEEP.yaml RUN_DIR --model rope [--tasks niah_single_1] [--lengths 4096] \
        [--batch-size 8]

Writes RUN_DIR/hf_baseline.json and RUN_DIR/hf_baseline.md: per task and length, samples/s of both, their ratio, and
how many greedy predictions agree exactly (bf16 numerics differ between the two implementations, so a few may not).
The posbench figure is the cell's whole wall time (prefill + decode + scoring) over its samples, from the manifest.
"""
import argparse
import time

import torch  # noqa: E402

from posbench.harness.evaluation.engine import truncate_at_stop  # noqa: E402
from posbench.harness.evaluation.results import RunDir, atomic_write_json, atomic_write_text  # noqa: E402
from posbench.harness.evaluation.runner import SampleCache  # noqa: E402
from posbench.harness.evaluation.sweep import load_sweep, parse_lengths  # noqa: E402
from posbench.tasks import TaskRegistry  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep")
    p.add_argument("run_dir")
    p.add_argument("--model", required=True, help="the label of a rope model in the sweep")
    p.add_argument("--tasks", help="comma-separated (default: the sweep's first task)")
    p.add_argument("--lengths", help="default: the sweep's lengths")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke run")
    p.add_argument("--batch-size", type=int, default=1, help="prompts per generate call, left-padded (default 1)")
    args = p.parse_args()

    from transformers import AutoModelForCausalLM

    sweep = load_sweep(args.sweep)
    entry = next(m for m in sweep.models if m.label == args.model)
    run = RunDir(args.run_dir)
    manifest = run.read_manifest()
    specs = TaskRegistry(sweep.include_paths).resolve(args.tasks or sweep.tasks[:1])
    lengths = parse_lengths(args.lengths) if args.lengths else sweep.lengths
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(entry.path, dtype=dtype, attn_implementation="sdpa",
                                                 local_files_only=True).to(args.device).eval()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    from posbench.harness.core.checkpoint import load_tokenizer
    tokenizer = load_tokenizer(entry.path)
    cache = SampleCache(sweep)
    rows = []
    for spec in specs:
        for length in lengths:
            samples = cache.get(tokenizer, spec, length)
            ours = {r["index"]: r for r in run.sample_log(entry.label, spec.name, length).read()}
            agree, start = 0, time.perf_counter()
            tokenizer.padding_side = "left"
            for i in range(0, len(samples), args.batch_size):
                batch = samples[i:i + args.batch_size]
                enc = tokenizer([s.prompt for s in batch], return_tensors="pt", padding=True).to(args.device)
                with torch.inference_mode():
                    out = model.generate(**enc, max_new_tokens=max(s.max_new_tokens for s in batch), do_sample=False,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
                for s, row in zip(batch, out[:, enc["input_ids"].shape[1]:]):
                    text = truncate_at_stop(tokenizer.decode(row[:s.max_new_tokens], skip_special_tokens=True),
                                            s.stop)[0]
                    agree += int(s.index in ours and ours[s.index].get("prediction") == text)
            sync()
            seconds = time.perf_counter() - start
            cell = manifest.get("cells", {}).get(f"{entry.label}/{spec.name}/{length}", {})
            hf_rate = len(samples) / seconds
            rows.append({"task": spec.name, "length": length, "samples": len(samples), "batch_size": args.batch_size,
                         "hf_seconds": round(seconds, 2), "hf_samples_per_s": round(hf_rate, 3),
                         "posbench_seconds": cell.get("seconds"), "posbench_samples_per_s": cell.get("samples_per_s"),
                         "speedup": round(cell["samples_per_s"] / hf_rate, 2) if cell.get("samples_per_s") else None,
                         "same_prediction": f"{agree}/{len(samples)}"})
            print(rows[-1], flush=True)
    atomic_write_json(run.root / "hf_baseline.json", {"model": entry.label, "path": entry.path, "rows": rows,
                                                       "device": device_name})
    header = "| task | length | n | HF generate s | HF samples/s | posbench s | posbench samples/s | speed-up | " \
             "same prediction |\n|---|---|---|---|---|---|---|---|---|\n"
    body = "".join(f"| {r['task']} | {r['length']} | {r['samples']} | {r['hf_seconds']} | {r['hf_samples_per_s']} | "
                   f"{r['posbench_seconds']} | {r['posbench_samples_per_s']} | {r['speedup']} | "
                   f"{r['same_prediction']} |\n" for r in rows)
    atomic_write_text(run.root / "hf_baseline.md",
                      f"# transformers generate (batch {args.batch_size}, greedy, SDPA, bf16) vs posbench on "
                      f"{device_name}\n\n{header}{body}")


if __name__ == "__main__":
    main()
