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
    beyond_max_positions: refuse           # a length past the model's positions x its scaling factor: refuse,
                                           # or extrapolate (run it, with a warning recorded in the manifest)
    include_paths: []                      # extra task folders
    data_root: null                        # default $POSBENCH_DATA, else ~/.local/share/posbench/data
    data: {}                               # NAME: PATH for ${NAME} in task files
    sampling: null                         # RULER tasks: official (NVIDIA/RULER's samples) | fill; null = each task's
    analyze:                               # optional: `eval.py analyze` on every model after the sweep, into
      tasks: [niah_single_1]               #   RUN_DIR/analysis/<label>/ (tasks default: the sweep's generative
      samples: 5                           #   length-controlled ones; lengths: the sweep's; samples: 5)
      lengths: [4096]                      #   `analyze: true` takes every default
"""
import dataclasses
import re
from pathlib import Path
from typing import Any, Literal

from posbench.config import ConfigError, build, read_yaml, spec
from posbench.harness.errors import SweepError
from posbench.harness.evaluation.results import safe_name

# The longest context a run may ask for (2^20 tokens): building one prompt is linear in its length, and nothing
# posbench evaluates comes near this, so a typo such as `--lengths 10000000` is refused instead of running for minutes.
MAX_LENGTH = 1 << 20

_LENGTH = re.compile(r"(\d+(?:\.\d+)?)(k?)")


def parse_length(value, where="lengths") -> int:
    """4096, "4096", "4k", "4K", "1.5k" -> a whole number of tokens in 1..MAX_LENGTH."""
    match = _LENGTH.fullmatch(str(value).strip().lower()) if not isinstance(value, bool) else None
    tokens = float(match.group(1)) * (1024 if match.group(2) else 1) if match else None
    if tokens is None or tokens != int(tokens):
        raise SweepError(f"{where}: {value!r} is not a length (use 4096 or 4k)")
    if not 0 < tokens <= MAX_LENGTH:
        raise SweepError(f"{where}: length {value!r} must be between 1 and {MAX_LENGTH} tokens")
    return int(tokens)


def parse_lengths(value, where="lengths") -> list:
    """"4k,8k" or [4096, "8k"] -> [4096, 8192]; empty lists and repeated lengths (1k,1024) are refused."""
    if not isinstance(value, (str, list, tuple)):
        raise SweepError(f"{where}: need a list of lengths like [4096, 8k] or '4k,8k', got {value!r}")
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [parse_length(v, where) for v in items if str(v).strip()]
    if not out:
        raise SweepError(f"{where}: need positive lengths, got {value!r}")
    repeated = sorted({x for x in out if out.count(x) > 1})
    if repeated:
        raise SweepError(f"{where}: length {repeated[0]} is given twice in {value!r}")
    return out


def _lengths(value):
    try:
        return parse_lengths(value, "lengths")
    except SweepError as err:
        raise ConfigError(str(err).removeprefix("lengths: ")) from None


def _task_names(value):
    """A list of names, or one comma-separated string ("ruler_niah,hybridqa")."""
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and not value:
        raise ConfigError("must name at least one task or group")
    return value


def _by_length(value):
    if not isinstance(value, dict):
        return value   # the type check names it
    try:
        return {parse_length(k, "a length key"): v for k, v in value.items()}
    except SweepError as err:
        raise ConfigError(str(err)) from None


def _not_empty(value):
    if isinstance(value, str) and not value.strip():
        raise ConfigError("must not be empty")
    return value


@dataclasses.dataclass
class ModelEntry:
    label: str = spec(parse=_not_empty)
    path: str = spec(parse=_not_empty)
    scheme: str | None = None
    scheme_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    scheme_params_by_length: dict[int, dict[str, Any]] = spec(default_factory=dict, parse=_by_length)

    def scheme_for(self, length):
        """(name or None for auto-detect, params) at a given length."""
        params = dict(self.scheme_params)
        params.update(self.scheme_params_by_length.get(length, {}))
        return self.scheme, params


@dataclasses.dataclass
class Sweep:
    models: list[ModelEntry]
    tasks: list[str] = spec(parse=_task_names)
    lengths: list[int] = spec(parse=_lengths)
    samples: int | None = spec(None, min=1)
    seed: int = spec(42, min=0)
    batch_size: int | Literal["auto"] = spec("auto", min=1, parse=lambda v: int(v) if str(v).isdigit() else v)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    beyond_max_positions: Literal["refuse", "extrapolate"] = "refuse"
    include_paths: list[str] = dataclasses.field(default_factory=list)
    data_root: str | None = None
    data: dict[str, str] = dataclasses.field(default_factory=dict)
    sampling: Literal["official", "fill"] | None = None   # RULER tasks; None = each task's own (sampling_mode)
    name: str = ""
    source: str = spec("", internal=True)
    analyze: Any = None   # None: no analysis; else {tasks, lengths, samples} (checked by parse_analyze)

    def check(self):
        if not self.models:
            raise ConfigError("key 'models' must list at least one model")
        _check_labels(self.models)

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def _check_labels(models):
    """Every model label is unique, also as a folder name (samples/<label>/): a second model with the label of the
    first would be skipped as finished and reported with the first one's scores."""
    seen = {}
    for m in models:
        key = safe_name(m.label)
        if key in seen:
            other = seen[key]
            same = "the same label" if other.label == m.label else f"labels that share a folder ({safe_name(m.label)})"
            raise ConfigError(f"models {other.label!r} ({other.path}) and {m.label!r} ({m.path}) have {same}; "
                              "give each model a unique label (label: in a sweep file, DIR@LABEL on the command line)")
        seen[key] = m


def parse_model_spec(spec_text: str) -> dict:
    """`--model DIR[:SCHEME[,key=value...]][@LABEL]` -> the mapping a sweep file's models entry holds.

    A DIR that exists is taken whole, so folders whose names contain ':' or '@' work; otherwise the scheme is after
    the last ':' (scheme specs never contain one)."""
    from posbench.position_schemes import parse_scheme_spec

    label, rest = None, spec_text
    if not Path(spec_text).exists() and "@" in spec_text:
        rest, label = spec_text.rsplit("@", 1)
    path, scheme = rest, ""
    if not Path(rest).exists() and ":" in rest:
        path, _, scheme = rest.rpartition(":")
    name, params = parse_scheme_spec(scheme) if scheme else (None, {})
    default_label = f"{Path(path).name}:{scheme}" if scheme else Path(path).name
    return {"label": label or default_label, "path": path, "scheme": name, "scheme_params": params}


def load_sweep(path) -> Sweep:
    raw = read_yaml(path, SweepError)
    return parse_sweep(raw, str(path))


def parse_sweep(raw, where: str, flags: dict = None) -> Sweep:
    """A Sweep from a sweep file's mapping (or the mapping the command-line flags make, with `flags` naming them)."""
    sweep = build(Sweep, raw, where, SweepError, flags=flags)
    sweep.source = where
    sweep.analyze = parse_analyze(sweep.analyze, where)
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
