"""Where task data lives: the data root (default: ../shared/data beside the repo) and per-name overrides."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def default_data_root() -> Path:
    """$POSBENCH_DATA if set (e.g. a copy carried to another machine), else ../shared/data beside the repo."""
    return Path(os.environ.get("POSBENCH_DATA") or DEFAULT_DATA_ROOT)


def data_paths(root=None, overrides=()) -> dict:
    """{"data": root, NAME: PATH...} for tasks' ${NAME} placeholders.

    root: --data-root, else $POSBENCH_DATA, else ../shared/data. overrides: "NAME=PATH" strings from --data.
    """
    out = {"data": str(Path(root) if root else default_data_root())}
    for item in overrides:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--data expects NAME=PATH, got {item!r}")
        out[name] = path
    return out
