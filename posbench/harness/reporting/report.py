"""Reports: paper-style tables (and the numbers behind the plots) from one or more run directories.

Reads result files only (manifest.json, summary.csv, samples/*.jsonl), never models, and never writes into a run
except report outputs. What a report shows:

    header       runs merged, models (label, path, scheme, layer map), device, git commit, date, samples, seed
    main tables  one block per length: models as rows, task groups as columns plus "avg", group score =
                 unweighted mean of its member tasks' scores (RULER-style), deltas against a baseline model,
                 the best value per column in bold
    details      per task and length: score [95% CI] with n scored and the skipped count
    skipped      every skipped sample (counted, with reasons) and every expected cell that is missing

Missing cells are "—", never 0. A group score needs every member task the block has; a model lacking one gets "—"
for that group and a footnote naming what is missing. Variant tasks (`variant_of` set: re-definitions of an
official task) count in their own groups but not in "avg", so no sample is counted twice there.
"""
import csv
import dataclasses
import io
import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

from posbench.harness.evaluation.results import (
    NOT_LENGTH_CONTROLLED,
    SUMMARY_COLUMNS,
    RunDir,
    atomic_write_text,
    safe_name,
)
from posbench.harness.files import OutputError
from posbench.position_schemes.base import format_layer_ids

REQUIRED_COLUMNS = ("model", "task", "length", "score", "n")
AVG = "avg"
FORMATS = ("md", "csv", "tex")


class ReportError(ValueError):
    """Bad report input (a missing run, a malformed results file, overlapping runs); the message names the file."""


# ---- reading runs ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Cell:
    """One summary.csv row: a model's score on one task at one length."""
    model: str
    scheme: str
    task: str
    groups: tuple
    length: str                 # "4096", ... or "native"
    metric: str
    score: float | None         # None when nothing was scored
    ci_low: float | None
    ci_high: float | None
    n: int
    skipped: int
    variant_of: str
    run: str                    # the run_id it came from


@dataclasses.dataclass
class Run:
    root: Path
    run_id: str
    manifest: dict
    cells: list


def _number(value, kind, where):
    value = (value or "").strip()
    if value == "" or value.lower() in ("none", "nan", "null"):
        return None
    try:
        x = kind(float(value)) if kind is int else float(value)
    except ValueError:
        raise ReportError(f"{where}: not a number: {value!r}") from None
    if kind is int and float(value) != x:
        raise ReportError(f"{where}: not a whole number: {value!r}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ReportError(f"{where}: not a finite number: {value!r}")
    return x


def load_run(path) -> Run:
    """One run directory's manifest and summary, validated; every error names the file (and line)."""
    run = RunDir(path)
    if not run.root.is_dir():
        raise ReportError(f"{run.root}: no such run directory")
    try:
        manifest = run.read_manifest()
    except OutputError as err:   # damaged or cut short: the message names the file and line
        raise ReportError(str(err)) from None
    if not isinstance(manifest, dict):
        raise ReportError(f"{run.manifest_path}: expected a JSON object, got {type(manifest).__name__}")
    run_id = str(manifest.get("run_id") or run.root.resolve().name)
    if not run.summary_path.exists():
        raise ReportError(f"{run.summary_path}: not found (has the run finished a cell yet?)")
    try:
        with open(run.summary_path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            body = list(enumerate(reader, start=2))
    except (csv.Error, UnicodeDecodeError) as err:
        raise ReportError(f"{run.summary_path}: unreadable CSV: {err}") from None
    if not header:
        raise ReportError(f"{run.summary_path}: empty file (no header row)")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ReportError(f"{run.summary_path}: missing column(s) {', '.join(missing)}; "
                          f"expected {','.join(SUMMARY_COLUMNS)}")
    tasks = {t.get("name"): t for t in manifest.get("tasks") or [] if isinstance(t, dict)}
    models = {m.get("label"): m for m in manifest.get("models") or [] if isinstance(m, dict)}
    cells, seen = [], {}
    for line, values in body:
        if not any(v.strip() for v in values):
            continue
        where = f"{run.summary_path} line {line}"
        if len(values) != len(header):
            raise ReportError(f"{where}: {len(values)} fields, the header has {len(header)}")
        row = dict(zip(header, values))
        for col in ("model", "task", "length"):
            if not row[col].strip():
                raise ReportError(f"{where}: empty {col!r}")
        task = tasks.get(row["task"], {})
        groups = row.get("groups")
        groups = [g for g in groups.split(";") if g] if groups is not None else list(task.get("groups") or [])
        cell = Cell(
            model=row["model"], task=row["task"], length=row["length"].strip(),
            scheme=row.get("scheme") or models.get(row["model"], {}).get("scheme") or "?",
            groups=tuple(groups), metric=row.get("metric") or task.get("primary_metric") or "?",
            score=_number(row["score"], float, f"{where}, column 'score'"),
            ci_low=_number(row.get("ci_low"), float, f"{where}, column 'ci_low'"),
            ci_high=_number(row.get("ci_high"), float, f"{where}, column 'ci_high'"),
            n=_number(row["n"], int, f"{where}, column 'n'") or 0,
            skipped=_number(row.get("skipped"), int, f"{where}, column 'skipped'") or 0,
            variant_of=row.get("variant_of") or task.get("variant_of") or "", run=run_id)
        if cell.length != NOT_LENGTH_CONTROLLED and not cell.length.isdigit():
            raise ReportError(f"{where}: length must be a number of tokens or {NOT_LENGTH_CONTROLLED!r}, "
                              f"got {cell.length!r}")
        key = (cell.model, cell.task, cell.length)
        if key in seen:
            raise ReportError(f"{where}: duplicate row for model {cell.model}, task {cell.task}, length "
                              f"{cell.length} (first at line {seen[key]})")
        seen[key] = line
        cells.append(cell)
    return Run(root=run.root, run_id=run_id, manifest=manifest, cells=cells)


def read_sample_records(path) -> list:
    """The finished records of one sample log, read-only (SampleLog.read repairs the file; a report never writes
    into a run). A trailing line without its newline is a write in progress and is left out."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    out = []
    for i, line in enumerate(text.split("\n")[:-1], start=1):   # the last piece is "" or an unfinished line
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ReportError(f"{path} line {i}: not valid JSON: {err}") from None
    return out


# ---- the merged report ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Model:
    label: str
    scheme: str
    path: str = ""
    scheme_params: dict = dataclasses.field(default_factory=dict)
    layer_schemes: list = dataclasses.field(default_factory=list)
    runs: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Task:
    name: str
    groups: tuple
    metric: str
    variant_of: str = ""


def length_sort_key(length: str):
    return (1, 0) if not length.isdigit() else (0, int(length))


def length_name(length: str) -> str:
    """'4096' -> '4K', '16384' -> '16K', 'native' -> 'native'."""
    if not length.isdigit():
        return length
    n = int(length)
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


class Report:
    """Several runs merged: cells keyed by (model, task, length), plus what the manifests say about models."""

    def __init__(self, runs: list, baseline: str = None):
        if not runs:
            raise ReportError("no run directories given")
        self.runs = runs
        self.cells = {}
        for run in runs:
            for cell in run.cells:
                key = (cell.model, cell.task, cell.length)
                if key in self.cells:
                    other = self.cells[key].run
                    raise ReportError(f"{run.root}: model {cell.model!r}, task {cell.task}, length {cell.length} "
                                      f"is also in run {other!r}; runs merged into one report must not overlap")
                self.cells[key] = cell
        self.models = self._models()
        self.tasks = self._tasks()
        self.lengths = sorted({c.length for c in self.cells.values()}, key=length_sort_key)
        if baseline is None:
            rope = [m.label for m in self.models.values() if m.scheme == "rope"]
            baseline = rope[0] if rope else next(iter(self.models), None)
        elif baseline not in self.models:
            raise ReportError(f"--baseline {baseline!r} is not a model of these runs; models: "
                              f"{', '.join(self.models)}")
        self.baseline = baseline

    def _models(self) -> dict:
        models = {}
        for run in self.runs:
            for info in self.run_models(run):
                label = str(info.get("label"))
                scheme = str(info.get("scheme") or "?")
                m = models.setdefault(label, Model(label=label, scheme=scheme, path=str(info.get("path") or ""),
                                                   scheme_params=info.get("scheme_params") or {},
                                                   layer_schemes=list(info.get("layer_schemes") or [])))
                if scheme != "?" and m.scheme == "?":
                    m.scheme = scheme
                if scheme not in ("?", m.scheme):
                    raise ReportError(f"{run.root}: model {label!r} has scheme {scheme} here but {m.scheme} in run "
                                      f"{m.runs[0]!r}; give different models different labels")
                if run.run_id not in m.runs:
                    m.runs.append(run.run_id)
        return models

    @staticmethod
    def run_models(run) -> list:
        """The manifest's model entries (copied), then any model only the summary names, so none is lost.
        A manifest entry without a scheme takes the summary's."""
        listed = [dict(m) for m in run.manifest.get("models") or [] if isinstance(m, dict) and m.get("label")]
        labels = {str(m["label"]) for m in listed}
        for cell in run.cells:
            if cell.model not in labels:
                listed.append({"label": cell.model, "scheme": cell.scheme})
                labels.add(cell.model)
        for m in listed:
            if not m.get("scheme"):
                m["scheme"] = next((c.scheme for c in run.cells if c.model == m["label"]), "?")
        return listed

    def _tasks(self) -> dict:
        order = []
        for run in self.runs:
            order += [t.get("name") for t in run.manifest.get("tasks") or [] if isinstance(t, dict)]
        order += [c.task for c in self.cells.values()]
        tasks = {}
        for cell in sorted(self.cells.values(), key=lambda c: order.index(c.task)):
            t = tasks.get(cell.task)
            if t is None:
                tasks[cell.task] = Task(cell.task, cell.groups, cell.metric, cell.variant_of)
                continue
            if cell.metric != t.metric:
                raise ReportError(f"task {cell.task}: metric {cell.metric} in run {cell.run!r} but {t.metric} "
                                  f"elsewhere; scores on different metrics cannot share a table")
            t.groups = t.groups + tuple(g for g in cell.groups if g not in t.groups)
        return tasks

    # -- numbers ------------------------------------------------------------------------------------------------

    def score(self, model, task, length):
        cell = self.cells.get((model, task, length))
        return None if cell is None else cell.score

    def block_tasks(self, length) -> list:
        """Tasks with at least one cell at this length, in task order."""
        return [t for t in self.tasks if any((m, t, length) in self.cells for m in self.models)]

    def groups(self, length) -> dict:
        """{column: member tasks} for one length block: each group, an ungrouped task as its own column."""
        out = {}
        for t in self.block_tasks(length):
            for g in self.tasks[t].groups or (t,):
                out.setdefault(g, []).append(t)
        return out

    def avg_members(self, length) -> list:
        tasks = self.block_tasks(length)
        official = [t for t in tasks if not self.tasks[t].variant_of]
        return official or tasks

    def columns(self, length) -> dict:
        cols = self.groups(length)
        if len(cols) > 1 or list(cols.values()) != [self.avg_members(length)]:
            cols[AVG] = self.avg_members(length)
        return cols

    def group_score(self, model, members, length):
        """Unweighted mean of the members' scores; None (shown "—") unless every member has a score."""
        scores = [self.score(model, t, length) for t in members]
        if not scores or any(s is None for s in scores):
            return None
        return sum(scores) / len(scores)

    def main_table(self, length) -> "Table":
        """Every model is a row (a model not run here shows — throughout, with a note saying so)."""
        cols = self.columns(length)
        rows, notes = [], []
        for m in self.models.values():
            rows.append((m.label, m.scheme, [self.group_score(m.label, members, length) for members in cols.values()]))
            tasks = self.block_tasks(length)
            lacking = [t for t in tasks if self.score(m.label, t, length) is None]
            if lacking and len(lacking) == len(tasks) and not any((m.label, t, length) in self.cells for t in tasks):
                notes.append(f"`{m.label}` was not run at this length.")
            elif lacking:
                notes.append(f"`{m.label}` has no score for {', '.join(lacking)}, so groups containing "
                             f"{'it' if len(lacking) == 1 else 'them'} show {DASH}.")
        return Table(length=length, columns=cols, rows=rows, baseline=self.baseline, notes=notes)

    def series(self, members) -> dict:
        """{model: [(length int, score, ci_low, ci_high)]} over numeric lengths, for the score-vs-length plots.
        CIs only when the group has one task (a mean of tasks has no interval in summary.csv)."""
        out = {}
        for m in self.models:
            pts = []
            for length in self.lengths:
                if not length.isdigit() or not any((m, t, length) in self.cells for t in members):
                    continue
                mine = [t for t in members if any((mm, t, length) in self.cells for mm in self.models)]
                s = self.group_score(m, mine, length)
                if s is None:
                    continue
                lo = hi = None
                if len(mine) == 1:
                    c = self.cells[(m, mine[0], length)]
                    lo, hi = c.ci_low, c.ci_high
                pts.append((int(length), s, lo, hi))
            if pts:
                out[m] = pts
        return out

    def n_range(self, cells=None) -> str:
        ns = sorted({c.n for c in (self.cells.values() if cells is None else cells)})
        if not ns:
            return "0"
        return str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"

    def missing_cells(self) -> list:
        """(model, task, length, run) that a manifest declares but no summary row has."""
        out = []
        for run in self.runs:
            m = run.manifest
            models = [x.get("label") for x in m.get("models") or [] if isinstance(x, dict)]
            lengths = [str(x) for x in m.get("lengths") or []]
            for t in m.get("tasks") or []:
                if not isinstance(t, dict) or not t.get("name"):
                    continue
                controlled = t.get("length_controlled", True)
                for model in models:
                    for length in (lengths if controlled else [NOT_LENGTH_CONTROLLED]):
                        if (model, t["name"], length) not in self.cells:
                            out.append((model, t["name"], length, run.run_id))
        return out

    def skipped_tasks(self) -> list:
        """(run, task, reason) from a manifest's optional `skipped_tasks` (list of {task, reason} or a mapping)."""
        out = []
        for run in self.runs:
            st = run.manifest.get("skipped_tasks") or []
            items = st.items() if isinstance(st, dict) else [
                (x.get("task") or x.get("name"), x.get("reason", "")) if isinstance(x, dict) else (x, "")
                for x in st]
            out += [(run.run_id, str(t), str(r)) for t, r in items]
        return out

    def skip_reasons(self, cell) -> Counter:
        """Reason -> count over a cell's skipped samples (numbers folded to N so alike reasons group)."""
        run = next(r for r in self.runs if r.run_id == cell.run)
        path = RunDir(run.root).sample_log(cell.model, cell.task, cell.length).path
        reasons = Counter()
        for rec in read_sample_records(path):
            if rec.get("skip_reason"):
                reasons[re.sub(r"\d+", "N", str(rec["skip_reason"]))] += 1
        return reasons

    def sample_records(self, cell) -> list:
        run = next(r for r in self.runs if r.run_id == cell.run)
        return read_sample_records(RunDir(run.root).sample_log(cell.model, cell.task, cell.length).path)


@dataclasses.dataclass
class Table:
    length: str
    columns: dict        # column name -> member tasks
    rows: list           # (model, scheme, [value or None per column])
    baseline: str
    notes: list

    def best(self) -> list:
        """Per column, the best displayed value (ties all count), or None when fewer than two models compare."""
        out = []
        for j in range(len(self.columns)):
            vals = [round(r[2][j], 1) for r in self.rows if r[2][j] is not None]
            out.append(max(vals) if len(vals) >= 2 else None)
        return out

    def delta(self, i, j):
        base = next((r for r in self.rows if r[0] == self.baseline), None)
        model, _, values = self.rows[i]
        if base is None or model == self.baseline or values[j] is None or base[2][j] is None:
            return None
        return values[j] - base[2][j]


# ---- needle heatmaps ------------------------------------------------------------------------------------------------

def needle_depths(record) -> list:
    """The needle depths (percent of the context) of one sample record; [] when it is not a needle sample.
    The one place that knows the metadata field names: RULER's needle tasks write `needles` (one dict per needle,
    with its key and depth) and `queries`; only the needles asked about count (multikey's distractors do not).
    A bare `depth` or `depths` (a user's own generator) is read too."""
    meta = record.get("metadata") or {}
    if isinstance(meta.get("depth"), (int, float)):
        return [float(meta["depth"])]
    depths = meta.get("depths")
    if isinstance(depths, (list, tuple)):
        return [float(d) for d in depths if isinstance(d, (int, float))]
    needles = [n for n in meta.get("needles") or [] if isinstance(n, dict) and isinstance(n.get("depth"), (int, float))]
    queried = set(meta.get("queries") or [])
    return [float(n["depth"]) for n in needles if not queried or n.get("key") in queried]


def depth_bins(depths) -> list:
    """[(low, high, label)]: one bin per distinct depth when there are at most 11, else ten 10% bins."""
    distinct = sorted(set(depths))
    if len(distinct) <= 11:
        return [(d, d, f"{d:g}%") for d in distinct]
    return [(10 * i, 10 * (i + 1), f"{10 * i}–{10 * (i + 1)}%") for i in range(10)]


def _bin_index(bins, d):
    for i, (lo, hi, _) in enumerate(bins):
        if lo == hi == d or (lo != hi and lo <= d < hi) or (i == len(bins) - 1 and lo != hi and d == hi):
            return i
    return None


def needle_grids(report: Report) -> dict:
    """{model: {"tasks", "lengths", "bins", "mean" [bin][length] or None, "n" [bin][length], "metric"}} over the
    needle tasks (tasks whose samples carry a depth), numeric lengths only; skipped samples are left out."""
    per_model = defaultdict(list)          # model -> [(task, length, depth, score)]
    for cell in report.cells.values():
        if not cell.length.isdigit():
            continue
        for rec in report.sample_records(cell):
            depths = needle_depths(rec)
            if not depths:
                break                      # a task's samples either all carry depths or none do
            score = (rec.get("scores") or {}).get(cell.metric)
            if rec.get("skip_reason") or score is None:
                continue
            for d in depths:
                per_model[cell.model].append((cell.task, cell.length, d, float(score)))
    if not per_model:
        return {}
    bins = depth_bins([p[2] for pts in per_model.values() for p in pts])
    lengths = sorted({p[1] for pts in per_model.values() for p in pts}, key=length_sort_key)
    out = {}
    for model in report.models:
        pts = per_model.get(model)
        if not pts:
            continue
        sums = [[[0.0, 0] for _ in lengths] for _ in bins]
        for _, length, d, s in pts:
            b = _bin_index(bins, d)
            if b is not None:
                acc = sums[b][lengths.index(length)]
                acc[0] += s
                acc[1] += 1
        tasks = sorted({p[0] for p in pts}, key=list(report.tasks).index)
        out[model] = {"tasks": tasks, "lengths": lengths, "bins": [b[2] for b in bins],
                      "mean": [[100 * s / k if k else None for s, k in row] for row in sums],
                      "n": [[k for _, k in row] for row in sums],
                      "metric": ", ".join(sorted({report.tasks[t].metric for t in tasks}))}
    return out


# ---- formatting helpers ---------------------------------------------------------------------------------------------

DASH = "—"


def _plural(k, word) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def fmt(x) -> str:
    return DASH if x is None else f"{x:.1f}"


def fmt_delta(d) -> str:
    return f"{round(d, 1):+.1f}".replace("-0.0", "+0.0")


def layer_map(layers) -> str:
    """['rope', 'rope', 'nope', 'rope'] -> '4 layers: rope×3, nope×1 (nope at 2)'."""
    kinds = [x if isinstance(x, str) else str((x or {}).get("scheme") or (x or {}).get("name") or x)
             for x in layers or []]
    if not kinds:
        return DASH
    counts = Counter(kinds)
    if len(counts) == 1:
        return f"all {len(kinds)} layers {kinds[0]}"
    major = counts.most_common(1)[0][0]
    parts = [f"{k}×{c}" for k, c in counts.items()]
    where = [f"{k} at {format_layer_ids(i for i, x in enumerate(kinds) if x == k)}" for k in counts if k != major]
    return f"{len(kinds)} layers: {', '.join(parts)} ({'; '.join(where)})"


def _short(d, limit=6) -> str:
    if not d:
        return DASH
    if not isinstance(d, dict):
        return str(d)
    head = [str(d[k]) for k in ("name", "type") if d.get(k)][:1]
    rest = [f"{k}={v}" for k, v in d.items() if k not in ("name", "type") and isinstance(v, (str, int, float))]
    return ", ".join(head + rest[:limit])


def _date(s) -> str:
    s = str(s or "")
    return s[:16].replace("T", " ") if re.match(r"\d{4}-\d\d-\d\dT?", s) else (s or DASH)


def md_table(headers, rows, align) -> str:
    """A markdown table padded so the raw text lines up too; align is a string of 'l'/'r' per column."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if a == "r" else str(c).ljust(w)
                                 for c, w, a in zip(cells, widths, align)) + " |"
    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def _col_header(name, members):
    return name if name == AVG or members == [name] else f"{name} ({len(members)})"


# ---- markdown -------------------------------------------------------------------------------------------------------

def render_markdown(report: Report, plots: dict = None) -> str:
    plots = plots or {}
    out = ["# posbench report", ""]
    out += _md_header(report)
    for length in report.lengths:
        out += _md_main(report, length)
    out += ["## Per-task scores", "",
            "Score on the task's metric (0–100) with its 95% bootstrap interval, n = samples scored; "
            "skipped samples are not scored and are counted separately.", ""]
    for length in report.lengths:
        out += _md_details(report, length)
    out += _md_skipped(report)
    out += _md_plots(plots)
    return "\n".join(out).rstrip() + "\n"


def _md_header(r: Report) -> list:
    ids = ", ".join(f"`{run.run_id}`" for run in r.runs)
    out = [(f"Merged from {len(r.runs)} runs ({ids})" if len(r.runs) > 1 else f"From run {ids}")
           + ". Scores are on a 0–100 scale; "
           f"n per cell = samples scored ({r.n_range()}); "
           f"{sum(c.skipped for c in r.cells.values())} samples skipped in all.", "", "## Runs", ""]
    rows = []
    for run in r.runs:
        m = run.manifest
        models = sorted({c.model for c in run.cells}, key=list(r.models).index)
        rows.append([f"`{run.run_id}`", f"`{run.root}`", str(m.get("git_commit") or DASH)[:12],
                     _short(m.get("device")), f"{_date(m.get('started'))} → {_date(m.get('finished'))}",
                     str(m.get("seed", DASH)), str(m.get("samples", DASH)), ", ".join(models) or DASH,
                     str(len(run.cells))])
    out += [md_table(["run", "directory", "git commit", "device", "started → finished", "seed",
                      "samples/cell", "models", "cells"], rows, "lllllrrlr"), ""]
    versions = {run.run_id: _short(run.manifest["versions"], limit=12) for run in r.runs
                if run.manifest.get("versions")}
    if len(set(versions.values())) == 1 and len(versions) == len(r.runs):
        out += [f"Versions: {next(iter(versions.values()))}", ""]
    elif versions:
        out += [f"Versions ({run_id}): {v}  " for run_id, v in versions.items()] + [""]
    out += ["## Models", ""]
    rows = [[f"`{m.label}`" + (" (baseline)" if m.label == r.baseline else ""), m.scheme,
             f"`{m.path}`" if m.path else DASH,
             ", ".join(f"{k}={v}" for k, v in m.scheme_params.items()) if m.scheme_params else DASH,
             layer_map(m.layer_schemes), ", ".join(m.runs)] for m in r.models.values()]
    out += [md_table(["model", "scheme", "path", "scheme params", "layer map", "runs"], rows, "llllll"), ""]
    out += ["## Tasks", ""]
    rows = []
    for t in r.tasks.values():
        lengths = sorted({c.length for c in r.cells.values() if c.task == t.name}, key=length_sort_key)
        rows.append([f"`{t.name}`", ", ".join(t.groups) or DASH, t.metric, t.variant_of or DASH,
                     ", ".join(length_name(x) for x in lengths)])
    out += [md_table(["task", "groups", "metric (primary)", "variant of", "lengths"], rows, "lllll"), ""]
    out += ["A group's score is the unweighted mean of its member tasks' scores (RULER-style); "
            f"`{AVG}` is the unweighted mean over all tasks of the block"
            + (", variant tasks excluded" if any(t.variant_of for t in r.tasks.values()) else "") + ". "
            f"Deltas are against `{r.baseline}`; the best value per column is in bold. "
            f"{DASH} = not measured (never counted as 0).", ""]
    return out


def _block_title(length):
    return ("Tasks at their native length (not length-controlled)" if not length.isdigit()
            else f"Context length {length_name(length)} ({length} tokens)")


def _md_main(r: Report, length) -> list:
    table = r.main_table(length)
    best = table.best()
    rows = []
    for i, (model, scheme, values) in enumerate(table.rows):
        cells = []
        for j, v in enumerate(values):
            s = fmt(v)
            if v is not None and best[j] is not None and round(v, 1) == best[j]:
                s = f"**{s}**"
            d = table.delta(i, j)
            cells.append(s if d is None else f"{s} ({fmt_delta(d)})")
        rows.append([f"`{model}`", scheme] + cells)
    cols = table.columns
    headers = ["model", "scheme"] + [_col_header(g, m) for g, m in cols.items()]
    cells_here = [c for c in r.cells.values() if c.length == length]
    out = [f"## {_block_title(length)}", "",
           f"n per cell = {r.n_range(cells_here)} samples scored"
           + (f", {sum(c.skipped for c in cells_here)} skipped" if any(c.skipped for c in cells_here) else "")
           + ".", "", md_table(headers, rows, "ll" + "r" * len(cols)), ""]
    groups = [f"`{g}` = {', '.join(m)}" for g, m in cols.items() if m != [g]]
    if groups:
        out += ["Columns: " + "; ".join(groups) + ".", ""]
    out += [f"- {n}" for n in table.notes]
    return out + ([""] if table.notes else [])


def _detail(cell) -> str:
    if cell is None:
        return DASH
    ci = f" [{fmt(cell.ci_low)}, {fmt(cell.ci_high)}]" if cell.ci_low is not None else ""
    skipped = f", {cell.skipped} skipped" if cell.skipped else ""
    return f"{fmt(cell.score)}{ci} n={cell.n}{skipped}"


def _md_details(r: Report, length) -> list:
    models = list(r.models)
    rows = [[f"`{t}`", r.tasks[t].metric] + [_detail(r.cells.get((m, t, length))) for m in models]
            for t in r.block_tasks(length)]
    return [f"### {_block_title(length)}", "",
            md_table(["task", "metric"] + [f"`{m}`" for m in models], rows, "ll" + "r" * len(models)), ""]


def _md_skipped(r: Report) -> list:
    out = ["## Skipped and missing", ""]
    skipped = [c for c in r.cells.values() if c.skipped]
    if skipped:
        rows = []
        for c in sorted(skipped, key=lambda c: (list(r.models).index(c.model), length_sort_key(c.length),
                                                list(r.tasks).index(c.task))):
            reasons = r.skip_reasons(c)
            text = "; ".join(f"{k}× {why}" for why, k in reasons.most_common()) or "(no reasons in the sample log)"
            rows.append([f"`{c.model}`", f"`{c.task}`", length_name(c.length), str(c.skipped), str(c.n), text])
        out += [f"{_plural(sum(c.skipped for c in skipped), 'sample')} skipped in {_plural(len(skipped), 'cell')} "
                "(not scored, "
                "not counted in n; numbers in reasons folded to N):", "",
                md_table(["model", "task", "length", "skipped", "scored", "reasons"], rows, "lllrrl"), ""]
    else:
        out += ["No samples were skipped.", ""]
    tasks = r.skipped_tasks()
    if tasks:
        out += ["Tasks skipped by the run:", ""] + [f"- `{t}` ({run}): {why or 'no reason given'}"
                                                     for run, t, why in tasks] + [""]
    missing = r.missing_cells()
    if missing:
        out += [f"{_plural(len(missing), 'cell')} declared in a manifest {'has' if len(missing) == 1 else 'have'} "
                "no result (not run, or not finished):", ""]
        out += [f"- `{m}` · `{t}` · {length_name(length)} (run `{run}`)" for m, t, length, run in missing] + [""]
    return out


def _md_plots(plots) -> list:
    if not plots:
        return []
    out = ["## Plots", ""]
    for title, path in plots.items():
        out += [f"### {title}", "", f"![{title}]({path})", ""]
    return out


# ---- csv and LaTeX --------------------------------------------------------------------------------------------------

def render_csv(report: Report) -> dict:
    """{file name: text}: one wide table per length (raw values, deltas in their own columns, empty = missing)."""
    files = {}
    for length in report.lengths:
        t = report.main_table(length)
        names = list(t.columns)
        header = ["model", "scheme", "baseline"] + names + [f"{g}_delta" for g in names]
        lines = [header]
        for i, (model, scheme, values) in enumerate(t.rows):
            deltas = [t.delta(i, j) for j in range(len(names))]
            lines.append([model, scheme, int(model == t.baseline)]
                         + ["" if v is None else round(v, 2) for v in values]
                         + ["" if d is None else round(d, 2) for d in deltas])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(lines)
        files[f"report_{safe_name(length)}.csv"] = buf.getvalue()
    return files


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "---", "–": "--", "×": r"$\times$"}


def tex_escape(s) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def render_tex(report: Report) -> str:
    """booktabs tables, one per length, best per column bold; needs \\usepackage{booktabs}."""
    out = [f"% posbench report: {', '.join(r.run_id for r in report.runs)}; needs \\usepackage{{booktabs}}",
           f"% scores 0--100; deltas against {report.baseline}; n per cell = {report.n_range()}", ""]
    for length in report.lengths:
        t = report.main_table(length)
        best = t.best()
        cols = list(t.columns.items())
        out += [r"\begin{table}[t]", r"\centering", r"\small",
                r"\begin{tabular}{ll" + "r" * len(cols) + "}", r"\toprule",
                " & ".join(["Model", "Scheme"] + [tex_escape(_col_header(g, m)) for g, m in cols]) + r" \\",
                r"\midrule"]
        for i, (model, scheme, values) in enumerate(t.rows):
            cells = []
            for j, v in enumerate(values):
                s = fmt(v).replace(DASH, "---")
                if v is not None and best[j] is not None and round(v, 1) == best[j]:
                    s = rf"\textbf{{{s}}}"
                d = t.delta(i, j)
                cells.append(s if d is None else rf"{s} {{\scriptsize ({fmt_delta(d).replace('-', '$-$')})}}")
            out.append(" & ".join([tex_escape(model), tex_escape(scheme)] + cells) + r" \\")
        cells_here = [c for c in report.cells.values() if c.length == length]
        caption = (f"{_block_title(length)}: task-group scores (unweighted mean of member tasks, 0--100), deltas "
                   f"against {report.baseline}, best per column in bold; n = {report.n_range(cells_here)} samples "
                   "per task.")
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_escape(caption)}}}",
                rf"\label{{tab:posbench-{safe_name(length)}}}", r"\end{table}", ""]
    return "\n".join(out)


# ---- the command's work ---------------------------------------------------------------------------------------------

def write_report(run_dirs, out=None, baseline=None, formats=("md",), plots=True) -> list:
    """Load and merge the runs, write the requested formats (and plots) into `out` (default: the first run).
    Returns the paths written."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ReportError(f"--format: unknown format(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {','.join(FORMATS)}")
    report = Report([load_run(d) for d in run_dirs], baseline=baseline)
    if not report.cells:
        raise ReportError(f"{', '.join(str(RunDir(d).summary_path) for d in run_dirs)}: no result rows yet")
    out = Path(out or run_dirs[0])
    written = []
    plot_links = {}
    if plots:
        from posbench.harness.reporting.plots import write_plots
        for title, path in write_plots(report, out / "plots").items():
            plot_links[title] = path.relative_to(out).as_posix()
            written.append(path)
    if "md" in formats:
        atomic_write_text(out / "report.md", render_markdown(report, plot_links))
        written.append(out / "report.md")
    if "csv" in formats:
        for name, text in render_csv(report).items():
            atomic_write_text(out / name, text)
            written.append(out / name)
    if "tex" in formats:
        atomic_write_text(out / "report.tex", render_tex(report))
        written.append(out / "report.tex")
    return written
