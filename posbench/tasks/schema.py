"""The task schema: a YAML file becomes a `TaskSpec`; a spec plus (tokenizer, length, seed, index) becomes a `Sample`.

A task file looks like this (every key is checked; unknown keys, missing keys and wrong types are errors naming
the file and the key):

    task: niah_single_1                  # unique name
    groups: [ruler, ruler_niah]          # names usable wherever a task name is
    description: one line for `list tasks`
    source:                              # exactly one of generator / loader
      generator: ruler_niah              # a registered function; params are its keyword arguments
      params: {haystack: noise, ...}
    template: "A special magic ... {context} ..."   # str.format fields come from the source
    answer_prefix: " The special magic ..."         # appended to the prompt; the model continues after it
    max_new_tokens: 128                  # or {4096: 300, default: 250}
    stop: []                             # stop strings (generation ends at the first)
    metrics: [string_match_all]          # first one is the primary score
    num_samples: 500
    seed: 42
    context_lengths: [4096, 8192, 16384] # default lengths; null for tasks whose samples are not length-controlled
    sampling: official                   # `official` (the upstream script's own draws) or `fill`, for generators
                                         # that have an official sampler (RULER's); default fill

String parameters may name data folders as `${NAME}`: `${data}` is the data root (`--data-root`, default
$POSBENCH_DATA, else ~/.local/share/posbench/data), any other NAME is `--data NAME=PATH` or else `${data}/NAME`.
"""
import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any, Callable, Literal

from posbench.config import build, read_yaml, spec
from posbench.tasks import registry
from posbench.tasks.errors import TaskError

# How a generator task draws its samples. `fill`: each sample from its own seeded stream, filled to the token budget,
# the same content at every length (length curves). `official`: the whole dataset from one stream, exactly as the
# benchmark's own script draws and sizes it (RULER: byte-identical to NVIDIA/RULER's prepare.py).
SAMPLINGS = ("official", "fill")

@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    path: Path
    source_kind: str                  # "generator" or "loader"
    source_name: str
    source_params: dict
    template: str
    answer_prefix: str = ""
    groups: tuple = ()
    description: str = ""
    max_new_tokens: Any = 128          # int, or {length: int, "default": int}
    stop: tuple = ()
    metrics: tuple = ()
    postprocess: tuple = ()
    output_type: str = "generate_until"
    num_samples: int = 100
    seed: int = 42
    context_lengths: Any = None        # tuple of ints, or None when samples are not length-controlled
    truncation: str = "none"           # what to do with a loaded prompt over budget: skip it, or cut it
    selection: str = "first"           # loaders: the first N records, or N after a seeded shuffle
    score_with_prefix: bool = False    # score answer_prefix + prediction (the RePo authors' RULER variant)
    variant_of: str = ""               # the official task this one re-defines, for reports
    sampling: str = None               # "official" or "fill" (SAMPLINGS) where the generator has both; None = fill

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def length_controlled(self) -> bool:
        return self.context_lengths is not None

    def new_tokens(self, length) -> int:
        if isinstance(self.max_new_tokens, dict):
            return int(self.max_new_tokens.get(length, self.max_new_tokens["default"]))
        return int(self.max_new_tokens)

    def describe(self) -> dict:
        """JSON-able full configuration (for run manifests)."""
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


# ---- loading and validating YAML (posbench/config.py checks keys, types and ranges against TaskFile) ----------

@dataclasses.dataclass(kw_only=True)
class SourceSection:
    generator: str | None = None
    loader: str | None = None
    params: dict[str, Any] | None = None


@dataclasses.dataclass(kw_only=True)
class TaskFile:
    """A task file's keys as written (TaskSpec is what the rest of posbench uses)."""
    task: str
    groups: list[str] = dataclasses.field(default_factory=list)
    description: str = ""
    source: SourceSection
    template: str
    answer_prefix: str = ""
    max_new_tokens: int | dict[int | str, int] = spec(min=1)
    stop: list[str] = dataclasses.field(default_factory=list)
    metrics: list[str]
    postprocess: list[str] = dataclasses.field(default_factory=list)
    output_type: Literal["generate_until", "multiple_choice"] = "generate_until"
    num_samples: int = spec(100, min=1)
    seed: int = 42
    context_lengths: list[int] | None = spec(None, min=1)
    truncation: Literal["none", "middle", "left"] = "none"
    selection: Literal["first", "shuffle"] = "first"
    score_with_prefix: bool = False
    variant_of: str = ""
    sampling: Literal["official", "fill"] | None = None


def load_task_file(path) -> TaskSpec:
    path = Path(path)
    return parse_task(read_yaml(path, TaskError), path)


def parse_task(raw: dict, path) -> TaskSpec:
    path = Path(path)
    f = build(TaskFile, raw, str(path), TaskError)
    source = f.source
    kinds = [k for k in ("generator", "loader") if getattr(source, k) is not None]
    if len(kinds) != 1:
        raise TaskError(f"{path}: key 'source' needs exactly one of 'generator' or 'loader', got "
                        f"{sorted(raw['source'])}")
    params = source.params or {}
    kind = kinds[0]
    table = registry.GENERATORS if kind == "generator" else registry.LOADERS
    fn = registry.lookup(table, kind, getattr(source, kind), f"{path}: source.{kind}")
    registry.check_params(fn, params, f"{path}: source.params")
    if f.sampling is not None:
        name = getattr(source, kind)
        if kind != "generator" or name not in registry.OFFICIAL_SAMPLERS:
            raise TaskError(f"{path}: key 'sampling' needs a generator with an official sampler "
                            f"({', '.join(sorted(registry.OFFICIAL_SAMPLERS))}); {kind} {name!r} has one "
                            f"way to draw samples")
        registry.check_params(registry.OFFICIAL_SAMPLERS[name], params, f"{path}: source.params")

    for m in f.metrics:
        registry.lookup(registry.METRICS, "metric", m, f"{path}: metrics")
    for name in f.postprocess:
        registry.lookup(registry.FILTERS, "filter", name, f"{path}: postprocess")
    if not f.metrics:
        raise TaskError(f"{path}: key 'metrics' must name at least one metric")

    mnt = f.max_new_tokens
    if isinstance(mnt, dict) and ("default" not in mnt or not all(v > 0 for v in mnt.values())
                                  or not all(k == "default" or isinstance(k, int) for k in mnt)):
        raise TaskError(f"{path}: key 'max_new_tokens' as a mapping needs positive ints per length and a "
                        f"'default', got {mnt!r}")
    if f.context_lengths is not None and not f.context_lengths:
        raise TaskError(f"{path}: key 'context_lengths' must be a list of positive ints or null, got []")

    return TaskSpec(
        name=f.task, path=path, source_kind=kind, source_name=getattr(source, kind), source_params=params,
        template=f.template, answer_prefix=f.answer_prefix, groups=tuple(f.groups), description=f.description,
        max_new_tokens=mnt, stop=tuple(f.stop), metrics=tuple(f.metrics), postprocess=tuple(f.postprocess),
        output_type=f.output_type, num_samples=f.num_samples, seed=f.seed,
        context_lengths=tuple(f.context_lengths) if f.context_lengths is not None else None,
        truncation=f.truncation, selection=f.selection, score_with_prefix=f.score_with_prefix,
        variant_of=f.variant_of, sampling=f.sampling,
    )


# ---- samples ------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SampleDraft:
    """What a source returns: template fields, gold answers and metadata. The schema renders and measures it."""
    fields: dict
    answers: list
    metadata: dict = dataclasses.field(default_factory=dict)
    choices: list = None               # multiple choice: the continuations to score
    gold_index: int = None
    skip_reason: str = None            # a loader's record that cannot run (e.g. its table file is missing): counted
    token_count: int = None            # the rendered prompt's tokens, when the source already counted them


@dataclasses.dataclass
class Sample:
    """Exactly what a model sees and how it is scored. Serialised as one JSON line by `to_json`."""
    task: str
    index: int
    length: Any                        # target context length in tokens, or None
    seed: int
    prompt: str                        # the full text the model continues (answer prefix included)
    answer_prefix: str
    answers: list
    max_new_tokens: int
    stop: list
    token_count: int                   # prompt tokens, without special tokens
    metadata: dict
    choices: list = None
    gold_index: int = None
    skip_reason: str = None            # set when the sample cannot be run (e.g. over budget); counted, never scored 0

    @property
    def prompt_hash(self) -> str:
        return hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["prompt_hash"] = self.prompt_hash
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Sample":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass
class SampleContext:
    """Handed to a generator for one sample."""
    task: str
    index: int
    length: Any                         # target context length or None
    budget: Any                         # prompt tokens allowed (length - max_new_tokens) or None
    rng: random.Random                  # seeded from (seed, task, index): the same sample at every length
    count_tokens: Callable[[str], int]
    render: Callable[[dict], str]       # template fields -> full prompt
    seed: int = 42                      # the task's seed: what RULER seeds its dataset-wide fixed shuffles with


@dataclasses.dataclass
class DatasetContext:
    """Handed to an official sampler: the first `num_samples` samples of a dataset, drawn in order from one stream."""
    task: str
    length: Any
    budget: Any                         # prompt tokens allowed (length - max_new_tokens)
    seed: int
    num_samples: int
    count_tokens: Callable[[str], int]
    render: Callable[[dict], str]       # template fields -> full prompt (answer prefix included)
    answer_prefix: Callable[[dict], str]  # template fields -> the formatted answer prefix alone


@dataclasses.dataclass
class LoaderContext:
    task: str
    count_tokens: Callable[[str], int]


def sample_rng(seed: int, task: str, index: int) -> random.Random:
    """A generator private to one sample: the same (seed, task, index) always draws the same needles, keys and
    depths, whatever the length, the number of samples, or which other samples were built."""
    digest = hashlib.sha256(f"{seed}:{task}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def resolve_data_paths(value, data_paths: dict, where: str):
    """Replace ${NAME} in string parameters (recursively) by data folders."""
    if isinstance(value, dict):
        return {k: resolve_data_paths(v, data_paths, where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_data_paths(v, data_paths, where) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m):
        name = m.group(1)
        if name in data_paths:
            return str(data_paths[name])
        if "data" not in data_paths:
            raise TaskError(f"{where}: data folder ${{{name}}} is not set; pass --data {name}=PATH")
        return str(Path(data_paths["data"]) / name)
    return _PLACEHOLDER.sub(sub, value)


def render(spec: TaskSpec, fields: dict) -> tuple:
    """(full prompt, formatted answer prefix) for the given template fields."""
    try:
        prefix = spec.answer_prefix.format(**fields)
        return spec.template.format(**fields) + prefix, prefix
    except KeyError as err:
        raise TaskError(f"{spec.path}: template field {err.args[0]!r} is not provided by "
                        f"{spec.source_kind} {spec.source_name!r}") from None


def token_counter(tokenizer) -> Callable[[str], int]:
    """Prompt tokens as RULER counts them: no BOS or other special tokens."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def sampling_mode(spec: TaskSpec, override=None):
    """"official" or "fill" for a task whose generator has both (RULER's), from `override` (--sampling, a sweep's
    `sampling`), else the task's YAML, else fill. None for every other task: it has one way to draw samples."""
    if override is not None and override not in SAMPLINGS:
        raise TaskError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {override!r}")
    registry.ensure_imported()
    if spec.source_kind != "generator" or spec.source_name not in registry.OFFICIAL_SAMPLERS:
        return None
    return override or spec.sampling or "fill"


def build_samples(spec: TaskSpec, tokenizer, length=None, num_samples=None, seed=None, data_paths=None,
                  indices=None, sampling=None) -> list:
    """The samples of `spec` at context `length` (tokens), in index order. `sampling` overrides the task's
    where it has a choice (sampling_mode); official sampling draws samples 0..max(indices) to reach the ones asked for.

    Raises MissingData when a data file is absent (callers skip the task, naming it), TaskError for
    impossible requests (a length too small for the task).
    """
    seed = spec.seed if seed is None else seed
    n = spec.num_samples if num_samples is None else num_samples
    indices = list(range(n)) if indices is None else list(indices)
    where = f"{spec.path}: source.params"
    params = resolve_data_paths(spec.source_params, data_paths or {}, where)
    count = token_counter(tokenizer)
    if spec.length_controlled and length is None:
        raise TaskError(f"task {spec.name} is length-controlled: give a context length "
                        f"(its defaults: {', '.join(map(str, spec.context_lengths))})")
    new_tokens = spec.new_tokens(length)
    budget = None if length is None else length - new_tokens
    if budget is not None and budget <= 0:
        raise TaskError(f"task {spec.name}: length {length} leaves no room for a prompt after "
                        f"{new_tokens} new tokens")

    mode = sampling_mode(spec, sampling)
    if mode == "official":
        fn = registry.OFFICIAL_SAMPLERS[spec.source_name]
        registry.check_params(fn, params, where)
        ctx = DatasetContext(task=spec.name, length=length, budget=budget, seed=seed,
                             num_samples=max(indices) + 1 if indices else 0, count_tokens=count,
                             render=lambda fields: render(spec, fields)[0],
                             answer_prefix=lambda fields: render(spec, fields)[1])
        built = fn(ctx, **params) if indices else []
        drafts = [(i, built[i]) for i in indices]
    elif spec.source_kind == "generator":
        fn = registry.lookup(registry.GENERATORS, "generator", spec.source_name, where)
        drafts = []
        for i in indices:
            ctx = SampleContext(task=spec.name, index=i, length=length, budget=budget,
                                rng=sample_rng(seed, spec.name, i), count_tokens=count,
                                render=lambda fields: render(spec, fields)[0], seed=seed)
            drafts.append((i, fn(ctx, **params)))
    else:
        fn = registry.lookup(registry.LOADERS, "loader", spec.source_name, where)
        records = fn(LoaderContext(task=spec.name, count_tokens=count), **params)
        order = list(range(len(records)))
        if spec.selection == "shuffle":
            random.Random(seed).shuffle(order)
        drafts = [(i, records[order[i]]) for i in indices if i < len(order)]

    samples = []
    for i, draft in drafts:
        prompt, prefix = render(spec, draft.fields)
        tokens = count(prompt) if draft.token_count is None else draft.token_count
        skip, metadata = draft.skip_reason, draft.metadata
        if mode is not None:
            metadata = {"sampling": mode, **metadata}
        if skip is None and budget is not None and tokens > budget:
            # A generator may overshoot only on purpose, for a task that declares how to cut (the RePo authors'
            # RULER: instances sized as RULER sized them, then left-truncated to their shorter budget).
            if spec.source_kind == "generator" and spec.truncation == "none":
                raise TaskError(f"task {spec.name} sample {i}: generator {spec.source_name!r} produced "
                                f"{tokens} prompt tokens for a budget of {budget} (a generator bug)")
            if spec.truncation == "none":
                skip = f"prompt has {tokens} tokens, over the budget of {budget} at length {length}"
            else:
                prompt = truncate(tokenizer, prompt, budget, spec.truncation)
                metadata = {**metadata, "truncated_from_tokens": tokens}   # a copy: loaders may cache drafts
                tokens = count(prompt)
        samples.append(Sample(task=spec.name, index=i, length=length, seed=seed, prompt=prompt,
                              answer_prefix=prefix, answers=list(draft.answers), max_new_tokens=new_tokens,
                              stop=list(spec.stop), token_count=tokens, metadata=metadata,
                              choices=draft.choices, gold_index=draft.gold_index, skip_reason=skip))
    return samples


def truncate(tokenizer, prompt: str, budget: int, how: str) -> str:
    """Cut a prompt to `budget` tokens. `middle` keeps the first and last halves (LongBench's rule: the instruction
    and the question survive), `left` keeps the end (lm-eval and the RePo authors' rule)."""
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    keep = budget
    while len(ids) > budget:
        if how == "middle":
            head = keep // 2
            text = tokenizer.decode(ids[:head], skip_special_tokens=True) + \
                tokenizer.decode(ids[len(ids) - (keep - head):], skip_special_tokens=True)
        else:
            text = tokenizer.decode(ids[len(ids) - keep:], skip_special_tokens=True)
        # Decoding and re-encoding can merge tokens differently at the cut; shrink until the budget holds.
        over = len(tokenizer.encode(text, add_special_tokens=False)) - budget
        if over <= 0:
            return text
        keep -= over
    return prompt


# ---- scoring ------------------------------------------------------------------------------------------------------

def prepare_prediction(spec: TaskSpec, sample: Sample, prediction):
    """Apply the task's filters (and the answer prefix, for `score_with_prefix`) to a generated text."""
    if spec.output_type == "multiple_choice":
        return prediction
    text = prediction
    for name in spec.postprocess:
        text = registry.FILTERS[name](text)
    if spec.score_with_prefix:
        text = sample.answer_prefix + text
    return text


def score_sample(spec: TaskSpec, sample: Sample, prediction) -> dict:
    """{metric: per-sample score in [0, 1]} for one prediction."""
    registry.ensure_imported()
    pred = prepare_prediction(spec, sample, prediction)
    return {m: float(registry.METRICS[m](pred, sample)) for m in spec.metrics}


def aggregate(spec: TaskSpec, per_sample: list) -> dict:
    """{metric: task score} from per-sample score dicts, on the metric's reporting scale (RULER: 0-100)."""
    registry.ensure_imported()
    out = {}
    for m in spec.metrics:
        fn = registry.METRICS[m]
        values = [s[m] for s in per_sample]
        out[m] = round(fn.scale * sum(values) / len(values), 2) if values else None
    return out
