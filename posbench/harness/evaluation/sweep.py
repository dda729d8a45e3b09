"""Sweep files: which models (and schemes) run which tasks at which lengths. Validated completely before any
compute starts, so a typo fails in a second, not after an hour of generation.

    name: paper_ruler                      # optional, for the report
    models:
      - label: rope                        # row name in every table
        path: /models/olmo2-1b-rope        # a local Hugging Face folder
        scheme: rope                       # optional: force a scheme (default: detected from the checkpoint)
        scheme_params: {}                  # optional: e.g. {pattern: RRRN} for hybrid
        scheme_params_by_length:           # optional: per-length overrides, e.g. YaRN at 8K/16K
          8192: {scaling: yarn, factor: 2, original_max_position_embeddings: 4096}
    tasks: [ruler]                         # task or group names
    lengths: [4096, 8192, 16384]           # "4k" style is accepted too
    samples: 100                           # per task and length
    seed: 42
    batch_size: auto                       # or an int
    device: auto                           # auto | cpu | cuda
    dtype: auto                            # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16
    beyond_max_positions: warn             # a length past the model's max positions: warn (and record) | refuse
    include_paths: []                      # extra task folders
    data_root: null                        # default ../shared/data
    data: {}                               # NAME: PATH for ${NAME} in task files
    analyze:                               # optional: `eval.py analyze` on every model after the sweep, into
      tasks: [niah_single_1]               #   RUN_DIR/analysis/<label>/ (tasks default: the sweep's generative
      samples: 5                           #   length-controlled ones; lengths: the sweep's; samples: 5)
      lengths: [4096]                      #   `analyze: true` takes every default
"""
import dataclasses
from pathlib import Path

import yaml


class SweepError(ValueError):
    """A sweep file or run option is wrong; the message names the file, key and value."""


@dataclasses.dataclass
class ModelEntry:
    label: str
    path: str
    scheme: str = None
    scheme_params: dict = dataclasses.field(default_factory=dict)
    scheme_params_by_length: dict = dataclasses.field(default_factory=dict)

    def scheme_for(self, length):
        """(name or None for auto-detect, params) at a given length."""
        params = dict(self.scheme_params)
        params.update(self.scheme_params_by_length.get(length, {}))
        return self.scheme, params


@dataclasses.dataclass
class Sweep:
    models: list
    tasks: list
    lengths: list
    samples: int = None
    seed: int = 42
    batch_size: object = "auto"
    device: str = "auto"
    dtype: str = "auto"
    beyond_max_positions: str = "warn"
    include_paths: list = dataclasses.field(default_factory=list)
    data_root: str = None
    data: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    source: str = ""
    analyze: dict = None                   # None: no analysis; else {tasks, lengths, samples} (see parse_analyze)

    def describe(self) -> dict:
        return dataclasses.asdict(self)


_MODEL_KEYS = {f.name for f in dataclasses.fields(ModelEntry)}
_SWEEP_KEYS = {f.name for f in dataclasses.fields(Sweep)} - {"source"}
_CHOICES = {"device": ("auto", "cpu", "cuda"), "dtype": ("auto", "float32", "bfloat16"),
            "beyond_max_positions": ("warn", "refuse")}


def parse_length(value, where="lengths") -> int:
    """4096, "4096", "4k", "4K" -> 4096."""
    text = str(value).strip().lower()
    try:
        if text.endswith("k"):
            return int(float(text[:-1]) * 1024)
        return int(text)
    except ValueError:
        raise SweepError(f"{where}: {value!r} is not a length (use 4096 or 4k)") from None


def parse_lengths(value, where="lengths") -> list:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [parse_length(v, where) for v in items if str(v).strip()]
    if not out or any(x <= 0 for x in out):
        raise SweepError(f"{where}: need positive lengths, got {value!r}")
    return out


def parse_model_spec(spec: str) -> ModelEntry:
    """`--model DIR[:SCHEME[,key=value...]][@LABEL]` on the command line."""
    from posbench.position_schemes import parse_scheme_spec

    label = None
    if "@" in spec:
        spec, label = spec.rsplit("@", 1)
    path, _, scheme = spec.partition(":")
    name, params = parse_scheme_spec(scheme) if scheme else (None, {})
    return ModelEntry(label=label or (f"{Path(path).name}:{scheme}" if scheme else Path(path).name),
                      path=path, scheme=name, scheme_params=params)


def load_sweep(path) -> Sweep:
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SweepError(f"{path}: not valid YAML: {err}") from None
    return parse_sweep(raw, str(path))


def parse_sweep(raw, where: str) -> Sweep:
    if not isinstance(raw, dict):
        raise SweepError(f"{where}: a sweep file must be a mapping of keys")
    for key in raw:
        if key not in _SWEEP_KEYS:
            raise SweepError(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(_SWEEP_KEYS))}")
    for key in ("models", "tasks", "lengths"):
        if key not in raw:
            raise SweepError(f"{where}: missing required key {key!r}")
    if not isinstance(raw["models"], list) or not raw["models"]:
        raise SweepError(f"{where}: key 'models' must be a non-empty list")
    models = []
    for i, m in enumerate(raw["models"]):
        at = f"{where}: models[{i}]"
        if not isinstance(m, dict):
            raise SweepError(f"{at} must be a mapping with label and path")
        for key in m:
            if key not in _MODEL_KEYS:
                raise SweepError(f"{at}: unknown key {key!r}; allowed: {', '.join(sorted(_MODEL_KEYS))}")
        for key in ("label", "path"):
            if not isinstance(m.get(key), str) or not m[key]:
                raise SweepError(f"{at}: missing or empty key {key!r}")
        for key in ("scheme_params", "scheme_params_by_length"):
            if not isinstance(m.get(key, {}), dict):
                raise SweepError(f"{at}: key {key!r} must be a mapping")
        by_length = {parse_length(k, f"{at}.scheme_params_by_length"): v
                     for k, v in m.get("scheme_params_by_length", {}).items()}
        models.append(ModelEntry(label=m["label"], path=m["path"], scheme=m.get("scheme"),
                                 scheme_params=m.get("scheme_params", {}), scheme_params_by_length=by_length))
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise SweepError(f"{where}: model labels must be unique, got {labels}")
    tasks = raw["tasks"]
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise SweepError(f"{where}: key 'tasks' must be a non-empty list of task or group names")
    sweep = Sweep(models=models, tasks=tasks, lengths=parse_lengths(raw["lengths"], f"{where}: lengths"),
                  source=where, **{k: raw[k] for k in _SWEEP_KEYS - {"models", "tasks", "lengths"} if k in raw})
    for key, allowed in _CHOICES.items():
        if getattr(sweep, key) not in allowed:
            raise SweepError(f"{where}: key {key!r} must be one of {', '.join(allowed)}, got {getattr(sweep, key)!r}")
    if sweep.samples is not None and (not isinstance(sweep.samples, int) or isinstance(sweep.samples, bool)
                                      or sweep.samples <= 0):
        raise SweepError(f"{where}: key 'samples' must be a positive int, got {sweep.samples!r}")
    if not (sweep.batch_size == "auto" or (isinstance(sweep.batch_size, int) and sweep.batch_size > 0)):
        raise SweepError(f"{where}: key 'batch_size' must be 'auto' or a positive int, got {sweep.batch_size!r}")
    if not isinstance(sweep.seed, int):
        raise SweepError(f"{where}: key 'seed' must be an int, got {sweep.seed!r}")
    sweep.analyze = parse_analyze(raw.get("analyze"), where)
    return sweep


_ANALYZE_KEYS = ("tasks", "lengths", "samples")


def parse_analyze(value, where: str):
    """The sweep's `analyze` key: absent, false or null -> None; true -> {}; a mapping of tasks/lengths/samples."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{where}: key 'analyze' must be true or a mapping with {', '.join(_ANALYZE_KEYS)}, "
                         f"got {value!r}")
    for key in value:
        if key not in _ANALYZE_KEYS:
            raise SweepError(f"{where}: analyze: unknown key {key!r}; allowed: {', '.join(_ANALYZE_KEYS)}")
    out = {}
    if "tasks" in value:
        tasks = value["tasks"]
        tasks = [t.strip() for t in tasks.split(",") if t.strip()] if isinstance(tasks, str) else tasks
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
            raise SweepError(f"{where}: analyze.tasks must be a non-empty list of task names, got {value['tasks']!r}")
        out["tasks"] = tasks
    if "lengths" in value:
        out["lengths"] = parse_lengths(value["lengths"], f"{where}: analyze.lengths")
    if "samples" in value:
        samples = value["samples"]
        if not isinstance(samples, int) or isinstance(samples, bool) or samples <= 0:
            raise SweepError(f"{where}: analyze.samples must be a positive int, got {samples!r}")
        out["samples"] = samples
    return out
