"""A sweep over several GPUs: its cells sharded across ranks, merged into one run directory with one manifest.

    python eval.py sweep SWEEP.yaml --out RUN --gpus 2                  # 2 worker processes on this host, one per GPU
    torchrun --nproc-per-node 2 eval.py sweep SWEEP.yaml --out RUN      # the same under torchrun (several nodes:
                                                                        # its usual rendezvous; RUN on a shared disk)

Rank r runs the cells i with i % world == r, in the sweep's order (model -> length -> task), so every rank gets its
share of every length. A cell's sample log is written by one rank only, so logs never interleave, and resuming works
per shard exactly as for one process: finished samples in the logs are skipped, whatever the world size was. Only
rank 0 writes manifest.json; the other ranks leave their cells' timings and models in RUN/shards/rank<r>.json, which
rank 0 merges (and removes) after the last barrier, before it writes summary.csv from all the logs.

The process group (gloo) only carries barriers: results travel through the run directory, so CPU processes run the
same code as GPUs (the tests shard a sweep over 2 CPU processes). On a GPU host each rank takes cuda:LOCAL_RANK.
"""
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ENTRY = Path(__file__).resolve().parents[3] / "eval.py"


@dataclass
class Shard:
    rank: int = 0
    world: int = 1

    def owns(self, cell_index: int) -> bool:
        return cell_index % self.world == self.rank

    def barrier(self):
        if self.world > 1:
            import torch.distributed as dist
            dist.barrier()

    def close(self):
        if self.world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()

    def report_path(self, root) -> Path:
        return Path(root) / "shards" / f"rank{self.rank}.json"


def from_env() -> Shard:
    """This process's shard: one of WORLD_SIZE ranks when started by `--gpus` or torchrun, else the whole sweep."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    local = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if torch.cuda.is_available():
        torch.cuda.set_device(local % torch.cuda.device_count())
    return Shard(dist.get_rank(), dist.get_world_size())


def launch(argv: list, workers: int) -> int:
    """Run `eval.py ARGV` as `workers` ranks of one process group on this host; returns the first failing exit code
    (0 when all succeed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(workers):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(workers),
               "LOCAL_WORLD_SIZE": str(workers), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, str(ENTRY), *argv], env=env))
    while any(p.poll() is None for p in procs):
        if any(p.poll() for p in procs):   # one rank failed: the others would wait at a barrier forever
            for p in procs:
                if p.poll() is None:
                    p.terminate()
        time.sleep(0.2)
    return next((p.returncode for p in procs if p.returncode), 0)


def without_gpus_flag(argv: list) -> list:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            out.append(arg)
    return out


def write_report(shard: Shard, root, manifest: dict, cells: list):
    """A non-zero rank's share of the manifest: its cells' timings and the models it loaded."""
    from posbench.harness.evaluation.results import atomic_write_json

    atomic_write_json(shard.report_path(root), {"rank": shard.rank, "device": manifest["device"],
                                                "cells": {k: manifest["cells"][k] for k in cells if
                                                          k in manifest["cells"]},
                                                "models": manifest["models"]})


def merge_reports(root, manifest: dict, world: int):
    """Rank 0: fold every other rank's report into the manifest and remove it."""
    ranks = [{"rank": 0, "device": manifest["device"]}]
    for path in sorted((Path(root) / "shards").glob("rank*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        manifest["cells"].update(report["cells"])
        for model in report["models"]:
            if not any(m["label"] == model["label"] for m in manifest["models"]):
                manifest["models"].append(model)
        ranks.append({"rank": report["rank"], "device": report["device"]})
        path.unlink()
    if (Path(root) / "shards").exists() and not any((Path(root) / "shards").iterdir()):
        (Path(root) / "shards").rmdir()
    manifest["shards"] = {"world": world, "ranks": ranks}
