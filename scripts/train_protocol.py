"""The RePo paper's protocol at small scale, every stage in one command (configs/protocol/, configs/README.md):

  1. base:      a RoPE model pretrained on the natural-text corpus at 2K      (configs/protocol/base.yaml)
  2. continue:  the base continued at 4K with identical data, steps and schedule into rope, nope, r2n1
                (hybrid RRN), n2r1 (hybrid NNR), nope_from_start (NoPE from layer L/3 up) and repo
                (start layer L/3); rope and repo with seeds 0, 1, 2               (configs/protocol/continue.yaml)
  3. analyze:   `eval.py analyze` of every continued model, where that command exists (else skipped, said so)
  4. sweep:     RULER (13 tasks), length-controlled NLGraph and synthetic HybridQA at 4K/8K/16K, as trained and
                with YaRN x2/x4                                                   (configs/protocol/sweep.yaml)
  5. report:    `eval.py report` of the sweep

    python scripts/train_protocol.py --run runs/protocol              # the full protocol (one GPU)
    python scripts/train_protocol.py --run /tmp/p --tiny --data-root D  # every stage in about a minute on a CPU

A finished stage (its final/ checkpoint, the sweep's run folder) is skipped when the command is run again, so an
interrupted protocol continues where it stopped. Stage files are written to RUN/configs/ (each `extends` the
committed file), so every model's recipe is on disk beside it.
"""
import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posbench.harness.cli import main as eval_main  # noqa: E402
from posbench.harness.training.config import read_yaml  # noqa: E402
from posbench.harness.training.drills import TASK_FOLDER  # noqa: E402

CONFIGS = ROOT / "configs" / "protocol"
SEEDS = {"rope": 3, "repo": 3}   # schemes run with seeds 0..n-1; the rest with seed 0
STAGES = ("base", "continue", "analyze", "sweep", "report")
ROTATING = ("rope", "r2n1", "n2r1", "nope_from_start", "repo")   # get a YaRN row in the sweep


def schemes(layers: int) -> dict:
    """{label: scheme spec}: the paper's six variants for a model of `layers` layers."""
    start = max(1, round(layers / 3))
    upper = ",".join(str(i) for i in range(start, layers))
    return {"rope": "rope", "nope": "nope", "r2n1": "hybrid,pattern=RRN", "n2r1": "hybrid,pattern=NNR",
            "nope_from_start": f"hybrid,nope_layers=[{upper}]", "repo": f"repo,start_layer={start}"}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_stage(run: Path, name: str, extends: Path, overrides: dict) -> Path:
    path = run / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"extends": str(extends), **overrides}, sort_keys=False))
    return path


def log(message: str):
    print(f"[protocol {time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_stage(path: Path, out: Path, steps=None):
    if (out / "final" / "config.json").is_file():
        log(f"{out.name}: finished before, skipped ({out / 'final'})")
        return
    args = ["train", str(path), "--out", str(out), "--no-progress"]
    if (out / "train_state.pt").is_file():
        args.append("--resume")
    log(f"{out.name}: python eval.py {' '.join(args)}")
    if eval_main(args) != 0:
        raise SystemExit(f"error: stage {out.name} failed (see above)")


def analyze(models: dict, run: Path):
    if importlib.util.find_spec("posbench.harness.commands.analyze") is None:
        log("analyze: skipped: this posbench has no `eval.py analyze` command yet")
        return
    folder = run / "analyze"
    folder.mkdir(exist_ok=True)
    for label, path in models.items():
        if not (path / "config.json").is_file():
            log(f"analyze {label}: no checkpoint at {path}, skipped")
            continue
        result = subprocess.run([sys.executable, str(ROOT / "eval.py"), "analyze", str(path)], cwd=ROOT,
                                capture_output=True, text=True)
        (folder / f"{label}.txt").write_text(result.stdout + result.stderr)
        log(f"analyze {label}: exit {result.returncode} -> {folder / f'{label}.txt'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="folder for every stage's outputs")
    parser.add_argument("--data-root", help="data root holding corpus/natural_v1 (default: posbench's)")
    parser.add_argument("--tiny", action="store_true", help="tiny model, a few steps per stage, CPU (CI)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated subset of {','.join(STAGES)} (RUN/configs/ is always written)")
    args = parser.parse_args(argv)
    run = Path(args.run).resolve()
    stages = set(args.stages.split(",")) - {""}
    if stages - set(STAGES):
        parser.error(f"--stages: unknown stage {sorted(stages - set(STAGES))[0]!r}; known: {', '.join(STAGES)}")
    tiny = yaml.safe_load((CONFIGS / "tiny.yaml").read_text()) if args.tiny else {}
    shared = {"data": {"cache": str(run / "data_cache"), "task_paths": [str(TASK_FOLDER)]}}
    if args.data_root:
        shared["data"]["root"] = str(Path(args.data_root).resolve())

    base_out = run / "base"
    base_file = write_stage(run, "base", CONFIGS / "base.yaml", merge(tiny.get("base", {}), shared))
    if "base" in stages:
        train_stage(base_file, base_out)

    layers = read_yaml(CONFIGS / "base.yaml")["model"]["config"]["num_hidden_layers"]
    layers = tiny.get("base", {}).get("model", {}).get("config", {}).get("num_hidden_layers", layers)
    models = {}
    for label, scheme in schemes(layers).items():
        for seed in range(SEEDS.get(label, 1)):
            name = label if seed == 0 else f"{label}_seed{seed}"
            overrides = merge(tiny.get("continue", {}), shared)
            overrides = merge(overrides, {"scheme": scheme, "model": {"path": str(base_out / "final")},
                                          "data": {"seed": 2345 + seed}, "train": {"seed": seed}})
            path = write_stage(run, name, CONFIGS / "continue.yaml", overrides)
            if "continue" in stages:
                train_stage(path, run / name)
            models[name] = run / name / "final"

    if "analyze" in stages:
        analyze(models, run)

    sweep = merge(yaml.safe_load((CONFIGS / "sweep.yaml").read_text()), tiny.get("sweep", {}))
    trained, longest = sweep["lengths"][0], sweep["lengths"][1:]
    yarn = {length: {"scaling": "yarn", "factor": length // trained, "original_max_position_embeddings": trained}
            for length in longest}
    sweep["models"] = [{"label": label, "path": str(path)} for label, path in models.items()]
    sweep["models"] += [{"label": f"{label}_yarn", "path": str(path), "scheme_params_by_length": yarn}
                        for label, path in models.items() if label.split("_seed")[0] in ROTATING]
    if args.data_root:
        sweep["data_root"] = str(Path(args.data_root).resolve())
    sweep_file = run / "configs" / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep, sort_keys=False))
    if "sweep" in stages:
        log(f"sweep: python eval.py sweep {sweep_file} --out {run / 'sweep'}")
        if eval_main(["sweep", str(sweep_file), "--out", str(run / "sweep"), "--no-progress"]) != 0:
            raise SystemExit("error: the sweep failed (see above)")
    if "report" in stages:
        log(f"report: python eval.py report {run / 'sweep'} --out {run / 'report'}")
        plots = ["--no-plots"] if args.tiny else []     # 20 heatmaps of one sample each prove nothing in CI
        if eval_main(["report", str(run / "sweep"), "--out", str(run / "report"), "--format", "md,csv", *plots]) != 0:
            raise SystemExit("error: the report failed (see above)")
    (run / "protocol.json").write_text(json.dumps({"tiny": args.tiny, "stages": sorted(stages),
                                                   "models": {k: str(v) for k, v in models.items()}}, indent=2))
    log(f"done: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
