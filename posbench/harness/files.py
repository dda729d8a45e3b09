"""Writing output folders safely: one writer per folder (RunLock), files readable by the team (the user's umask),
whole folders published atomically, and JSON lines read back with the file and line of any damage.

Evaluation runs (evaluation/runner.py) and training runs (training/train.py) both use these.
"""
import datetime
import fcntl
import json
import os
import shutil
import socket
import sys
from pathlib import Path


class OutputError(ValueError):
    """An output folder or results file that cannot be used: busy, damaged, or not a folder."""


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (nothing else runs in between in this thread).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_shareable(path):
    """Give a file the permissions an ordinary `open` would (0644 under the usual umask 022). Temporary files
    (mkstemp) and safetensors are created 0600, which would make results and weights unreadable to a team."""
    path = Path(path)
    mode = 0o777 if path.is_dir() else 0o666
    os.chmod(path, mode & ~_umask())


def make_tree_shareable(root):
    root = Path(root)
    make_shareable(root)
    for p in root.rglob("*"):
        if not p.is_symlink():
            make_shareable(p)


def publish_folder(build, final: Path) -> Path:
    """Write a folder in full under a temporary name beside `final`, then rename it into place: a crash leaves no
    half-written `final`, only a temporary folder that the next attempt removes. `build(tmp)` writes the files."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    make_tree_shareable(tmp)
    os.replace(tmp, final)  # final must not exist: callers publish once
    return final


def read_json_lines(path, error=OutputError) -> list:
    """The records of a JSON-lines file; a line that is not a JSON object raises `error` naming the file and line."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise error(f"{path}:{number}: not a JSON line ({err.msg}); the file is damaged: restore it or "
                                "delete it to recompute its samples") from None
                if not isinstance(record, dict):
                    raise error(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                records.append(record)
        except UnicodeDecodeError as err:
            raise error(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return records


def read_json(path, error=OutputError):
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: not valid JSON ({err.msg}); the file is damaged or cut short") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text ({err.reason})") from None


class RunLock:
    """An exclusive lock on an output folder for the life of one writer (`with RunLock(folder, "--out"):`).

    The lock is an flock on FOLDER/.lock, so the kernel releases it when the holder exits in any way (kill -9
    included): a lock left by a dead process is never in force, and its file only tells who held it last. The
    holder writes its pid, host, start time and command into the file, and a second writer is refused with a line
    naming them. (flock is per host on network filesystems: two hosts writing one folder are not detected.)
    """

    def __init__(self, folder, what: str = "output folder"):
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self.what = what
        self.fd = None

    def __enter__(self):
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"{self.what} {self.folder} is a file, not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            try:
                who = json.loads(holder)
                holder = f"pid {who['pid']} on {who['host']} since {who['since']} ({who['command']})"
            except (ValueError, KeyError, TypeError):
                holder = "another process"
            raise OutputError(f"{self.what} {self.folder} is in use by {holder}; wait for it to finish, or "
                              "choose another folder") from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300],
                "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)   # released: the file no longer names a holder
            os.close(self.fd)          # closing releases the flock
            self.fd = None
        return False
