"""The results store. A run directory holds:

    manifest.json                                   what ran: versions, git commit, device, full config, seeds, times
    samples/<model>/<task>/<length>.jsonl           one line per finished sample (appended atomically)
    summary.csv                                     one row per model x task x length: score, 95% bootstrap CI, n
    report.md, plots/                               written by `eval.py report` from the files above

Writes never leave a half-written file behind: whole files go through a temporary file and an atomic rename, and a
sample line is written with one `write` on an O_APPEND descriptor and fsynced. A line cut short by a kill is
dropped when the log is next opened, so resuming recomputes exactly the samples that did not finish. A damaged
line elsewhere is an error naming the file and line; a sample index logged twice counts once (the first record).
Files get the user's umask (0644 by default), so a team can read a run.
"""
import csv
import io
import json
import os
import random
import tempfile
from pathlib import Path

from posbench.harness.files import OutputError, make_shareable, read_json, read_json_lines

SUMMARY_COLUMNS = ["model", "scheme", "task", "groups", "length", "metric", "score", "ci_low", "ci_high", "n",
                   "skipped", "variant_of"]
NOT_LENGTH_CONTROLLED = "native"   # the length label of tasks whose samples keep their own length


def atomic_write_text(path, text: str):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        make_shareable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def length_label(length) -> str:
    return NOT_LENGTH_CONTROLLED if length is None else str(length)


def safe_name(label: str) -> str:
    """A model label or task name as a single path component."""
    out = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in str(label))
    if not out or out.startswith("."):
        out = "_" + out
    return out


class SampleLog:
    """The per-sample results of one (model, task, length) cell: an append-only JSON-lines file."""

    def __init__(self, path):
        self.path = Path(path)

    def read(self) -> list:
        """Finished records, one per sample index (the first logged), in file order. A trailing partial line (a
        kill mid-write) is cut off the file; damage anywhere else raises OutputError naming the line."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 1))
            complete = size == 0 or f.read(1) == b"\n"
        if not complete:
            data = self.path.read_bytes()
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())
        records, seen = [], set()
        for number, rec in enumerate(read_json_lines(self.path), 1):
            if not isinstance(rec.get("index"), int):
                raise OutputError(f"{self.path}: record {number} has no sample index; the file is damaged")
            if rec["index"] not in seen:
                seen.add(rec["index"])
                records.append(rec)
        return records

    def append(self, record: dict):
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a short write cannot be left behind as a valid-looking prefix
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)


class RunDir:
    def __init__(self, root):
        self.root = Path(root)

    @property
    def manifest_path(self):
        return self.root / "manifest.json"

    @property
    def summary_path(self):
        return self.root / "summary.csv"

    def sample_log(self, model: str, task: str, length) -> SampleLog:
        return SampleLog(self.root / "samples" / safe_name(model) / safe_name(task) / f"{length_label(length)}.jsonl")

    def read_manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {}
        manifest = read_json(self.manifest_path)
        if not isinstance(manifest, dict):
            raise OutputError(f"{self.manifest_path}: not a run manifest (a JSON object)")
        return manifest

    def write_manifest(self, manifest: dict):
        atomic_write_json(self.manifest_path, manifest)

    def write_summary(self, rows: list):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in SUMMARY_COLUMNS})
        atomic_write_text(self.summary_path, buf.getvalue())

    def read_summary(self) -> list:
        if not self.summary_path.exists():
            return []
        with open(self.summary_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        for number, row in enumerate(rows, 2):
            if None in row or None in row.values():   # a cut or merged line: more or fewer fields than the header
                fields = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                raise OutputError(f"{self.summary_path}:{number}: {fields} fields where the header has "
                                  f"{len(reader.fieldnames)}; the file is damaged (resuming the run rebuilds it)")
        return rows


def bootstrap_ci(values, scale=100.0, resamples=2000, seed=0, level=0.95):
    """(low, high) percentile bootstrap interval of scale * mean(values); deterministic for a given seed."""
    n = len(values)
    if n == 0:
        return (None, None)
    if n == 1 or min(values) == max(values):
        m = scale * sum(values) / n
        return (round(m, 2), round(m, 2))
    rng = random.Random(seed)
    means = sorted(scale * sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = means[int((1 - level) / 2 * resamples)]
    hi = means[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return (round(lo, 2), round(hi, 2))
