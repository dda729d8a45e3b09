"""Training files for `eval.py train TRAIN.yaml`: strict YAML, validated completely before anything is built.

    extends: base.yaml                 # optional: a file this one overrides (mappings merge, everything else is
                                       # replaced); relative to this file
    out: runs/train/NAME               # output folder (or --out)
    scheme: repo,start_layer=2         # the scheme to train in: rope | nope | hybrid,pattern=RRRN | repo,...
    model:
      init: scratch                    # scratch: a new model from `config`; checkpoint: continue from `path`
      config: {model_type: olmo2, hidden_size: 256, ...}   # config.json fields; vocab_size defaults to the
                                       # tokenizer's size rounded up to 64
      path: DIR                        # init: checkpoint (RoPE -> NoPE/hybrid/RePo conversion: RePo maps that
                                       # the checkpoint lacks are initialised fresh, std from the scheme)
      init_std: 0.02                   # scratch: truncated normal std of every matrix and the embedding
    tokenizer: PATH                    # tokenizer.json or a folder; default: the checkpoint's own
    tokenizer: {train: {vocab_size: 8192, synthetic_samples: 32}}  # or a byte-level BPE trained on the data
    data:
      seed: 1234                       # seed of the synthetic samples (evaluation uses 42: never train on it)
      root: null                       # ${data} in file patterns (default: eval.py's data root)
      cache: DIR                       # optional: where prepared data (tokenizer, synthetic samples) is kept
                                       # and shared by runs (`eval.py train --prepare` fills it)
      task_paths: []                   # extra task folders
      task_modules: []                 # Python modules to import first (they may register generators);
                                       # they run code, so `train` needs --import-task-modules to allow it
      sources:                         # each a text source (files) or a synthetic source (task); weights are
        - {files: "${data}/haystack/pg_essays/*.txt", weight: 0.1}        # relative row shares
        - {files: ["${data}/text/*.json.gz"], text_key: text, weight: 0.05}
        - {task: niah_single_1, weight: 0.3, samples: 20000, lengths: [1024], answer_join: ", "}
    train:
      seq_len: 1024                    # tokens per row (<= max_position_embeddings)
      batch_size: 32                   # rows per device and micro-step
      grad_accum: 1                    # micro-steps per optimizer step
      steps: 2000
      lr: 2.0e-3
      warmup: 100                      # linear warmup steps
      decay: cosine                    # cosine | linear | constant, after warmup, down to lr * lr_floor
      lr_floor: 0.1
      weight_decay: 0.1                # on matrices of linear layers only (see posbench/harness/training/train.py)
      betas: [0.9, 0.95]
      eps: 1.0e-8
      grad_clip: 1.0                   # max global grad norm; 0 disables
      z_loss: 1.0e-5                   # times mean logsumexp^2
      answer_loss_weight: 1.0          # loss weight of answer tokens of synthetic samples (and their EOS)
      bf16: true                       # autocast to bf16 on CUDA (fp32 master weights); CPU runs fp32
      seed: 0                          # model init (and RePo maps of a conversion)
      device: auto                     # auto | cpu | cuda
      compile: false                   # torch.compile the model
      num_workers: 2                   # DataLoader worker processes per training process
      checkpoint_every: 500            # also at the last step
      keep_checkpoints: 0              # keep only the newest N step_XXXXX folders; 0 keeps all
      save_dtype: float32              # float32 | bfloat16 for exported checkpoints (train_state stays fp32)
      log_every: 10
      eval: {tasks: [niah_single_1], length: 1024, samples: 16, every: 500}   # optional greedy probe
"""
import copy
import dataclasses
from pathlib import Path
from typing import Any, Literal

from posbench.config import build, spec
from posbench.config import read_yaml as read_yaml_file


class TrainConfigError(ValueError):
    """A training file or option is wrong; the message names the file, the key and the value."""


EVAL_SEED = 42   # every task's default seed and the sweep default: synthetic training data must not use it


# ---- the file's sections: what each key accepts (posbench/config.py checks them) --------------------------------

@dataclasses.dataclass(kw_only=True)
class ModelSection:
    init: Literal["scratch", "checkpoint"]
    config: dict[str, Any] | None = None
    path: str | None = None
    init_std: float = spec(0.02, above=0)


@dataclasses.dataclass(kw_only=True)
class TokenizerTrainSection:
    vocab_size: int = spec(min=300)   # 256 bytes, special tokens and some merges
    synthetic_samples: int = spec(32, min=0)


@dataclasses.dataclass(kw_only=True)
class TokenizerSection:
    train: TokenizerTrainSection


@dataclasses.dataclass(kw_only=True)
class TextSourceSection:
    files: str | list[str]
    text_key: str = "text"
    weight: float = spec(above=0)
    name: str | None = None


@dataclasses.dataclass(kw_only=True)
class TaskSourceSection:
    task: str
    weight: float = spec(above=0)
    samples: int = spec(100_000, min=1)
    lengths: list[int] | None = spec(None, min=1)
    answer_join: str = ", "
    name: str | None = None


@dataclasses.dataclass(kw_only=True)
class DataSection:
    seed: int = 1234
    root: str | None = None
    cache: str | None = None
    task_paths: list[str] = dataclasses.field(default_factory=list)
    task_modules: list[str] = dataclasses.field(default_factory=list)
    sources: list[dict[str, Any]]   # each a TextSourceSection or a TaskSourceSection, told apart by files/task


@dataclasses.dataclass(kw_only=True)
class EvalSection:
    tasks: list[str]
    length: int = spec(min=1)
    samples: int = spec(16, min=1)
    every: int = spec(500, min=1)


@dataclasses.dataclass(kw_only=True)
class TrainSection:
    seq_len: int = spec(min=1)
    batch_size: int = spec(min=1)
    grad_accum: int = spec(1, min=1)
    steps: int = spec(min=1)
    lr: float = spec(above=0)
    warmup: int = spec(0, min=0)
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    lr_floor: float = spec(0.1, min=0, max=1)   # a fraction of lr
    weight_decay: float = spec(0.1, min=0)
    betas: list[float] = spec(default_factory=lambda: [0.9, 0.95], min=0)
    eps: float = spec(1e-8, above=0)
    grad_clip: float = spec(1.0, min=0)
    z_loss: float = spec(1e-5, min=0)
    answer_loss_weight: float = spec(1.0, above=0)
    bf16: bool = True
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    num_workers: int = spec(2, min=0)
    checkpoint_every: int = spec(500, min=1)
    keep_checkpoints: int = spec(0, min=0)
    save_dtype: Literal["float32", "bfloat16"] = "float32"
    log_every: int = spec(10, min=1)
    eval: EvalSection | None = None


@dataclasses.dataclass(kw_only=True)
class TrainFile:
    out: str | None = None
    scheme: str = "rope"
    model: ModelSection
    tokenizer: str | TokenizerSection | None = None
    data: DataSection
    train: TrainSection


@dataclasses.dataclass
class TextSource:
    name: str
    files: list          # patterns, ${NAME} resolved later against the data root
    text_key: str
    weight: float


@dataclasses.dataclass
class TaskSource:
    name: str
    task: str
    weight: float
    samples: int         # distinct samples: indices 0..samples-1 at each length
    lengths: list
    answer_join: str


@dataclasses.dataclass
class TrainConfig:
    path: Path
    raw: dict            # the merged YAML (after extends), for manifests and resume checks
    out: str
    scheme: str
    model: dict
    tokenizer: object    # str path, {"train": {...}}, or None
    data: dict
    sources: list        # TextSource and TaskSource, in file order
    train: dict

    @property
    def text_sources(self):
        return [s for s in self.sources if isinstance(s, TextSource)]

    @property
    def task_sources(self):
        return [s for s in self.sources if isinstance(s, TaskSource)]

    def describe(self) -> dict:
        """The validated configuration with every default filled in (for manifests and model cards)."""
        return {"file": str(self.path), "out": self.out, "scheme": self.scheme, "model": self.model,
                "tokenizer": self.tokenizer, "data": {**{k: v for k, v in self.data.items() if k != "sources"},
                                                      "sources": [dataclasses.asdict(s) for s in self.sources]},
                "train": self.train}

    @property
    def rows_per_step(self) -> int:
        """Rows per device per optimizer step (times the world size = the global batch)."""
        return self.train["batch_size"] * self.train["grad_accum"]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(path: Path, seen=()) -> dict:
    """The file's mapping with `extends` applied (recursively, relative to the file)."""
    path = Path(path)
    if path.resolve() in seen:
        raise TrainConfigError(f"{path}: extends itself (cycle through {', '.join(str(p) for p in seen)})")
    raw = read_yaml_file(path, TrainConfigError)
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: a training file must be a mapping of keys")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise TrainConfigError(f"{path}: key 'extends' must be a file path, got {base!r}")
    return _merge(read_yaml(path.parent / base, (*seen, path.resolve())), raw)


def parse_train_config(raw: dict, path) -> TrainConfig:
    """The TrainConfig of a merged training file: keys, types and ranges checked by TrainFile's dataclasses, then
    the rules across keys."""
    path = Path(path)
    where = str(path)
    f = build(TrainFile, raw, where, TrainConfigError)
    if not f.scheme.strip():
        raise TrainConfigError(f"{where}: key 'scheme' must be a scheme spec like 'repo,start_layer=2', "
                               f"got {f.scheme!r}")
    model = dataclasses.asdict(f.model)
    needs, ignores = ("config", "path") if model["init"] == "scratch" else ("path", "config")
    if model[needs] is None:
        raise TrainConfigError(f"{where}: model.init {model['init']} needs model.{needs}")
    if model[ignores] is not None:
        raise TrainConfigError(f"{where}: model.{ignores} does not apply to model.init {model['init']}")
    tokenizer = dataclasses.asdict(f.tokenizer) if isinstance(f.tokenizer, TokenizerSection) else f.tokenizer
    if tokenizer is None and model["init"] == "scratch":
        raise TrainConfigError(f"{where}: a scratch model needs key 'tokenizer' (a path, or {{train: ...}})")

    train = dataclasses.asdict(f.train)
    if train["warmup"] >= train["steps"]:
        raise TrainConfigError(f"{where}: train.warmup ({train['warmup']}) must be below train.steps "
                               f"({train['steps']})")
    if len(train["betas"]) != 2 or not all(b < 1 for b in train["betas"]):
        raise TrainConfigError(f"{where}: train.betas must be two numbers in [0, 1), got {train['betas']!r}")

    data = dataclasses.asdict(f.data)
    if data["seed"] == EVAL_SEED:
        raise TrainConfigError(f"{where}: data.seed {EVAL_SEED} is the evaluation seed of every task: training "
                               f"on it would train on the test samples; pick another")
    if not data["sources"]:
        raise TrainConfigError(f"{where}: data.sources must list at least one source")
    sources = []
    for i, src in enumerate(data["sources"]):
        at = f"data.sources[{i}]"
        if ("files" in src) == ("task" in src):
            raise TrainConfigError(f"{where}: {at} must be a mapping with exactly one of 'files' (text) or 'task' "
                                   f"(synthetic), got {src!r}")
        if "files" in src:
            s = build(TextSourceSection, src, where, TrainConfigError, key=at)
            files = [s.files] if isinstance(s.files, str) else s.files
            if not files:
                raise TrainConfigError(f"{where}: {at}: key 'files' must be a path pattern or a list of them")
            source = TextSource(s.name or f"text{i}", files, s.text_key, s.weight)
        else:
            s = build(TaskSourceSection, src, where, TrainConfigError, key=at)
            lengths = s.lengths if s.lengths is not None else [train["seq_len"]]
            if not lengths:
                raise TrainConfigError(f"{where}: {at}: key 'lengths' must list at least one length")
            too_long = [x for x in lengths if x > train["seq_len"]]
            if too_long:
                raise TrainConfigError(f"{where}: {at}: length {too_long[0]} is above train.seq_len "
                                       f"{train['seq_len']}: a sample must fit in one row")
            source = TaskSource(s.name or s.task, s.task, s.weight, s.samples, sorted(set(lengths)), s.answer_join)
        sources.append(source)
    names = [s.name for s in sources]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise TrainConfigError(f"{where}: two data sources are named {duplicate!r}; give them distinct 'name's")
    if isinstance(tokenizer, dict) and not any(isinstance(s, TextSource) for s in sources):
        raise TrainConfigError(f"{where}: tokenizer.train needs at least one text source in data.sources (the "
                               f"synthetic samples are sized with a tokenizer trained on the text first)")
    return TrainConfig(path=path, raw=raw, out=f.out, scheme=f.scheme.strip(), model=model, tokenizer=tokenizer,
                       data=data, sources=sources, train=train)


def load_train_config(path, overrides: dict = None) -> TrainConfig:
    """Read, merge `extends`, apply CLI overrides ({"out": ..., "train.steps": ...}) and validate."""
    raw = read_yaml(Path(path))
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_train_config(raw, path)
