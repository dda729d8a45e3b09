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
      task_modules: []                 # Python modules to import first (they may register generators)
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

import yaml


class TrainConfigError(ValueError):
    """A training file or option is wrong; the message names the file, the key and the value."""


REQUIRED = object()
EVAL_SEED = 42   # every task's default seed and the sweep default: synthetic training data must not use it

# key -> (type or tuple of types, default); REQUIRED marks keys without a default.
MODEL_KEYS = {"init": (str, REQUIRED), "config": (dict, None), "path": (str, None), "init_std": (float, 0.02)}
TOKENIZER_TRAIN_KEYS = {"vocab_size": (int, REQUIRED), "synthetic_samples": (int, 32)}
DATA_KEYS = {"seed": (int, 1234), "root": (str, None), "cache": (str, None), "task_paths": (list, []),
             "task_modules": (list, []), "sources": (list, REQUIRED)}
TEXT_KEYS = {"files": ((str, list), REQUIRED), "text_key": (str, "text"), "weight": (float, REQUIRED),
             "name": (str, None)}
TASK_KEYS = {"task": (str, REQUIRED), "weight": (float, REQUIRED), "samples": (int, 100_000),
             "lengths": (list, None), "answer_join": (str, ", "), "name": (str, None)}
TRAIN_KEYS = {
    "seq_len": (int, REQUIRED), "batch_size": (int, REQUIRED), "grad_accum": (int, 1), "steps": (int, REQUIRED),
    "lr": (float, REQUIRED), "warmup": (int, 0), "decay": (str, "cosine"), "lr_floor": (float, 0.1),
    "weight_decay": (float, 0.1), "betas": (list, [0.9, 0.95]), "eps": (float, 1e-8), "grad_clip": (float, 1.0),
    "z_loss": (float, 1e-5), "answer_loss_weight": (float, 1.0), "bf16": (bool, True), "seed": (int, 0),
    "device": (str, "auto"), "compile": (bool, False), "num_workers": (int, 2), "checkpoint_every": (int, 500),
    "keep_checkpoints": (int, 0), "save_dtype": (str, "float32"), "log_every": (int, 10), "eval": (dict, None),
}
EVAL_KEYS = {"tasks": (list, REQUIRED), "length": (int, REQUIRED), "samples": (int, 16), "every": (int, 500)}
TOP_KEYS = {"extends", "out", "scheme", "model", "tokenizer", "data", "train"}
CHOICES = {"init": ("scratch", "checkpoint"), "decay": ("cosine", "linear", "constant"),
           "device": ("auto", "cpu", "cuda"), "save_dtype": ("float32", "bfloat16")}


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
    if not path.is_file():
        raise TrainConfigError(f"training file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TrainConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: a training file must be a mapping of keys")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise TrainConfigError(f"{path}: key 'extends' must be a file path, got {base!r}")
    return _merge(read_yaml(path.parent / base, (*seen, path.resolve())), raw)


def _typename(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join({"dict": "a mapping", "list": "a list", "str": "a string", "int": "an integer",
                        "float": "a number", "bool": "true or false"}[t.__name__] for t in types)


def check_keys(raw, schema: dict, where: str) -> dict:
    """raw with defaults filled in; unknown keys, missing required keys and wrong types raise, naming the key."""
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{where} must be a mapping, got {raw!r}")
    for key in raw:
        if key not in schema:
            raise TrainConfigError(f"{where}: unknown key {key!r}; allowed: {', '.join(schema)}")
    out = {}
    for key, (types, default) in schema.items():
        if key not in raw or raw[key] is None:
            if default is REQUIRED:
                raise TrainConfigError(f"{where}: missing required key {key!r}")
            out[key] = copy.deepcopy(default)
            continue
        value, wanted = raw[key], types if isinstance(types, tuple) else (types,)
        if float in wanted and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            raise TrainConfigError(f"{where}: key {key!r} must be {_typename(types)}, got {value!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise TrainConfigError(f"{where}: key {key!r} must be one of {', '.join(CHOICES[key])}, got {value!r}")
        out[key] = value
    return out


def _positive(section: dict, keys, where: str, allow_zero=()):
    for key in keys:
        value = section[key]
        if value < 0 or (value == 0 and key not in allow_zero):
            raise TrainConfigError(f"{where}: key {key!r} must be {'>= 0' if key in allow_zero else '> 0'}, "
                                   f"got {value!r}")


def parse_train_config(raw: dict, path) -> TrainConfig:
    path = Path(path)
    where = str(path)
    for key in raw:
        if key not in TOP_KEYS:
            allowed = ", ".join(sorted(TOP_KEYS - {"extends"}))
            raise TrainConfigError(f"{where}: unknown key {key!r}; allowed: {allowed}")
    for key in ("model", "data", "train"):
        if key not in raw:
            raise TrainConfigError(f"{where}: missing required key {key!r}")
    scheme = raw.get("scheme", "rope")
    if not isinstance(scheme, str) or not scheme.strip():
        raise TrainConfigError(f"{where}: key 'scheme' must be a scheme spec like 'repo,start_layer=2', got {scheme!r}")
    out = raw.get("out")
    if out is not None and not isinstance(out, str):
        raise TrainConfigError(f"{where}: key 'out' must be a folder path, got {out!r}")

    model = check_keys(raw["model"], MODEL_KEYS, f"{where}: model")
    needs, ignores = ("config", "path") if model["init"] == "scratch" else ("path", "config")
    if model[needs] is None:
        raise TrainConfigError(f"{where}: model.init {model['init']} needs model.{needs}")
    if model[ignores] is not None:
        raise TrainConfigError(f"{where}: model.{ignores} does not apply to model.init {model['init']}")
    _positive(model, ["init_std"], f"{where}: model")

    tokenizer = raw.get("tokenizer")
    if isinstance(tokenizer, dict):
        if set(tokenizer) != {"train"}:
            raise TrainConfigError(f"{where}: tokenizer as a mapping takes one key, 'train', got {sorted(tokenizer)}")
        tokenizer = {"train": check_keys(tokenizer["train"], TOKENIZER_TRAIN_KEYS, f"{where}: tokenizer.train")}
        _positive(tokenizer["train"], ["vocab_size"], f"{where}: tokenizer.train")
        if tokenizer["train"]["vocab_size"] < 300:
            raise TrainConfigError(f"{where}: tokenizer.train.vocab_size must be at least 300 (256 bytes, special "
                                   f"tokens and some merges), got {tokenizer['train']['vocab_size']}")
    elif tokenizer is not None and not isinstance(tokenizer, str):
        raise TrainConfigError(f"{where}: key 'tokenizer' must be a path or {{train: {{vocab_size: N}}}}, "
                               f"got {tokenizer!r}")
    if tokenizer is None and model["init"] == "scratch":
        raise TrainConfigError(f"{where}: a scratch model needs key 'tokenizer' (a path, or {{train: ...}})")

    train = check_keys(raw["train"], TRAIN_KEYS, f"{where}: train")
    _positive(train, ["seq_len", "batch_size", "grad_accum", "steps", "lr", "log_every", "checkpoint_every",
                      "warmup", "weight_decay", "eps", "grad_clip", "z_loss", "answer_loss_weight", "num_workers",
                      "keep_checkpoints", "lr_floor"], f"{where}: train",
              allow_zero=("warmup", "weight_decay", "grad_clip", "z_loss", "num_workers", "keep_checkpoints",
                          "lr_floor"))
    if train["warmup"] >= train["steps"]:
        raise TrainConfigError(f"{where}: train.warmup ({train['warmup']}) must be below train.steps "
                               f"({train['steps']})")
    if train["lr_floor"] > 1:
        raise TrainConfigError(f"{where}: train.lr_floor is a fraction of lr (0..1), got {train['lr_floor']}")
    betas = train["betas"]
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise TrainConfigError(f"{where}: train.betas must be two numbers in [0, 1), got {betas!r}")
    train["betas"] = [float(b) for b in betas]
    if train["eval"] is not None:
        train["eval"] = check_keys(train["eval"], EVAL_KEYS, f"{where}: train.eval")
        _positive(train["eval"], ["length", "samples", "every"], f"{where}: train.eval")

    data = check_keys(raw["data"], DATA_KEYS, f"{where}: data")
    if data["seed"] == EVAL_SEED:
        raise TrainConfigError(f"{where}: data.seed {EVAL_SEED} is the evaluation seed of every task: training "
                               f"on it would train on the test samples; pick another")
    for key in ("task_paths", "task_modules"):
        if not all(isinstance(x, str) for x in data[key]):
            raise TrainConfigError(f"{where}: data.{key} must be a list of strings, got {data[key]!r}")
    if not data["sources"]:
        raise TrainConfigError(f"{where}: data.sources must list at least one source")
    sources = []
    for i, src in enumerate(data["sources"]):
        at = f"{where}: data.sources[{i}]"
        if not isinstance(src, dict) or ("files" in src) == ("task" in src):
            raise TrainConfigError(f"{at} must be a mapping with exactly one of 'files' (text) or 'task' "
                                   f"(synthetic), got {src!r}")
        if "files" in src:
            s = check_keys(src, TEXT_KEYS, at)
            files = [s["files"]] if isinstance(s["files"], str) else s["files"]
            if not files or not all(isinstance(f, str) for f in files):
                raise TrainConfigError(f"{at}: key 'files' must be a path pattern or a list of them, got {files!r}")
            source = TextSource(s["name"] or f"text{i}", files, s["text_key"], s["weight"])
        else:
            s = check_keys(src, TASK_KEYS, at)
            lengths = s["lengths"] if s["lengths"] is not None else [train["seq_len"]]
            if not lengths or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in lengths):
                raise TrainConfigError(f"{at}: key 'lengths' must be a list of positive integers, got {lengths!r}")
            too_long = [x for x in lengths if x > train["seq_len"]]
            if too_long:
                raise TrainConfigError(f"{at}: length {too_long[0]} is above train.seq_len {train['seq_len']}: a "
                                       f"sample must fit in one row")
            _positive(s, ["samples"], at)
            source = TaskSource(s["name"] or s["task"], s["task"], s["weight"], s["samples"], sorted(set(lengths)),
                                s["answer_join"])
        if source.weight <= 0:
            raise TrainConfigError(f"{at}: key 'weight' must be > 0, got {source.weight}")
        sources.append(source)
    names = [s.name for s in sources]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise TrainConfigError(f"{where}: two data sources are named {duplicate!r}; give them distinct 'name's")
    if isinstance(tokenizer, dict) and not any(isinstance(s, TextSource) for s in sources):
        raise TrainConfigError(f"{where}: tokenizer.train needs at least one text source in data.sources (the "
                               f"synthetic samples are sized with a tokenizer trained on the text first)")
    return TrainConfig(path=path, raw=raw, out=out, scheme=scheme.strip(), model=model, tokenizer=tokenizer,
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
