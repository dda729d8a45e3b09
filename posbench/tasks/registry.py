"""Registries by name: sample sources (generators and loaders), metrics, text filters. (The task YAML files are
found and resolved by posbench/tasks/catalog.py's TaskRegistry.)

A generator builds one sample from a seeded RNG and a token budget; a loader reads records from a data file. Both are
plain functions registered with a decorator, so a YAML file can name them and pass keyword parameters, which are
checked against the function's signature before any sample is built.
"""
import importlib
import inspect
from pathlib import Path

from posbench.tasks.errors import TaskError

GENERATORS: dict = {}
OFFICIAL_SAMPLERS: dict = {}
LOADERS: dict = {}
METRICS: dict = {}
FILTERS: dict = {}

# Every subpackage of posbench/tasks/ (posbench/tasks/metrics, posbench/tasks/ruler, ...) registers its sources,
# metrics and filters when
# imported. They are imported lazily, once, the first time a registry is read.
_imported = False

BUILTIN_TASK_DIR = Path(__file__).resolve().parent


def _register(table: dict, kind: str, name: str, fn=None):
    def deco(f):
        if name in table and table[name] is not f:
            raise TaskError(f"two {kind}s registered as {name!r}: {table[name].__module__} and {f.__module__}")
        table[name] = f
        return f
    return deco(fn) if fn is not None else deco


def register_generator(name):
    """Register `fn(ctx: SampleContext, **params) -> SampleDraft` under `name`."""
    return _register(GENERATORS, "generator", name)


def register_official_sampler(name):
    """Register `fn(ctx: DatasetContext, **params) -> list[SampleDraft]` as generator `name`'s `official` sampling:
    the first ctx.num_samples samples, drawn from one stream in the order the benchmark's own script draws them.
    It takes the same YAML parameters as the generator."""
    return _register(OFFICIAL_SAMPLERS, "official sampler", name)


def register_loader(name):
    """Register `fn(ctx: LoaderContext, **params) -> list[SampleDraft]` (every record, in official order)."""
    return _register(LOADERS, "loader", name)


def register_metric(name, *, aggregate="mean", scale=100.0, higher_is_better=True):
    """Register a per-sample metric `fn(prediction, sample) -> float in [0, 1]`.

    `prediction` is the generated text for generation tasks and the list of choice log-likelihoods for multiple-choice
    tasks. Aggregates are the mean times `scale` (RULER and LongBench report 0-100).
    """
    def deco(f):
        f.aggregate, f.scale, f.higher_is_better = aggregate, scale, higher_is_better
        return _register(METRICS, "metric", name, f)
    return deco


def register_filter(name):
    """Register a text filter `fn(text) -> text` applied to predictions before metrics (YAML `postprocess`)."""
    return _register(FILTERS, "filter", name)


def ensure_imported():
    global _imported
    if not _imported:
        _imported = True
        for init in sorted(BUILTIN_TASK_DIR.glob("*/__init__.py")):
            importlib.import_module(f"posbench.tasks.{init.parent.name}")


def lookup(table: dict, kind: str, name: str, where: str):
    ensure_imported()
    if name not in table:
        known = ", ".join(sorted(table)) or "(none)"
        raise TaskError(f"{where}: unknown {kind} {name!r}; known {kind}s: {known}")
    return table[name]


def check_params(fn, params: dict, where: str, skip=("ctx",)):
    """Every YAML parameter must be a keyword the function accepts; required ones must be present."""
    sig = inspect.signature(fn)
    accepted = {n: p for n, p in sig.parameters.items() if n not in skip}
    for key in params:
        if key not in accepted:
            raise TaskError(f"{where}: unknown parameter {key!r} for {fn.__name__}; "
                            f"accepted: {', '.join(accepted) or '(none)'}")
    for n, p in accepted.items():
        if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD and n not in params:
            raise TaskError(f"{where}: missing parameter {n!r} for {fn.__name__}")
