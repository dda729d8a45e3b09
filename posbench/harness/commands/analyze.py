"""`eval.py analyze`: learned positions, ablations and attention of one or more models on task samples."""

EPILOG = """\
examples:
  python eval.py analyze models/reference/repo --task niah_single_1 --lengths 1k --samples 5 --out results/an
  python eval.py analyze models/reference/rope models/reference/repo@repo --task niah_single_1,vt \\
      --lengths 1k,2k,4k --samples 10 --out results/an4     # same samples for every model, plus comparison.md
  python eval.py analyze ckpt:repo,scaling=yarn,factor=4,original_max_position_embeddings=4096 --task vt \\
      --lengths 16k --samples 5 --device cuda --out results/an16k

Writes OUT/<label>/analysis.json, analysis.md, samples.json and plots (OUT/comparison.md for several models).
The verdict (models with learned positions): `in use` when replacing the learned positions by zeros or a shuffle
moves the answer loss beyond +-tolerance or the score at all (95% bootstrap interval); else `collapsed`.
"""


def register(sub):
    import argparse

    p = sub.add_parser("analyze", help="learned positions, ablations and attention of models on task samples",
                       description="Look inside models: learned positions per layer and head (RePo), ablations "
                       "(positions replaced by zeros, a shuffle or the integer index; layers switched to NoPE) with "
                       "bootstrap intervals and a verdict, attention on needles and against distance.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL[:SCHEME][@LABEL]", help="local model folders")
    p.add_argument("--task", required=True, help="comma-separated generative RULER-style tasks, e.g. niah_single_1,vt")
    p.add_argument("--lengths", required=True, help="comma-separated context lengths, e.g. 1k,2k,4k")
    p.add_argument("--samples", type=int, default=5, help="samples per task and length (default 5)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--nope-layers", metavar="A-B", help="layers to switch to NoPE in that ablation, e.g. 0-1 or 0,2 "
                   "(default: the model's integer-RoPE layers)")
    p.add_argument("--tolerance", type=float, default=0.05, help="answer-loss change (nats per answer token) a "
                   "position ablation must exceed for `in use` (default 0.05)")
    p.add_argument("--max-new-tokens", type=int, help="cap on generated tokens per sample (default: the task's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR", help="extra task folder")
    p.add_argument("--data-root", metavar="DIR", help="data root for ${data} (default ../shared/data)")
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH", help="a data path for ${NAME}")
    p.set_defaults(func=run)


def parse_layers(text: str, flag: str = "--nope-layers") -> list:
    """'0-1' -> [0, 1]; '0,2,4-5' -> [0, 2, 4, 5]."""
    from posbench.harness.evaluation.sweep import SweepError

    out = []
    for part in str(text).split(","):
        a, sep, b = part.strip().partition("-")
        try:
            out += list(range(int(a), int(b) + 1)) if sep else [int(a)]
        except ValueError:
            raise SweepError(f"{flag}: expected layers like 0-1 or 0,2, got {text!r}") from None
    return sorted(set(out))


def run(args):
    from posbench.config import build
    from posbench.harness.analysis.analyze import AnalyzeOptions, analyze_models
    from posbench.harness.evaluation.sweep import ModelEntry, SweepError, parse_lengths, parse_model_spec

    if args.samples <= 0:
        raise SweepError(f"--samples must be a positive integer, got {args.samples}")
    if args.tolerance < 0:
        raise SweepError(f"--tolerance must be >= 0, got {args.tolerance}")
    entries = [build(ModelEntry, parse_model_spec(m), f"--model {m}", SweepError) for m in args.models]
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise SweepError(f"model labels must be unique, got {labels}; name them with MODEL@LABEL")
    data = dict(item.partition("=")[::2] for item in args.data)
    options = AnalyzeOptions(tasks=[t for t in args.task.split(",") if t.strip()],
                             lengths=parse_lengths(args.lengths, "--lengths"), samples=args.samples, seed=args.seed,
                             nope_layers=parse_layers(args.nope_layers) if args.nope_layers else None,
                             tolerance=args.tolerance, max_new_tokens=args.max_new_tokens, device=args.device,
                             dtype=args.dtype, include_paths=args.include_path, data_root=args.data_root, data=data)
    results = analyze_models(entries, options, args.out)
    from posbench.harness.analysis.report import headline

    for r in results:
        print(headline(r).replace("**", ""))
    print(f"analysis: {args.out}/<label>/analysis.md" + ("   comparison: " + f"{args.out}/comparison.md"
                                                          if len(results) > 1 else ""))
    return 0
