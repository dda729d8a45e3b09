"""`eval.py run` and `eval.py sweep`: evaluate models x tasks x lengths into a run directory (resumable)."""

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
    p.add_argument("--data-root", metavar="DIR", help="data root for ${data} (default ../shared/data)")
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH", help="a data path for ${NAME}")
    p.add_argument("--beyond-max-positions", choices=["warn", "refuse"], default="warn",
                   help="lengths past a model's positions: warn and record (default), or refuse")
    _common(p)
    p.set_defaults(func=run_command)

    s = sub.add_parser("sweep", help="run a sweep file (models x tasks x lengths)",
                       description="Run the sweep described by a YAML file (see configs/*.yaml and "
                       "posbench/harness/evaluation/sweep.py for every key).")
    s.add_argument("sweep_file", metavar="SWEEP.yaml")
    _common(s)
    s.set_defaults(func=sweep_command)


def _finish(sweep, args):
    from posbench.harness.evaluation.runner import run_sweep

    if args.device:
        sweep.device = args.device
    if args.sampling:
        sweep.sampling = args.sampling
    if args.batch_size:
        sweep.batch_size = "auto" if args.batch_size == "auto" else int(args.batch_size)
    root = run_sweep(sweep, args.out, fresh=args.fresh, progress=not args.no_progress)
    print(f"results: {root}/summary.csv   (report: python eval.py report {root})")
    return 0


def run_command(args):
    from posbench.harness.evaluation.sweep import Sweep, parse_lengths, parse_model_spec

    models = [parse_model_spec(m) for m in args.model]
    data = dict(item.partition("=")[::2] for item in args.data)
    sweep = Sweep(models=models, tasks=[t for t in args.tasks.split(",") if t.strip()],
                  lengths=parse_lengths(args.lengths), samples=args.samples, seed=args.seed, dtype=args.dtype,
                  include_paths=args.include_path, data_root=args.data_root, data=data,
                  beyond_max_positions=args.beyond_max_positions, source="command line")
    return _finish(sweep, args)


def sweep_command(args):
    from posbench.harness.evaluation.sweep import load_sweep

    return _finish(load_sweep(args.sweep_file), args)
