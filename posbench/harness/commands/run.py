"""`eval.py run` and `eval.py sweep`: evaluate models x tasks x lengths into a run directory (resumable)."""
from posbench.harness.evaluation.data import ROOT_HELP

RUN_EPILOG = """\
examples:
  python eval.py run --model /models/olmo2-rope --model /models/olmo2-repo:repo \\
      --tasks ruler_niah --lengths 4k,8k,16k --samples 50 --out results/niah
  python eval.py run --model ckpt:hybrid,pattern=RRRN@hybrid --tasks niah_single_1 --lengths 2k --samples 10 \\
      --out results/quick --device cpu

A model is DIR[:SCHEME[,key=value...]][@LABEL]; without SCHEME the checkpoint's own scheme is used.
An interrupted run continues where it stopped when the same command is run again (finished samples are kept).
"""


def _common(p):
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (created; resumed if it exists)")
    p.add_argument("--fresh", action="store_true", help="discard finished samples in RUN_DIR and start again")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the sweep's, else auto")
    p.add_argument("--batch-size", metavar="auto|N", help="default: auto (largest that fits, halved on OOM)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per finished cell)")
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="shard the cells over N worker processes, one per GPU, merged into one RUN_DIR (with "
                        "--device cpu: N CPU processes); under torchrun the ranks come from torchrun instead")
    p.add_argument("--sampling", choices=["official", "fill"],
                   help="RULER tasks: official (NVIDIA/RULER's own draws and sizes, the default) or fill (every "
                   "sample filled to the budget, the same content at every length); other tasks have one way. "
                   "Default: the sweep's `sampling`, else each task's")


def register(sub):
    p = sub.add_parser("run", help="evaluate models on tasks at context lengths",
                       description="Evaluate one or more models (each under a position scheme) on tasks or groups "
                       "at the given context lengths, writing RUN_DIR/manifest.json, samples/ and summary.csv.",
                       epilog=RUN_EPILOG, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, metavar="DIR[:SCHEME][@LABEL]",
                   help="a local model folder, optionally with a forced scheme (repeatable)")
    p.add_argument("--tasks", required=True, help="comma-separated task or group names (see `list tasks`)")
    p.add_argument("--lengths", required=True, help="comma-separated context lengths, e.g. 4k,8k,16k")
    p.add_argument("--samples", type=int, help="samples per task and length (default: each task's own)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR", help="extra task folder")
    p.add_argument("--data-root", metavar="DIR", help=ROOT_HELP)
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH", help="a data path for ${NAME}")
    p.add_argument("--beyond-max-positions", choices=["refuse", "extrapolate"], default="refuse",
                   help="lengths past a model's positions (x its RoPE scaling factor): refuse (default), or "
                   "extrapolate: run them, with a warning recorded in the manifest")
    _common(p)
    p.set_defaults(func=run_command)

    s = sub.add_parser("sweep", help="run a sweep file (models x tasks x lengths)",
                       description="Run the sweep described by a YAML file (see configs/*.yaml and "
                       "posbench/harness/evaluation/sweep.py for every key).")
    s.add_argument("sweep_file", metavar="SWEEP.yaml")
    _common(s)
    s.set_defaults(func=sweep_command)


def _finish(sweep, args):
    import os

    from posbench.config import override
    from posbench.harness.errors import SweepError, UserError
    from posbench.harness.evaluation import shards
    from posbench.harness.evaluation.runner import run_sweep

    if args.gpus < 1:
        raise UserError(f"--gpus must be a positive number of processes, got {args.gpus}")
    if args.gpus > 1 and "WORLD_SIZE" not in os.environ:
        code = shards.launch(shards.without_gpus_flag(args.argv), args.gpus)
        if code == 0:
            print(f"results: {args.out}/summary.csv   (report: python eval.py report {args.out})")
        return code
    if args.device:
        sweep = override(sweep, "device", args.device, "--device", SweepError)
    if args.sampling:
        sweep = override(sweep, "sampling", args.sampling, "--sampling", SweepError)
    if args.batch_size:
        sweep = override(sweep, "batch_size", args.batch_size, "--batch-size", SweepError)
    shard = shards.from_env()
    after = None
    if sweep.analyze is not None:   # the sweep's `analyze` key: eval.py analyze on every model, into RUN/analysis/
        from posbench.harness.analysis.analyze import analyze_sweep

        def after(root, specs, device):
            analyze_sweep(sweep, specs, root, device)
    root = run_sweep(sweep, args.out, fresh=args.fresh, progress=not args.no_progress, shard=shard, after=after)
    if shard.rank != 0:
        return 0
    print(f"results: {root}/summary.csv   (report: python eval.py report {root})")
    return 0


# The sweep-file key each `run` flag sets: the flags build a Sweep through the same checks as a file.
RUN_FLAGS = {"models": "--model", "tasks": "--tasks", "lengths": "--lengths", "samples": "--samples",
             "seed": "--seed", "dtype": "--dtype", "include_paths": "--include-path", "data_root": "--data-root",
             "data": "--data", "beyond_max_positions": "--beyond-max-positions"}


def run_command(args):
    from posbench.harness.errors import SweepError
    from posbench.harness.evaluation.sweep import parse_model_spec, parse_sweep

    for item in args.data:
        if "=" not in item or not item.partition("=")[0]:
            raise SweepError(f"--data {item!r}: need NAME=PATH")
    raw = {"models": [parse_model_spec(m) for m in args.model], "tasks": args.tasks, "lengths": args.lengths,
           "seed": args.seed, "dtype": args.dtype, "include_paths": args.include_path, "data_root": args.data_root,
           "data": dict(item.partition("=")[::2] for item in args.data),
           "beyond_max_positions": args.beyond_max_positions}
    if args.samples is not None:
        raw["samples"] = args.samples
    return _finish(parse_sweep(raw, "command line", flags=RUN_FLAGS), args)


def sweep_command(args):
    from posbench.harness.evaluation.sweep import load_sweep

    return _finish(load_sweep(args.sweep_file), args)
