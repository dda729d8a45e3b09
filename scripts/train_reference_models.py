#!/usr/bin/env python
"""Train posbench's four reference models (RoPE, NoPE, hybrid RRRN, RePo from layer 2) concurrently on one GPU
within a wall-clock budget, and check them on niah_single_1.

    python scripts/train_reference_models.py --minutes 6.5 [--pack DIR]

1. prepare  `eval.py train configs/train_reference_rope.yaml --prepare`: the BPE tokenizer and the synthetic-sample
            cache, built once with every CPU core; the four configs share the data section, so they share both.
2. probe    the four runs together for --probe-steps steps; the slowest run's seconds per step (steady state, under
            the same contention as the real runs) and its start-up time give the step count that fits the budget.
            All four get that same count, so they differ in nothing but the scheme. (--steps N skips the probe.)
3. train    the four runs concurrently, each with its own DataLoader workers; logs in runs/reference/<name>.log.
4. export   runs/reference/<name>/final -> models/reference/<name>/ (bf16 weights, tokenizer, model card README.md,
            train_manifest.json, loss.csv, loss.png).
5. check    `eval.py run` of niah_single_1 at 1024 (greedy, --check-samples, seed 42) on the four; the scores go
            into summary.json and the model cards. The RoPE model must reach 90%.

--pack DIR writes one .tar.gz per model, logs.tar.gz and summary.json (6 files, ~60 MB: what a GPU job hands
back). --smoke shrinks steps, samples and batch to check the pipeline on a CPU in minutes; its models are useless.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = ["rope", "nope", "hybrid", "repo"]
COPY = ["loss.csv", "loss.png", "eval.csv", "train_manifest.json"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def smoke_config(name: str, runs: Path) -> Path:
    """The reference config with tiny steps, samples and batch (pipeline check only), as a standalone file."""
    import yaml

    from posbench.harness.training.config import read_yaml

    raw = read_yaml(ROOT / "configs" / f"train_reference_{name}.yaml")
    raw["data"]["cache"] = str(runs / "data_cache")
    for source in raw["data"]["sources"]:
        if "task" in source:
            source["samples"] = 24
    raw["tokenizer"]["train"]["synthetic_samples"] = 4
    raw["train"].update(batch_size=2, warmup=2, checkpoint_every=1000, num_workers=1, log_every=1,
                        eval={"tasks": ["niah_single_1"], "length": 1024, "samples": 2, "every": 1000})
    path = runs / "smoke_configs" / f"train_reference_{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def launch(cmd: list, log_file: Path, env: dict) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(log_file, "w"), stderr=subprocess.STDOUT, env=env)
    proc.started = time.time()
    return proc


def wait_all(procs: dict, logs: dict) -> dict:
    """Wait for every run; {name: seconds from launch to exit}. A failed run shows its log's tail and stops here."""
    failed, walls = [], {}
    for name, proc in procs.items():
        if proc.wait() != 0:
            failed.append(name)
        walls[name] = time.time() - proc.started
    for name in failed:
        tail = logs[name].read_text().splitlines()[-15:]
        print(f"--- {name} failed ({logs[name]}):\n" + "\n".join(tail), file=sys.stderr)
    if failed:
        raise SystemExit(f"training failed for {', '.join(failed)}")
    return walls


def envs(names: list, args) -> dict:
    """One environment per run: TOKENIZERS_PARALLELISM off; runs spread over the visible GPUs."""
    base = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    if args.data_root:
        base["POSBENCH_DATA"] = str(Path(args.data_root).resolve())
    if args.smoke:
        base["OMP_NUM_THREADS"] = "1"
    gpus = int(args.gpus)
    out = {}
    for i, name in enumerate(names):
        env = dict(base)
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        out[name] = env
    return out


def train_cmd(config: Path, out: Path, *extra) -> list:
    return [sys.executable, "eval.py", "train", str(config), "--out", str(out), "--no-progress", *map(str, extra)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=6.5, help="wall-clock budget for all five phases (default 6.5)")
    p.add_argument("--steps", type=int, help="train this many steps (skips the probe)")
    p.add_argument("--probe-steps", type=int, default=30)
    p.add_argument("--reserve", type=float, default=60, help="seconds kept for export and the check (default 60)")
    p.add_argument("--min-steps", type=int, default=500, help="never fewer steps (default 500)")
    p.add_argument("--max-steps", type=int, help="never more steps")
    p.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated subset of rope,nope,hybrid,repo")
    p.add_argument("--runs", default="runs/reference", help="training folders and logs (default runs/reference)")
    p.add_argument("--models", default="models/reference", help="exported models (default models/reference)")
    p.add_argument("--check-samples", type=int, default=50)
    p.add_argument("--check-length", type=int, default=1024)
    p.add_argument("--data-root", help="data root (default $POSBENCH_DATA, else ~/.local/share/posbench/data)")
    p.add_argument("--gpus", default=os.environ.get("POSBENCH_GPUS", "1"), help="spread the runs over this many GPUs")
    p.add_argument("--pack", metavar="DIR", help="also write DIR/<name>.tar.gz per model and DIR/summary.json")
    p.add_argument("--smoke", action="store_true", help="tiny steps/samples/batch: a CPU pipeline check")
    args = p.parse_args()
    start = time.time()
    deadline = start + 60 * args.minutes
    names = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if not names or set(names) - set(SCHEMES):
        raise SystemExit(f"--schemes: choose from {', '.join(SCHEMES)}")
    runs, models = (ROOT / args.runs), (ROOT / args.models)
    if args.smoke:
        args.probe_steps, args.min_steps, args.check_samples = 3, 3, 4
        configs = {n: smoke_config(n, runs) for n in names}
    else:
        configs = {n: ROOT / "configs" / f"train_reference_{n}.yaml" for n in names}
    env = envs(names, args)
    script = Path(sys.argv[0]).resolve()
    script = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    summary = {"command": " ".join(["python", script.as_posix(), *sys.argv[1:]]), "budget_min": args.minutes,
               "phases_s": {}, "models": {}}
    for name in names:  # fresh runs: an earlier reference run in the same folders is removed
        for folder in (runs / name, runs / "probe" / name):
            if folder.exists():
                shutil.rmtree(folder)

    log(f"1/5 prepare: tokenizer and data cache ({configs[names[0]].name}, {os.cpu_count()} workers)")
    subprocess.run([sys.executable, "eval.py", "train", str(configs[names[0]]), "--out", str(runs / names[0]),
                    "--prepare", "--workers", str(os.cpu_count() or 1)], cwd=ROOT, env=env[names[0]], check=True)
    summary["phases_s"]["prepare"] = round(time.time() - start, 1)

    steps = args.steps
    if steps is None:
        t0 = time.time()
        log(f"2/5 probe: the {len(names)} runs together for {args.probe_steps} steps")
        logs = {n: runs / "probe" / f"{n}.log" for n in names}
        procs = {n: launch(train_cmd(configs[n], runs / "probe" / n, "--stop-at", args.probe_steps), logs[n], env[n])
                 for n in names}
        walls = wait_all(procs, logs)
        probe = {n: json.loads((runs / "probe" / n / "train_manifest.json").read_text()) for n in names}
        per_step = max(m["seconds_per_step"] for m in probe.values())
        # Everything but the steps (imports, tokenizer, data, model, CUDA, workers, the checkpoint) is paid again.
        startup = max(walls[n] - probe[n]["seconds_per_step"] * args.probe_steps for n in names)
        left = deadline - time.time() - args.reserve - startup
        steps = max(args.min_steps, int(0.92 * left / per_step) // 10 * 10) if not args.smoke else args.min_steps
        steps = min(steps, args.max_steps or steps)
        summary["probe"] = {n: {"seconds_per_step": m["seconds_per_step"], "tokens_per_s": m["tokens_per_s"],
                                "process_s": round(walls[n], 1)} for n, m in probe.items()}
        summary["phases_s"]["probe"] = round(time.time() - t0, 1)
        log(f"probe: slowest {per_step * 1000:.0f} ms/step, start-up {startup:.0f} s, {left:.0f} s left for "
            f"training -> {steps} steps each (expected {steps * per_step + startup:.0f} s)")
    summary["steps"] = steps

    t0 = time.time()
    log(f"3/5 train: {', '.join(names)} concurrently, {steps} steps each")
    logs = {n: runs / f"{n}.log" for n in names}
    procs = {n: launch(train_cmd(configs[n], runs / n, "--steps", steps), logs[n], env[n]) for n in names}
    wait_all(procs, logs)
    summary["phases_s"]["train"] = round(time.time() - t0, 1)

    t0 = time.time()
    log(f"4/5 export: {models}/<name>/")
    for name in names:
        target = models / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(runs / name / "final", target)
        for file in COPY:
            if (runs / name / file).is_file():
                shutil.copy(runs / name / file, target / file)
        m = json.loads((target / "train_manifest.json").read_text())
        summary["models"][name] = {"scheme": m["model"]["scheme"], "parameters": m["model"]["parameters"],
                                   "steps": m["step"], "tokens_seen": m["tokens_seen"], "final_loss": m["final_loss"],
                                   "final_answer_acc": m["final_answer_acc"], "tokens_per_s": m["tokens_per_s"],
                                   "train_time_s": m["train_time_s"]}
    summary["phases_s"]["export"] = round(time.time() - t0, 1)

    t0 = time.time()
    log(f"5/5 check: niah_single_1 at {args.check_length}, {args.check_samples} samples, greedy")
    check = runs / "check"
    cmd = [sys.executable, "eval.py", "run", *[a for n in names for a in ("--model", f"{models / n}@{n}")],
           "--tasks", "niah_single_1", "--lengths", str(args.check_length), "--samples", str(args.check_samples),
           "--out", str(check), "--fresh", "--no-progress"]
    subprocess.run(cmd, cwd=ROOT, env=env[names[0]], check=True)
    import csv
    with open(check / "summary.csv", newline="") as f:
        for row in csv.DictReader(f):
            summary["models"][row["model"]]["niah_single_1"] = {
                "length": args.check_length, "score": float(row["score"]), "n": int(row["n"]),
                "ci": [row["ci_low"], row["ci_high"]]}
    summary["phases_s"]["check"] = round(time.time() - t0, 1)
    summary["wall_time_s"] = round(time.time() - start, 1)
    for name in names:
        _finish_card(models / name, summary, name, args)
    (runs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    print()
    print(f"{'model':8s} {'scheme':22s} {'steps':>6s} {'tokens':>12s} {'loss':>7s} {'niah_single_1':>14s}")
    for name, m in summary["models"].items():
        niah = m.get("niah_single_1", {})
        print(f"{name:8s} {m['scheme']:22s} {m['steps']:6d} {m['tokens_seen']:12,d} {m['final_loss']:7.4f} "
              f"{niah.get('score', float('nan')):13.1f}%")
    print(f"wall time {summary['wall_time_s']:.0f} s (budget {60 * args.minutes:.0f} s): " +
          ", ".join(f"{k} {v:.0f} s" for k, v in summary["phases_s"].items()))
    if args.pack:
        pack = Path(args.pack)
        pack.mkdir(parents=True, exist_ok=True)
        for name in names:
            with tarfile.open(pack / f"reference_{name}.tar.gz", "w:gz") as tar:
                tar.add(models / name, arcname=name)
        shutil.copy(runs / "summary.json", pack / "summary.json")
        with tarfile.open(pack / "logs.tar.gz", "w:gz") as tar:
            for log_file in sorted(runs.glob("*.log")) + sorted(runs.glob("probe/*.log")):
                tar.add(log_file, arcname=str(log_file.relative_to(runs)))
        log(f"packed into {pack}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB"
                                                for p in sorted(pack.iterdir())))
    rope = summary["models"].get("rope", {}).get("niah_single_1", {}).get("score")
    if rope is not None and rope < 90 and not args.smoke:
        print(f"FAIL: the RoPE model scores {rope:.1f}% on niah_single_1 at {args.check_length} (needs 90%): train "
              f"longer or change the mix", file=sys.stderr)
        return 3
    return 0


def _finish_card(folder: Path, summary: dict, name: str, args):
    """Append the reference-set facts to the model card: how the four were trained together and the check."""
    m = summary["models"][name]
    niah = m.get("niah_single_1")
    lines = ["", "## Reference set", "",
             "One of posbench's four reference models (rope, nope, hybrid, repo), identical but for the scheme and "
             "trained concurrently on one GPU by:", "", "```bash", summary["command"], "```", "",
             f"It prepares the tokenizer and the data cache once (`eval.py train configs/train_reference_rope.yaml "
             f"--prepare`), measures the four runs' speed together, and gives all four the same step count "
             f"({summary['steps']}): the command under Reproduce, run for each model at the same time."]
    if niah:
        lines += ["", f"niah_single_1 at {niah['length']} tokens (greedy, {niah['n']} samples, seed 42): "
                      f"**{niah['score']:.1f}%** (95% CI {niah['ci'][0]}-{niah['ci'][1]})."]
    with open(folder / "README.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
