"""Run a sweep: every model x length x task cell, resumable, writing the results store
(posbench/harness/evaluation/results.py).

The order is model -> length -> task, so each checkpoint is loaded once and re-schemed per length only when its
scheme parameters change (e.g. YaRN factors per length). Samples are built once per (tokenizer, task, length) and
shared by every model with that tokenizer: every scheme sees the same prompts.
"""
import contextlib
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

from posbench.harness.errors import SweepError
from posbench.harness.evaluation import manifest as manifest_info
from posbench.harness.evaluation import stats
from posbench.harness.evaluation.data import data_paths
from posbench.harness.evaluation.results import RunDir, length_label
from posbench.harness.evaluation.sweep import Sweep
from posbench.harness.files import RunLock
from posbench.tasks import MissingData, TaskRegistry, build_samples, score_sample
from posbench.tasks.registry import METRICS
from posbench.tasks.schema import sampling_mode


@dataclasses.dataclass
class Cell:
    model: str
    task: object        # TaskSpec
    length: object      # int or None (not length-controlled)


def _config_fingerprint(sweep: Sweep) -> str:
    keys = dict(sweep.describe())
    keys.pop("batch_size", None)   # scheduling knobs may change between resumes
    keys.pop("device", None)
    keys.pop("source", None)
    keys.pop("sampling", None)     # checked per task against the manifest instead (open_run), old runs included
    keys.pop("analyze", None)      # analysis runs after the sweep and changes none of its samples
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan(sweep: Sweep):
    """Resolve tasks and cells, check every model folder and scheme: all before any compute."""
    from posbench.harness.core.checkpoint import inspect_model

    registry = TaskRegistry(include_paths=sweep.include_paths)
    specs = registry.resolve(sweep.tasks)
    if sweep.analyze and sweep.analyze.get("tasks"):
        registry.resolve(sweep.analyze["tasks"])   # an unknown analysis task fails now, not after the sweep
    warnings = []
    for entry in sweep.models:
        for length in sweep.lengths:
            name, params = entry.scheme_for(length)
            # Reads only headers: a missing folder, bad weights or a bad scheme fails here, before any compute.
            info = inspect_model(entry.path, (name, params) if name else None)
            if name is None and params:   # the checkpoint's own scheme with some parameters overridden
                info = inspect_model(entry.path, (info["scheme"]["name"], {**info["scheme"]["params"], **params}))
            max_pos = info["max_position_embeddings"]
            rope = info["rope_parameters"]
            factor = float(rope.get("factor", 1.0)) if rope.get("rope_type", "default") != "default" else 1.0
            if max_pos and length > max_pos * factor:
                msg = (f"model {entry.label}: length {length} is beyond its {max_pos} positions"
                       + (f" x scaling factor {factor:g}" if factor != 1 else " and no scaling is set"))
                if sweep.beyond_max_positions == "refuse":
                    raise SweepError(msg + "; to measure extrapolation on purpose, set beyond_max_positions: "
                                     "extrapolate (--beyond-max-positions extrapolate)")
                warnings.append(msg)
    cells = []
    for entry in sweep.models:
        for length in sweep.lengths:
            for spec in specs:
                if spec.length_controlled:
                    cells.append(Cell(entry.label, spec, length))
        for spec in specs:                               # native-length tasks run once, capped at the longest length
            if not spec.length_controlled:
                cells.append(Cell(entry.label, spec, None))
    return specs, cells, warnings


def new_manifest(sweep: Sweep, specs, warnings, device: str) -> dict:
    return {
        "run_id": f"{time.strftime('%Y%m%d-%H%M%S')}-{_config_fingerprint(sweep)}",
        "config_fingerprint": _config_fingerprint(sweep),
        **manifest_info.git_commit(),
        "versions": manifest_info.versions(),
        "device": manifest_info.device_info(device),
        "started": manifest_info.now(),
        "finished": None,
        "resumed": [],
        "seed": sweep.seed,
        "samples": sweep.samples,
        "lengths": sweep.lengths,
        "config": sweep.describe(),
        "models": [],
        "tasks": [{"name": s.name, "groups": list(s.groups), "primary_metric": s.primary_metric,
                   "variant_of": s.variant_of, "length_controlled": s.length_controlled,
                   "sampling": sampling_mode(s, sweep.sampling), "config": s.describe()}
                  for s in specs],
        "warnings": warnings,
        "skipped_tasks": [],
        "cells": {},
    }


def open_run(sweep: Sweep, out_dir, specs, warnings, device, fresh=False) -> tuple:
    run = RunDir(out_dir)
    old = run.read_manifest()
    if old and not fresh:
        if old.get("config_fingerprint") != _config_fingerprint(sweep):
            raise SweepError(f"{run.root} holds a run with a different configuration "
                             f"(its sweep: {old.get('config', {}).get('source') or 'command line'}); "
                             "choose another --out, or pass --fresh to start it again")
        for task in old.get("tasks", []):
            spec = next((s for s in specs if s.name == task["name"]), None)
            if spec is None or sampling_mode(spec) is None:
                continue
            before = task.get("sampling", "fill")      # runs written before sampling was recorded drew fill
            if before != sampling_mode(spec, sweep.sampling):
                raise SweepError(f"{run.root} holds task {spec.name} drawn with {before} sampling, this run would "
                                 f"draw {sampling_mode(spec, sweep.sampling)}; pass --sampling {before} to resume "
                                 f"it, or choose another --out, or pass --fresh to start it again")
            task["sampling"] = before
        old["resumed"].append({"at": manifest_info.now(), **manifest_info.git_commit(),
                               "device": manifest_info.device_info(device)})
        old["finished"] = None
        return run, old
    if old and fresh:
        import shutil
        shutil.rmtree(run.root / "samples", ignore_errors=True)
        run.summary_path.unlink(missing_ok=True)   # rebuilt cell by cell: no stale rows in between
    return run, new_manifest(sweep, specs, warnings, device)


class SampleCache:
    """Samples per (tokenizer, task, length), built once and shared by all models that use that tokenizer."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.paths = data_paths(sweep.data_root, [f"{k}={v}" for k, v in sweep.data.items()])
        self._cache = {}
        self._vocab_keys = {}

    def _tokenizer_key(self, tokenizer) -> str:
        """Tokenizers with the same vocabulary produce the same samples, whichever folder they came from."""
        if id(tokenizer) not in self._vocab_keys:
            vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
            self._vocab_keys[id(tokenizer)] = (tokenizer, hashlib.sha256(vocab.encode()).hexdigest())
        return self._vocab_keys[id(tokenizer)][1]

    def get(self, tokenizer, spec, length, indices=None):
        key = (self._tokenizer_key(tokenizer), spec.name, length)
        if indices is not None:   # a probe, not cached
            return build_samples(spec, tokenizer, length=length, seed=self.sweep.seed, data_paths=self.paths,
                                 indices=indices, sampling=self.sweep.sampling)
        if key not in self._cache:
            self._cache[key] = build_samples(spec, tokenizer, length=length, num_samples=self.sweep.samples,
                                             seed=self.sweep.seed, data_paths=self.paths,
                                             sampling=self.sweep.sampling)
        return self._cache[key]


def probe_samples(sweep: Sweep, specs, sample_cache: SampleCache) -> list:
    """Build sample 0 of every task at every length with each distinct tokenizer, so that a length too small for a
    task fails, and a task whose data is missing is reported as skipped, before any model runs.
    Returns [{task, reason}] for tasks to skip."""
    from posbench.harness.core.checkpoint import load_tokenizer

    skipped = {}
    tokenizers = {}
    for entry in sweep.models:
        tok = load_tokenizer(entry.path)
        if tok is None:
            raise SweepError(f"{entry.path}: the model folder has no tokenizer files "
                             "(tokenizer.json, tokenizer_config.json)")
        tokenizers.setdefault(sample_cache._tokenizer_key(tok), tok)
    for tok in tokenizers.values():
        for spec in specs:
            for length in (sweep.lengths if spec.length_controlled else [None]):
                if spec.name in skipped:
                    continue
                try:
                    sample_cache.get(tok, spec, length, indices=[0])
                except MissingData as err:
                    skipped[spec.name] = {"task": spec.name, "reason": str(err)}
    return list(skipped.values())


def run_cell(engine, run: RunDir, cell: Cell, samples, max_model_len, progress=True) -> dict:
    """Generate and score every unfinished sample of one cell; returns the cell's timing record."""
    from tqdm import tqdm

    spec = cell.task
    log = run.sample_log(cell.model, spec.name, cell.length)
    done = {}
    for rec in log.read():
        done[rec["index"]] = rec
    by_index = {s.index: s for s in samples}
    for idx, rec in done.items():
        if idx in by_index and rec["prompt_hash"] != by_index[idx].prompt_hash:
            raise SweepError(f"{log.path}: sample {idx} was generated from a different prompt "
                             "(task files, tokenizer or data changed); use a new --out or --fresh")
    todo = [s for s in samples if s.index not in done]
    start = time.perf_counter()
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), disable=not progress, file=sys.stderr,
               desc=f"{cell.model} | {spec.name} | {length_label(cell.length)}", unit="sample", leave=False,
               dynamic_ncols=True)
    runnable = []
    for s in todo:
        reason = s.skip_reason
        if reason is None and s.token_count + s.max_new_tokens > max_model_len:
            reason = (f"prompt of {s.token_count} tokens + {s.max_new_tokens} new tokens exceeds the model's "
                      f"{max_model_len} positions")
        if reason:
            log.append(_record(s, None, None, reason))
            bar.update(1)
        else:
            runnable.append(s)
    if spec.output_type == "multiple_choice":
        for s, lls in engine.score_choices(runnable):
            log.append(_record(s, lls, score_sample(spec, s, lls), None))
            bar.update(1)
    else:
        for s, gen in engine.generate_samples(runnable):
            log.append(_record(s, gen, score_sample(spec, s, gen.text), None))
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "computed": len(runnable),
            "samples_per_s": round(len(runnable) / seconds, 3) if runnable and seconds > 0 else None}


def _record(sample, result, scores, skip_reason) -> dict:
    rec = {"index": sample.index, "prompt_hash": sample.prompt_hash, "answers": sample.answers,
           "token_count": sample.token_count, "max_new_tokens": sample.max_new_tokens,
           "metadata": sample.metadata, "skip_reason": skip_reason, "scores": scores}
    if skip_reason is None and hasattr(result, "text"):
        rec.update(prediction=result.text, new_tokens=result.new_tokens,
                   timings={"prefill_s": result.prefill_s, "decode_s": result.decode_s,
                            "batch_size": result.batch_size})
    elif skip_reason is None:
        rec.update(prediction=result, new_tokens=0)
    return rec


def summarize(run: RunDir, manifest: dict, cells) -> list:
    """One row per model x task x length from the sample logs (the only source of truth)."""
    schemes = {m["label"]: m.get("scheme", "") for m in manifest["models"]}
    rows = []
    for cell in cells:
        spec = cell.task
        records = run.sample_log(cell.model, spec.name, cell.length).read()
        if not records:
            continue
        metric = spec.primary_metric
        values = [r["scores"][metric] for r in records if r.get("skip_reason") is None]
        scale = METRICS[metric].scale
        # the report's interval: Wilson for 0/1 scores (never a point at small n), a seeded bootstrap otherwise
        interval = stats.mean_interval(values, seed=manifest["seed"])
        lo, hi = (None, None) if not values else (round(scale * interval["low"], 2), round(scale * interval["high"], 2))
        rows.append({"model": cell.model, "scheme": schemes.get(cell.model, ""), "task": spec.name,
                     "groups": ";".join(spec.groups), "length": length_label(cell.length), "metric": metric,
                     "score": round(scale * sum(values) / len(values), 2) if values else "",
                     "ci_low": "" if lo is None else lo, "ci_high": "" if hi is None else hi,
                     "n": len(values), "skipped": len(records) - len(values), "variant_of": spec.variant_of})
    return rows


def cell_line(row: dict, timing: dict) -> str:
    rate = timing.get("samples_per_s")
    ci = f"[{row['ci_low']}, {row['ci_high']}]" if row["ci_low"] != "" else ""
    return (f"{row['model']} | {row['task']} | {row['length']} | {row['metric']} {row['score']} {ci} "
            f"n={row['n']}" + (f" skipped={row['skipped']}" if row["skipped"] else "")
            + (f" | {rate:.2f} samples/s" if rate else ""))


def run_sweep(sweep: Sweep, out_dir, fresh=False, progress=True, echo=print, shard=None, after=None) -> Path:
    """Run (or resume) a sweep into out_dir; returns the run directory. Everything is checked before the run
    directory is touched; then the directory is locked until the run returns or dies. shard: this process's share of
    the cells when several ranks run the sweep (posbench/harness/evaluation/shards.py; rank 0 holds the lock and
    writes the manifest and summary); None runs them all. after(run_dir, specs, device): called on rank 0 once the
    run has finished, still under the lock (the sweep's `analyze` step)."""
    from posbench.harness.evaluation import shards
    from posbench.harness.evaluation.engine import resolve_device

    shard = shard or shards.Shard()
    specs, cells, warnings = plan(sweep)
    for w in warnings:
        echo(f"warning: {w}")
    device, dtype = resolve_device(sweep.device, sweep.dtype)
    sample_cache = SampleCache(sweep)
    skipped_tasks = {t["task"]: t for t in probe_samples(sweep, specs, sample_cache)}
    for t in skipped_tasks.values():
        echo(f"skipping {t['task']}: {t['reason']}")
    with RunLock(out_dir, "run directory") if shard.rank == 0 else contextlib.nullcontext():
        if shard.rank == 0:   # one writer of the manifest; the others read it once it exists
            run, manifest = open_run(sweep, out_dir, specs, warnings, device, fresh=fresh)
            manifest["skipped_tasks"] = list(skipped_tasks.values())
            run.write_manifest(manifest)
        shard.barrier()
        if shard.rank != 0:
            run = RunDir(out_dir)
            manifest = run.read_manifest()
            manifest.update(device=manifest_info.device_info(device), cells={}, models=[])
        _run_cells(sweep, run, manifest, cells, skipped_tasks, sample_cache, device, dtype, progress, echo, shard)
        shard.barrier()   # every rank's logs and report are complete
        if shard.rank == 0:
            if shard.world > 1:
                shards.merge_reports(run.root, manifest, shard.world)
                order = [m.label for m in sweep.models]
                manifest["models"].sort(key=lambda m: order.index(m["label"]) if m["label"] in order else len(order))
            run.write_summary(summarize(run, manifest, cells))
            manifest["finished"] = manifest_info.now()
            run.write_manifest(manifest)
            if after is not None:
                after(run.root, specs, device)
        shard.barrier()
    shard.close()
    return run.root


def _run_cells(sweep, run, manifest, cells, skipped_tasks, sample_cache, device, dtype, progress, echo, shard):
    """This rank's cells in turn. On rank 0 summary.csv is rewritten (atomically) as each cell finishes, so `report`
    on a long run shows what is done; other ranks leave their cells' timings in their shard report."""
    from posbench.harness.evaluation import shards
    from posbench.harness.evaluation.engine import TorchEngine

    owned = {id(c) for i, c in enumerate(cells) if shard.owns(i)}
    engine, rows, mine = None, {}, []
    for entry in sweep.models:
        for length in sweep.lengths + [None]:
            model_cells = [c for c in cells if c.model == entry.label and c.length == length and id(c) in owned]
            if not model_cells:
                continue
            scheme = entry.scheme_for(length if length is not None else max(sweep.lengths))
            engine = TorchEngine.load(entry.path, scheme=scheme, device=device, dtype=dtype,
                                      batch_size=sweep.batch_size, reuse=engine)
            _record_model(manifest, entry, engine)
            for cell in model_cells:
                spec = cell.task
                if spec.name in skipped_tasks:
                    continue
                samples = sample_cache.get(engine.tokenizer, spec, cell.length)
                max_len = engine.max_length if cell.length is None else max(engine.max_length, cell.length)
                timing = run_cell(engine, run, cell, samples, max_len, progress=progress)
                key = f"{cell.model}/{spec.name}/{length_label(cell.length)}"
                manifest["cells"][key] = timing
                mine.append(key)
                for row in summarize(run, manifest, [cell]):
                    rows[id(cell)] = row
                if shard.rank == 0:
                    run.write_manifest(manifest)
                    run.write_summary([rows[id(c)] for c in cells if id(c) in rows])
                else:
                    shards.write_report(shard, run.root, manifest, mine)
                if id(cell) in rows:
                    echo(cell_line(rows[id(cell)], timing))


def _record_model(manifest: dict, entry, engine):
    info = {"label": entry.label, "path": str(entry.path), "scheme": engine.scheme_name,
            "scheme_params": engine.scheme_params, "layer_schemes": engine.layer_schemes,
            "dtype": engine.dtype_name, "max_length": engine.max_length}
    for m in manifest["models"]:
        if m["label"] == entry.label:
            m.setdefault("per_length", {})
            m["per_length"][str(engine.scheme_params)] = info
            return
    manifest["models"].append(info)
