"""What a run records about where it ran: posbench's git commit, package versions, the device."""
import datetime
import importlib.metadata
import os
import platform
import subprocess

from posbench.harness.evaluation.data import REPO_ROOT

PACKAGES = ["torch", "transformers", "tokenizers", "triton", "numpy", "nltk", "wonderwords", "rouge", "fuzzywuzzy",
            "lm-eval", "safetensors", "pyyaml"]


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> dict:
    """{"git_commit", "git_dirty"}: the commit posbench runs from, and whether the tree has uncommitted changes
    (results must say so)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    # A copy without .git (e.g. a working tree sent to a GPU machine) can be told its commit by the sender.
    fallback = {"git_commit": os.environ.get("POSBENCH_GIT_COMMIT"), "git_dirty": None}
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return fallback
    if head.returncode != 0:
        return fallback
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: str) -> dict:
    import torch

    info = {"device": device, "host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(idx)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info
