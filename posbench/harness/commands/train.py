"""`eval.py train TRAIN.yaml`: train a model in a position scheme (training/config.py describes the file)."""

EPILOG = """\
examples:
  python eval.py train configs/train_cpu_trial.yaml                # train (CPU or GPU)
  python eval.py train configs/train_cpu_trial.yaml --resume       # continue after an interruption
  python eval.py train configs/train_reference_rope.yaml --prepare # tokenizer + data cache only
  torchrun --nproc_per_node 4 eval.py train TRAIN.yaml             # DDP over 4 GPUs

Bad input (unknown keys, missing data files, a length above the model's positions, a resume that does not match
the saved run) fails before training starts, with one line naming the file, key and value.
"""


def register(sub):
    import argparse

    p = sub.add_parser("train", help="train a model (scratch or checkpoint) in a position scheme",
                       description="Train from scratch or continue a checkpoint in any scheme (RoPE -> NoPE, hybrid "
                       "or RePo conversion), on text files and synthetic task samples. Writes step_XXXXX/ and final/ "
                       "checkpoints (loadable by every eval.py command), train_state.pt for --resume, loss.csv, "
                       "loss.png and train_manifest.json.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="TRAIN.yaml")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the file's `out`)")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from its last "
                   "checkpoint; the settings must match")
    p.add_argument("--steps", type=int, metavar="N", help="override train.steps (the schedule follows)")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="stop after STEP steps with a checkpoint, as an "
                   "interruption would (continue with --resume)")
    p.add_argument("--data-root", metavar="DIR", help="data root for ${data} (default: data.root, $POSBENCH_DATA, "
                   "or ~/.local/share/posbench/data)")
    p.add_argument("--prepare", action="store_true", help="only train the tokenizer and build the data cache, "
                   "then exit (concurrent runs on the same data then share them)")
    p.add_argument("--workers", type=int, metavar="N", help="processes for building the data cache (default: the "
                   "CPU count, divided by the number of training processes)")
    p.add_argument("--import-task-modules", action="store_true", help="allow importing the Python modules listed "
                   "in data.task_modules (they run code: only for modules you trust); without it such a file is "
                   "refused")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.set_defaults(func=run)


def run(args):
    import os
    import shlex
    import sys
    from pathlib import Path

    from posbench.harness.training.config import TrainConfigError, load_train_config

    cfg = load_train_config(args.config, {"out": args.out, "train.steps": args.steps})
    if not cfg.out:
        raise TrainConfigError(f"{args.config}: no output folder: set key 'out' or pass --out")
    # posbench's own modules (e.g. posbench.harness.training.drills) are part of what is installed; anything else is
    # code from a training file, imported only when the user says so.
    outside = [m for m in cfg.data["task_modules"] if m != "posbench" and not m.startswith("posbench.")]
    if outside and not args.import_task_modules:
        raise TrainConfigError(f"{args.config}: data.task_modules lists Python modules to import "
                               f"({', '.join(outside)}), which runs their code; pass --import-task-modules to "
                               "allow it")
    if args.prepare:
        from posbench.harness.training.train import prepare
        workers = args.workers or os.cpu_count() or 1
        tokenizer, dataset = prepare(cfg, Path(cfg.out), data_root=args.data_root, workers=workers)
        print(f"prepared: tokenizer of {len(tokenizer)} tokens, {len(dataset.sources)} data sources"
              + (f", cache {cfg.data['cache']}" if cfg.data["cache"] else ""))
        return 0
    from posbench.harness.training.train import train
    command = "python eval.py " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("train"):]) \
        if "train" in sys.argv else None
    train(cfg, cfg.out, resume=args.resume, stop_at=args.stop_at, data_root=args.data_root,
          progress=not args.no_progress, command=command, prepare_workers=args.workers)
    return 0
