"""Run directories as tidy pandas DataFrames: the only code that reads result files (manifest.json, summary.csv,
samples/*.jsonl, analysis/<model>/analysis.json) for reports and analyses; never models, never writing into a run.
Every error names the file (and line). Scores are on the reporting scale (0-100).

    samples   one row per sample: run, model, scheme, scheme_params (at that length), task, groups, variant_of,
              metric, length ("4096" ... or "native"), index, prompt_hash, score (NaN when skipped), prediction,
              skip_reason, depths (needle depths in % of the context; empty for other tasks)
    cells     one row per model x task x length: the same keys, score, ci_low, ci_high, n, skipped, interval (the
              interval's method: Wilson for 0/1 scores, bootstrap otherwise), verdict (the model's analysis verdict)
    models, tasks, runs, warnings, skipped_tasks, missing, analysis: what the manifests (and analyses) say
"""
import dataclasses
import json
import math
from pathlib import Path

import pandas as pd

from posbench.harness.evaluation import stats
from posbench.harness.evaluation.results import NOT_LENGTH_CONTROLLED, SUMMARY_COLUMNS, RunDir

REQUIRED_COLUMNS = ("model", "task", "length", "score", "n")
KEYS = ["run", "model", "scheme", "scheme_params", "task", "groups", "variant_of", "metric", "length"]


class ReportError(ValueError):
    """Bad report input (a missing run, a malformed results file, overlapping runs); the message names the file."""


def length_key(length: str):
    return (1, 0) if not str(length).isdigit() else (0, int(length))


def length_name(length) -> str:
    """'4096' -> '4K', 'native' -> 'native'."""
    n = str(length)
    return n if not n.isdigit() or int(n) % 1024 else f"{int(n) // 1024}K"


def format_params(params) -> str:
    return ", ".join(f"{k}={v}" for k, v in (params or {}).items())


def needle_depths(record) -> list:
    """The needle depths (% of the context) of one sample record; [] when it is not a needle sample. RULER's needle
    tasks write `needles` (dicts with key and depth) and `queries`: only needles asked about count (multikey's
    distractors do not). A bare `depth` or `depths` (a user's own generator) is read too."""
    meta = record.get("metadata") or {}
    if isinstance(meta.get("depth"), (int, float)):
        return [float(meta["depth"])]
    if isinstance(meta.get("depths"), (list, tuple)):
        return [float(d) for d in meta["depths"] if isinstance(d, (int, float))]
    needles = [n for n in meta.get("needles") or [] if isinstance(n, dict) and isinstance(n.get("depth"), (int, float))]
    queried = set(meta.get("queries") or [])
    return [float(n["depth"]) for n in needles if not queried or n.get("key") in queried]


def read_sample_records(path) -> list:
    """A sample log's finished records, read-only (a trailing line without its newline is a write in progress)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n")[:-1], start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ReportError(f"{path} line {i}: not valid JSON: {err}") from None
    return out


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not valid JSON: {err}") from None


def _read_summary(run: RunDir) -> list:
    """summary.csv's rows as dicts, validated; numbers as floats (NaN when empty)."""
    path = run.summary_path
    if not path.exists():
        raise ReportError(f"{path}: not found (has the run finished a cell yet?)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ReportError(f"{path}: empty file (no header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: unreadable CSV: {err}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(SUMMARY_COLUMNS)}")
    df.index += 2                                                   # file line numbers
    df = df.map(str.strip)
    for col in ("model", "task", "length"):
        for line in df.index[df[col] == ""][:1]:
            raise ReportError(f"{path} line {line}: empty {col!r}")
    for line in df.index[(df["length"] != NOT_LENGTH_CONTROLLED) & ~df["length"].str.isdigit()][:1]:
        raise ReportError(f"{path} line {line}: length must be a number of tokens or {NOT_LENGTH_CONTROLLED!r}, "
                          f"got {df.at[line, 'length']!r}")
    for col in [c for c in ("score", "ci_low", "ci_high", "n", "skipped") if c in df]:
        text = df[col].where(~df[col].str.lower().isin(["none", "nan", "null"]), "")
        values = pd.to_numeric(text, errors="coerce")
        for kind, bad in (("not a finite number", (text != "") & ~values.abs().lt(math.inf)),
                          ("not a whole number", (values % 1 != 0) & values.notna() & (col in ("n", "skipped")))):
            for line in df.index[bad][:1]:
                raise ReportError(f"{path} line {line}, column {col!r}: {kind}: {df.at[line, col]!r}")
        df[col] = values
    for line in df.index[df.duplicated(["model", "task", "length"])][:1]:
        raise ReportError(f"{path} line {line}: duplicate row for model {df.at[line, 'model']}, task "
                          f"{df.at[line, 'task']}, length {df.at[line, 'length']}")
    return df.reset_index(drop=True).to_dict("records")


def _model_infos(manifest, rows) -> dict:
    """{label: manifest model entry + per-length scheme params}, models only the summary names included."""
    config = {m.get("label"): m for m in (manifest.get("config") or {}).get("models") or [] if isinstance(m, dict)}
    infos = {str(m["label"]): dict(m) for m in manifest.get("models") or [] if isinstance(m, dict) and m.get("label")}
    for row in rows:
        info = infos.setdefault(row["model"], {"label": row["model"]})
        info["scheme"] = info.get("scheme") or row.get("scheme") or "?"
    for label, info in infos.items():
        # the manifest has the effective params of the first length loaded; the sweep's per-length overrides go on top
        by_length = {str(k): v for k, v in (config.get(label, {}).get("scheme_params_by_length") or {}).items()}
        overridden = {k for v in by_length.values() for k in v}
        base = {k: v for k, v in (info.get("scheme_params") or {}).items() if k not in overridden}
        lengths = {str(x) for x in manifest.get("lengths") or []} | {r["length"] for r in rows if r["model"] == label}
        info["params_at"] = {x: format_params({**base, **by_length.get(x, {})}) for x in lengths}
    return infos


@dataclasses.dataclass
class Results:
    """Several runs merged. `baseline` is the model differences are against (default: the first rope model)."""
    samples: pd.DataFrame
    cells: pd.DataFrame
    models: pd.DataFrame
    tasks: pd.DataFrame
    runs: pd.DataFrame
    warnings: pd.DataFrame
    skipped_tasks: pd.DataFrame
    missing: pd.DataFrame
    analysis: pd.DataFrame
    manifests: dict
    baseline: str

    @property
    def lengths(self) -> list:
        return sorted(self.cells["length"].unique(), key=length_key)

    def paired(self, model, baseline=None, length=None, tasks=None) -> dict:
        """mean(model) - mean(baseline) over the samples both scored (same task, length, index and prompt), as the
        unweighted mean over tasks; with its 95% interval, the number of pairs and the interval's method."""
        s = self.samples.dropna(subset=["score"])
        if length is not None:
            s = s[s["length"] == str(length)]
        if tasks is not None:
            s = s[s["task"].isin(list(tasks))]
        keys = ["task", "length", "index", "prompt_hash"]
        joined = s[s["model"] == model].merge(s[s["model"] == (baseline or self.baseline)], on=keys)
        result = stats.paired_difference([(g["score_x"] / 100, g["score_y"] / 100) for _, g in joined.groupby(
            ["task", "length"], sort=False)], seed=next(iter(self.runs["seed"].dropna()), 0))
        return {k: float(v) * 100 if k in ("diff", "low", "high") else v for k, v in result.items()}


def _load_one(path):
    run = RunDir(path)
    if not run.root.is_dir():
        raise ReportError(f"{run.root}: no such run directory")
    manifest = _read_json(run.manifest_path) if run.manifest_path.exists() else {}
    if not isinstance(manifest, dict):
        raise ReportError(f"{run.manifest_path}: expected a JSON object, got {type(manifest).__name__}")
    run_id = str(manifest.get("run_id") or run.root.resolve().name)
    rows = _read_summary(run)
    infos = _model_infos(manifest, rows)
    tasks = {t.get("name"): t for t in manifest.get("tasks") or [] if isinstance(t, dict)}
    cells, samples = [], []
    for row in rows:
        task, info = tasks.get(row["task"], {}), infos[row["model"]]
        groups = row["groups"].split(";") if "groups" in row else task.get("groups") or ()
        keys = {"run": run_id, "model": row["model"], "scheme": info["scheme"],
                "scheme_params": info["params_at"].get(row["length"], ""), "task": row["task"],
                "groups": tuple(g for g in groups if g),
                "variant_of": row.get("variant_of") or task.get("variant_of") or "",
                "metric": row.get("metric") or task.get("primary_metric") or "?", "length": row["length"]}
        records = read_sample_records(run.sample_log(row["model"], row["task"], row["length"]).path)
        scores = []
        for rec in records:
            raw = (rec.get("scores") or {}).get(keys["metric"])
            score = math.nan if rec.get("skip_reason") or raw is None else 100.0 * float(raw)
            scores += [] if math.isnan(score) else [score]
            samples.append({**keys, "index": rec.get("index"), "prompt_hash": rec.get("prompt_hash"), "score": score,
                            "prediction": rec.get("prediction"), "skip_reason": rec.get("skip_reason"),
                            "depths": needle_depths(rec)})
        cell = {**keys, **{k: row.get(k, math.nan) for k in ("score", "ci_low", "ci_high", "n", "skipped")},
                "interval": "bootstrap"}
        if scores and len(scores) == row["n"]:        # the samples behind the summary row: small-n-safe intervals
            ci = stats.mean_interval([x / 100 for x in scores], seed=manifest.get("seed") or 0)
            cell.update(ci_low=100 * ci["low"], ci_high=100 * ci["high"], interval=ci["method"])
        cells.append(cell)
    return run, run_id, manifest, infos, pd.DataFrame(cells), pd.DataFrame(samples, columns=KEYS + [
        "index", "prompt_hash", "score", "prediction", "skip_reason", "depths"])


def _read_analysis(root: Path) -> list:
    """RUN_DIR/analysis/<model>/analysis.json (from `eval.py analyze`): verdict and position range per length."""
    out = []
    for path in sorted(root.glob("analysis/*/analysis.json")):
        a = _read_json(path)
        if not isinstance(a, dict) or not a.get("model"):
            raise ReportError(f"{path}: expected a JSON object with a 'model' field")
        ranges = a.get("position_range") or {}
        for length in a.get("lengths") or list(ranges) or [None]:
            out.append({"model": str(a["model"]), "scheme": a.get("scheme"), "verdict": a.get("verdict"),
                        "length": None if length is None else str(length), "samples": a.get("samples"),
                        "position_range": ranges.get(str(length), math.nan)})
    return out


def load(run_dirs, baseline=None) -> Results:
    """Load and merge run directories (they must not overlap: one model x task x length comes from one run)."""
    if not run_dirs:
        raise ReportError("no run directories given")
    parts = [_load_one(d) for d in run_dirs]
    cells = pd.concat([p[4] for p in parts], ignore_index=True)
    samples = pd.concat([p[5] for p in parts if len(p[5])] or [parts[0][5]], ignore_index=True)
    if cells.empty:
        raise ReportError(f"{', '.join(str(p[0].summary_path) for p in parts)}: no result rows yet")
    for (model, task, length), g in cells[cells.duplicated(["model", "task", "length"], keep=False)].groupby(
            ["model", "task", "length"], sort=False):
        root = next(p[0].root for p in parts if p[1] == g["run"].iloc[1])
        raise ReportError(f"{root}: model {model!r}, task {task}, length {length} is also in run {g['run'].iloc[0]!r}; "
                          "runs merged into one report must not overlap")
    cells[["n", "skipped"]] = cells[["n", "skipped"]].fillna(0).astype(int)
    models, analysis = {}, []
    for run, run_id, _, infos, _, _ in parts:
        for label, info in infos.items():
            m = models.setdefault(label, {"model": label, "scheme": info["scheme"], "path": info.get("path") or "",
                                          "scheme_params": format_params(info.get("scheme_params")),
                                          "params_by_length": {}, "layer_schemes": info.get("layer_schemes") or [],
                                          "runs": []})
            m["scheme"] = info["scheme"] if m["scheme"] == "?" else m["scheme"]
            if info["scheme"] not in ("?", m["scheme"]):
                raise ReportError(f"{run.root}: model {label!r} has scheme {info['scheme']} here but {m['scheme']} "
                                  f"in run {m['runs'][0]!r}; give different models different labels")
            m["params_by_length"].update(info["params_at"])
            m["runs"].append(run_id)
        analysis += _read_analysis(run.root)
    analysis = pd.DataFrame(analysis, columns=["model", "scheme", "verdict", "length", "samples", "position_range"])
    verdicts = analysis.drop_duplicates("model").set_index("model")["verdict"]
    models = pd.DataFrame(list(models.values()))
    models["verdict"] = models["model"].map(verdicts)
    cells["verdict"] = cells["model"].map(verdicts)
    if baseline is None:
        rope = models.loc[models["scheme"] == "rope", "model"]
        baseline = rope.iloc[0] if len(rope) else models["model"].iloc[0]
    elif baseline not in set(models["model"]):
        raise ReportError(f"--baseline {baseline!r} is not a model of these runs; models: "
                          f"{', '.join(models['model'])}")
    return Results(samples=samples, cells=cells, models=models, tasks=_tasks(parts, cells),
                   runs=pd.DataFrame([_run_row(run, run_id, m, c) for run, run_id, m, _, c, _ in parts]),
                   warnings=pd.DataFrame([(run_id, str(w)) for _, run_id, m, *_ in parts for w in m.get("warnings")
                                          or []], columns=["run", "warning"]),
                   skipped_tasks=pd.DataFrame([(p[1], str(x.get("task")), str(x.get("reason") or "")) for p in parts
                                               for x in p[2].get("skipped_tasks") or [] if isinstance(x, dict)],
                                              columns=["run", "task", "reason"]),
                   missing=pd.DataFrame(_missing(parts, cells), columns=["run", "model", "task", "length"]),
                   analysis=analysis, manifests={p[1]: p[2] for p in parts}, baseline=baseline)


def _tasks(parts, cells) -> pd.DataFrame:
    declared = {t.get("name"): t for p in parts for t in p[2].get("tasks") or [] if isinstance(t, dict)}
    order = list(declared) + list(cells["task"])
    rows = []
    for name, g in sorted(cells.groupby("task"), key=lambda kv: order.index(kv[0])):
        metrics = g["metric"].unique()
        if len(metrics) > 1:
            raise ReportError(f"task {name}: metrics {', '.join(metrics)} in different runs; scores on different "
                              "metrics cannot share a table")
        config = declared.get(name, {}).get("config") or {}
        rows.append({"task": name, "groups": tuple(dict.fromkeys(x for gs in g["groups"] for x in gs)),
                     "metric": metrics[0], "variant_of": g["variant_of"].iloc[0],
                     "sampling": declared.get(name, {}).get("sampling") or config.get("sampling"),
                     "lengths": sorted(g["length"].unique(), key=length_key)})
    return pd.DataFrame(rows)


def _run_row(run, run_id, m, cells) -> dict:
    device = m.get("device")
    if isinstance(device, dict):
        device = device.get("name") or device.get("gpu") or device.get("device") or device.get("type")
    return {"run": run_id, "directory": str(run.root), "git_commit": str(m.get("git_commit") or "")[:12],
            "device": device, "started": m.get("started"), "finished": m.get("finished"), "seed": m.get("seed"),
            "samples": m.get("samples"), "models": list(dict.fromkeys(cells["model"])), "cells": len(cells),
            "versions": format_params(m.get("versions"))}


def _missing(parts, cells) -> list:
    """(run, model, task, length) that a manifest declares but no summary row has."""
    have = set(zip(cells["model"], cells["task"], cells["length"]))
    out = []
    for _, run_id, m, *_ in parts:
        models = [x.get("label") for x in m.get("models") or [] if isinstance(x, dict)]
        for t in m.get("tasks") or []:
            if isinstance(t, dict) and t.get("name"):
                lengths = [str(x) for x in m.get("lengths") or []] if t.get("length_controlled", True) else [
                    NOT_LENGTH_CONTROLLED]
                out += [(run_id, model, t["name"], x) for model in models for x in lengths
                        if (model, t["name"], x) not in have]
    return out
