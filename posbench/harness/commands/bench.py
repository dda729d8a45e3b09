"""`eval.py bench`: prefill and decode cost per scheme, rotary kernels against the copy roofline, attention TFLOP/s,
and the model core against transformers' own model, on an OLMo-2-1B-shaped model with random weights."""

EPILOG = """\
examples:
  python eval.py bench --out results/bench                 # on a GPU: the full set at 4K, 8K and 16K
  python eval.py bench --out results/bench --profile --reps 15   # plus a per-kernel profile of RoPE vs RePo
  python eval.py bench --out /tmp/b --device cpu --shape tiny --lengths 256   # a CPU smoke run of the code paths

  python eval.py bench --out results/bench --sweep runs/ruler   # plus a sweep's cells against their floor

Writes OUT/bench.md and OUT/bench.json: every figure next to its floor (decode against the card's measured copy
bandwidth, prefill against its measured matrix-product rate, a sweep cell against both from its real prompt and
output lengths). The targets to read them against: docs/bench.md.
"""


def register(sub):
    import argparse

    p = sub.add_parser("bench", help="time prefill/decode per scheme, rotary kernels, attention, vs transformers",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR", help="where bench.md and bench.json go")
    p.add_argument("--lengths", default="4k,8k,16k", help="sequence lengths (default 4k,8k,16k)")
    p.add_argument("--schemes", default="rope,nope,hybrid,repo", help="subset of rope,nope,hybrid,repo")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--shape", choices=["1b", "tiny"], default="1b", help="OLMo-2-1B shape, or a tiny one for CPU")
    p.add_argument("--no-hf", action="store_true", help="skip the comparison with transformers' model")
    p.add_argument("--no-kernels", action="store_true", help="skip the kernel microbenchmarks")
    p.add_argument("--profile", action="store_true",
                   help="also profile RoPE and RePo prefills per kernel (where RePo's extra time goes)")
    p.add_argument("--reps", type=int, default=7, help="timed prefill repetitions per scheme and length (median)")
    p.add_argument("--batches", default="1,8", help="decode batch sizes (default 1,8)")
    p.add_argument("--sweep", metavar="RUN_DIR",
                   help="also put a finished sweep's cells against their floor (from their real prompt and output "
                        "lengths) and against RUN_DIR/hf_baseline.json (scripts/hf_generate_baseline.py)")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    import torch

    from posbench.harness.bench import SCHEMES, run_bench
    from posbench.harness.errors import UserError
    from posbench.harness.evaluation.sweep import parse_lengths

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("bench --device cuda needs a CUDA device (none is visible); use --device cpu --shape tiny "
                        "for a smoke run")
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise UserError(f"--schemes: unknown {unknown[0]!r}; choose from {', '.join(SCHEMES)}")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise UserError(f"--batches: expected positive integers like 1,8, got {args.batches!r}")
    if args.sweep and not (Path(args.sweep) / "manifest.json").exists():
        raise UserError(f"--sweep: {args.sweep} holds no manifest.json (not a run directory)")
    run_bench(args.out, lengths=parse_lengths(args.lengths), schemes=schemes, device=args.device,
                       shape=args.shape, with_hf=not args.no_hf, with_kernels=not args.no_kernels,
                       with_profile=args.profile, reps=args.reps, batches=batches, sweep_dir=args.sweep)
    print(f"bench: {args.out}/bench.md")
    return 0
