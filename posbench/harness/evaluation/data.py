"""Where task data lives, and how it gets there.

The data root is `--data-root`, else $POSBENCH_DATA, else a per-user folder (`${XDG_DATA_HOME:-~/.local/share}/
posbench/data`). Its layout is the catalogue's (posbench/tasks/data_catalogue.py): `download` fetches each entry's files
from their official sources, checks size and sha256, and writes them where the loaders read them; `check` verifies
what is there. Files without a pinned checksum get one recorded at their first download (RECORD), which `check` then
verifies.
"""
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from posbench.tasks.data_catalogue import default_data_root  # noqa: F401  (one definition, used here too)
from posbench.tasks.errors import TaskError

REPO_ROOT = Path(__file__).resolve().parents[3]   # the checkout (manifests record its git commit)
RECORD = ".posbench-data.json"   # size and sha256 of downloaded files whose checksums the catalogue does not pin
CHUNK = 1 << 20


class DataError(TaskError):
    """A download failed or a file does not match the catalogue."""


ROOT_HELP = "data root (default: $POSBENCH_DATA, else ${XDG_DATA_HOME:-~/.local/share}/posbench/data)"


def data_paths(root=None, overrides=()) -> dict:
    """{"data": root, NAME: PATH...} for tasks' ${NAME} placeholders.

    root: --data-root, else $POSBENCH_DATA, else the per-user folder. overrides: "NAME=PATH" strings from --data.
    """
    out = {"data": str(Path(root) if root else default_data_root())}
    for item in overrides:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--data expects NAME=PATH, got {item!r}")
        out[name] = path
    return out


# ---- the catalogue on disk -----------------------------------------------------------------------------------------

def entries(names=None) -> list:
    """Catalogue entries by name ("all" or None: every one); an unknown name is an error listing the known ones."""
    from posbench.tasks.data_catalogue import CATALOGUE

    if not names or names == ["all"]:
        return list(CATALOGUE.values())
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise DataError(f"unknown data set {', '.join(map(repr, unknown))}; known: {', '.join(CATALOGUE)}, all")
    return [CATALOGUE[n] for n in names]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _read_record(root: Path) -> dict:
    try:
        return json.loads((root / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _expected(file, record: dict):
    """(size, sha256) a file must have: the catalogue's, else the one recorded at its first download, else None."""
    seen = record.get(file.path, {})
    return (file.size if file.size is not None else seen.get("size"),
            file.sha256 if file.sha256 is not None else seen.get("sha256"))


def file_status(root: Path, file, record: dict, verify: bool) -> str:
    """'missing', 'present' (not hashed), 'ok', 'unverified' (no checksum known) or 'corrupt: ...'."""
    path = root / file.path
    if not path.is_file():
        return "missing"
    if not verify:
        return "present"
    size, sha = _expected(file, record)
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"corrupt: {actual} bytes, expected {size}"
    if sha is None:
        return "unverified"
    digest = sha256_of(path)
    return "ok" if digest == sha else f"corrupt: sha256 {digest[:12]}..., expected {sha[:12]}..."


def entry_status(root: Path, entry, verify=False) -> dict:
    record = _read_record(root)
    return {f.path: file_status(root, f, record, verify) for f in entry.files}


def is_present(root, name) -> bool:
    """Every file of catalogue entry `name` exists under root (not hashed: for tests and quick checks)."""
    return all(s != "missing" for s in entry_status(Path(root), entries([name])[0]).values())


# ---- download ------------------------------------------------------------------------------------------------------

def _fetch(url: str, dest: Path, max_bytes, timeout: float) -> None:
    """Stream url into dest, refusing more than max_bytes (when known)."""
    req = urllib.request.Request(url, headers={"User-Agent": "posbench-data"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
            got = 0
            for block in iter(lambda: resp.read(CHUNK), b""):
                got += len(block)
                if max_bytes is not None and got > max_bytes:
                    raise DataError(f"{url}: more than the expected {max_bytes} bytes; not the catalogued file")
                out.write(block)
    except OSError as err:   # URLError, HTTPError, timeouts and connection errors are all OSErrors
        raise DataError(f"cannot download {url}: {getattr(err, 'reason', None) or err}") from None


def _verify(data: Path, file, what: str) -> None:
    actual = data.stat().st_size
    if file.size is not None and actual != file.size:
        raise DataError(f"{what}: got {actual} bytes, the catalogue expects {file.size}; nothing was written")
    if file.sha256 is not None and sha256_of(data) != file.sha256:
        raise DataError(f"{what}: sha256 differs from the catalogue's {file.sha256}; nothing was written")


def download(entry, root: Path, timeout: float = 60.0, echo=print) -> int:
    """Fetch every missing or corrupt file of `entry` into root; returns how many files were written.

    Each file is verified before it is moved into place, so a failed download leaves nothing half-written.
    """
    root = Path(root)
    record = _read_record(root)
    todo = [f for f in entry.files
            if file_status(root, f, record, verify=True) not in ("ok", "unverified")]
    if not todo:
        echo(f"{entry.name}: all {len(entry.files)} files present and verified under {root}")
        return 0
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    written = 0
    try:
        fetched = {}
        for file in todo:
            if file.url not in fetched:
                echo(f"{entry.name}: downloading {file.url}")
                fetched[file.url] = tmp / f"{len(fetched)}.part"
                limit = None if file.member else file.size
                _fetch(file.url, fetched[file.url], limit, timeout)
            data = fetched[file.url]
            if file.member:
                data = _extract(fetched[file.url], file.url, file.member, tmp / f"member-{written}")
            _verify(data, file, f"{entry.name}: {file.url}" + (f" member {file.member}" if file.member else ""))
            dest = root / file.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if file.sha256 is None:
                record[file.path] = {"size": data.stat().st_size, "sha256": sha256_of(data), "url": file.url}
            shutil.copyfile(data, dest.with_name(dest.name + ".part"))
            os.replace(dest.with_name(dest.name + ".part"), dest)
            written += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if any(f.sha256 is None for f in todo):
            (root / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    echo(f"{entry.name}: wrote {written} files under {root}")
    return written


def _extract(archive: Path, url: str, member: str, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    except KeyError:
        raise DataError(f"{url}: the downloaded archive has no member {member!r}") from None
    except zipfile.BadZipFile:
        raise DataError(f"{url}: not a zip archive (expected one holding {member!r})") from None
    return dest
