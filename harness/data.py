"""Where task data lives: the data root (default: ../shared/data beside the repo) and per-name overrides."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def data_paths(root=None, overrides=()) -> dict:
    """{"data": root, NAME: PATH...} for tasks' ${NAME} placeholders.

    root: --data-root, else $POSBENCH_DATA, else ../shared/data. overrides: "NAME=PATH" strings from --data.
    """
    out = {"data": str(Path(root or os.environ.get("POSBENCH_DATA") or DEFAULT_DATA_ROOT))}
    for item in overrides:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--data expects NAME=PATH, got {item!r}")
        out[name] = path
    return out
