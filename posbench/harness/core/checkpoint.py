"""Hugging Face-format checkpoints: a folder with config.json, *.safetensors (one file, or shards listed in
model.safetensors.index.json) and, optionally, a tokenizer.

    model, tokenizer, info = load_model(path, scheme=None, dtype=torch.float32, device="cpu")
    info = inspect_model(path, scheme=None)      # the same checks and facts, without reading any tensor data
    save_model(model, path, tokenizer=None)

Weight names are transformers' (`model.layers.3.self_attn.q_proj.weight`, `lm_head.weight`); a position layer's
weights sit under `model.layers.{i}.self_attn.` with the names it declares (RePo: Sakana's gate_map, content_map,
final_map). The model fuses some of them into one parameter (q/k/v, gate/up): checkpoint_tensors maps each name to
its rows. The scheme is the one posbench recorded (posbench_scheme), else detected from Sakana's pe_config and the
RePo weights, unless the caller forces one.
"""
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from posbench.harness.core.model import ARCHITECTURES, FusedLinear, ModelConfig, Transformer
from posbench.position_schemes import (
    POSITION_LAYERS,
    Scheme,
    SchemeError,
    detect_scheme,
    format_layer_ids,
    get_scheme,
    parse_scheme_spec,
    repo_weight_layers,
    sakana_pe_config,
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked: the message names the path, key or tensor."""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
_LAYER_WEIGHT = re.compile(r"model\.layers\.(\d+)\.self_attn\.(\w+)(\.\w+)?")
# Stored by some conversions, recomputed by every implementation.
_RECOMPUTABLE = re.compile(r".*\.rotary_emb\.inv_freq")
_SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def hf_name(name: str) -> str:
    """Our parameter path -> the checkpoint's name: "model." in front (except lm_head), a position layer's own
    weights directly under self_attn (our Attention nests them in `position`), as Sakana stores RePo's."""
    name = name.replace(".self_attn.position.", ".self_attn.")
    return name if name.startswith("lm_head.") else "model." + name


def checkpoint_tensors(model: Transformer) -> dict:
    """{checkpoint name: the tensor that holds it}: a parameter, or the rows of a fused one (FusedLinear), as views,
    so that copying into one loads that weight and reading it saves it. In the model's parameter order."""
    out = {}
    for path, module in model.named_modules():
        prefix = path + "." if path else ""
        if isinstance(module, FusedLinear):  # its parts are named after its parent: self_attn.q_proj, not qkv_proj
            parent = path.rpartition(".")[0]
            out.update({hf_name(f"{parent}.{name}"): t for name, t in module.views().items()})
        else:
            out.update({hf_name(prefix + name): p for name, p in module.named_parameters(recurse=False)})
    return out


def position_weight_layers(model: Transformer) -> dict:
    """{checkpoint name: layer index} of the weights owned by the layers' position modules."""
    out = {}
    for i, layer in enumerate(model.layers):
        attn = layer.self_attn
        names = [f"layers.{i}.self_attn.{name}.weight" for name in attn.position.input_maps]
        names += [f"layers.{i}.self_attn.position.{name}" for name, _ in attn.position.named_parameters()]
        out.update({hf_name(name): i for name in names})
    return out


@dataclass
class Weight:
    file: Path
    shape: list
    dtype: str  # safetensors' name: F32, BF16, ...


@dataclass
class Checkpoint:
    path: Path
    hf_config: dict
    config: ModelConfig
    weights: dict  # checkpoint name -> Weight


def open_checkpoint(path) -> Checkpoint:
    """Read config.json and the safetensors headers (names, shapes, dtypes); no tensor data."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such directory" if not path.exists() else f"{path}: not a directory")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: missing (a checkpoint folder needs config.json)")
    try:
        hf_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_file}: not valid JSON ({err})") from None
    _check_config_values(config_file, hf_config)
    try:
        config = ModelConfig.from_hf(hf_config)
    except (ValueError, TypeError, AttributeError, KeyError) as err:  # a value of a type transformers chokes on
        raise CheckpointError(f"{config_file}: {err}") from None
    return Checkpoint(path, hf_config, config, _read_weight_headers(path))


# Sizes that must be positive integers when present (transformers accepts -5 and fails later, or never).
_POSITIVE_CONFIG_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                         "num_key_value_heads", "head_dim", "max_position_embeddings")


def _check_config_values(config_file: Path, hf_config):
    if not isinstance(hf_config, dict):
        raise CheckpointError(f"{config_file}: must be a JSON object of config keys, got {type(hf_config).__name__}")
    if not isinstance(hf_config.get("model_type"), str):
        raise CheckpointError(f"{config_file}: key 'model_type' must be a string such as 'llama', "
                              f"got {hf_config.get('model_type')!r}")
    for key in _POSITIVE_CONFIG_KEYS:
        value = hf_config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise CheckpointError(f"{config_file}: key {key!r} must be a positive integer, got {value!r}")
    pe_config = hf_config.get("pe_config")
    if pe_config is not None and not isinstance(pe_config, dict):
        raise CheckpointError(f"{config_file}: key 'pe_config' must be an object (Sakana's format), got {pe_config!r}")


def _read_weight_headers(path: Path) -> dict:
    index_file = path / "model.safetensors.index.json"
    if index_file.is_file():
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index_file}: not a safetensors index with a weight_map ({err})") from None
        files = sorted(set(weight_map.values()))
        for name in files:
            if not (path / name).is_file():
                raise CheckpointError(f"{index_file}: lists shard {name}, which is missing")
    else:
        files = sorted(p.name for p in path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path}: no *.safetensors weights (other formats, e.g. pytorch_model.bin, "
                                  "are not read)")
    weights = {}
    for name in files:
        try:
            with safe_open(path / name, framework="pt") as f:
                for key in f.keys():
                    piece = f.get_slice(key)
                    weights[key] = Weight(path / name, list(piece.get_shape()), piece.get_dtype())
        except Exception as err:  # safetensors raises its own SafetensorError for a corrupt header
            raise CheckpointError(f"{path / name}: cannot read safetensors header ({err})") from None
    return weights


def _position_kind(name: str):
    """The position layer kind whose weight this checkpoint name is (model.layers.{i}.self_attn.{leaf}[.weight]
    with a leaf some kind owns), or None."""
    match = _LAYER_WEIGHT.fullmatch(name)
    if match is None:
        return None
    return next((kind for kind in POSITION_LAYERS.values() if match[2] in kind.weight_names), None)


def as_scheme(scheme) -> Scheme:
    """A Scheme from a Scheme, a spec string ("rope,scaling=yarn,factor=2") or a (name, params) pair."""
    if isinstance(scheme, Scheme):
        return scheme
    name, params = parse_scheme_spec(scheme) if isinstance(scheme, str) else scheme
    return get_scheme(name, **params)


# Parameters that choose a scheme's layers: a user who gives one of them replaces the checkpoint's layer choice.
_LAYER_CHOICE = {"hybrid": ("pattern", "nope_layers"), "repo": ("start_layer",)}


def resolve_scheme(ckpt, scheme):
    """The Scheme a checkpoint is loaded under, or None for its own (detected) scheme.

    scheme: None, a spec string, a (name, params) pair (name None: the checkpoint's own scheme with params changed)
    or a Scheme (taken as is). A forced scheme of the checkpoint's own kind keeps the checkpoint's parameters and
    changes only those given: `DIR:repo` on a RePo checkpoint trained from layer 2 stays start_layer=2, and
    `DIR:repo,scaling=yarn,factor=2` adds YaRN to it.
    """
    if scheme is None or isinstance(scheme, Scheme):
        return scheme
    name, params = parse_scheme_spec(scheme) if isinstance(scheme, str) else (scheme[0], dict(scheme[1]))
    if name is None and not params:
        return None
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else open_checkpoint(ckpt)
    try:
        own_name, own_params = detect_scheme(ckpt.hf_config, ckpt.weights)
    except SchemeError as err:
        if name is None:
            raise CheckpointError(f"{ckpt.path}: {err}") from None
        own_name, own_params = None, {}   # a forced scheme replaces an unreadable pe_config
    if name is None or name == own_name:
        if any(key in params for key in _LAYER_CHOICE.get(own_name, ())):
            own_params = {k: v for k, v in own_params.items() if k not in _LAYER_CHOICE[own_name]}
        name, params = own_name, {**own_params, **params}
    return as_scheme((name, params))


def _format_names(names, limit=3) -> str:
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _build(ckpt: Checkpoint, scheme, dtype: torch.dtype, device) -> tuple[Transformer, dict]:
    """The model for this checkpoint and scheme, with every weight checked; tensor data is read unless device is
    meta. Returns (model, info)."""
    path = ckpt.path
    try:  # a checkpoint whose pe_config and weights disagree is the checkpoint's problem: name it
        detected = as_scheme(detect_scheme(ckpt.hf_config, ckpt.weights)) if scheme is None else None
        repo_weight_layers(ckpt.weights)  # a layer with only part of the RePo maps is an error in any scheme
    except SchemeError as err:
        raise CheckpointError(f"{path}: {err}") from None
    chosen = resolve_scheme(ckpt, scheme) if scheme is not None else None  # a bad forced scheme stays a SchemeError
    if chosen is None:
        detected = detected or as_scheme(detect_scheme(ckpt.hf_config, ckpt.weights))
        chosen = detected
    with torch.device("meta"):  # no memory and no init cost: every parameter is loaded or initialised below
        model = Transformer(ckpt.config, chosen).to(dtype)
    params = checkpoint_tensors(model)
    position = position_weight_layers(model)

    # Which expected weights are absent, mis-shaped or unexpected.
    missing = [name for name in params if name not in ckpt.weights]
    fresh_layers = sorted({position[name] for name in missing if name in position})
    others = [name for name in missing if name not in position]
    if others:
        first = others[0]
        raise CheckpointError(f"{path}: missing weight {first} (expected shape {list(params[first].shape)})"
                              + (f"; also missing {_format_names(others[1:])}" if len(others) > 1 else ""))
    if fresh_layers and not chosen.params.get("fresh_init"):
        first = model.layers[fresh_layers[0]].self_attn.position
        leaves = ", ".join(sorted({_LAYER_WEIGHT.fullmatch(name)[2] for name in missing if name in position}))
        std = f" (std {chosen.params['init_std']})" if "init_std" in chosen.params else ""
        raise CheckpointError(
            f"{path}: scheme {chosen.spec()} needs {first.title or first.kind} weights (model.layers.{{i}}.self_attn."
            f"{leaves}) in layers {format_layer_ids(fresh_layers)}, which the checkpoint lacks; add fresh_init=true "
            f"to initialise them{std}")
    for name, p in params.items():
        weight = ckpt.weights.get(name)
        if weight is not None and weight.shape != list(p.shape):
            raise CheckpointError(f"{path}: weight {name} in {weight.file.name} has shape {weight.shape}, "
                                  f"expected {list(p.shape)}")
    unused, unexpected = {}, []  # unused: {title: [names]}, weights of position kinds this scheme does not run
    for name in ckpt.weights:
        if name in params or _RECOMPUTABLE.fullmatch(name):
            continue
        if name == "lm_head.weight" and ckpt.config.tie_word_embeddings:
            continue  # tied: transformers ignores a stored copy too
        kind = _position_kind(name)
        if kind is None:
            unexpected.append(name)
        else:
            unused.setdefault(kind.title or kind.kind, []).append(name)
    if unexpected:
        raise CheckpointError(f"{path}: unexpected weight {unexpected[0]} in {ckpt.weights[unexpected[0]].file.name} "
                              f"(no such parameter in a {ckpt.config.model_type} model)"
                              + (f"; also {_format_names(unexpected[1:])}" if len(unexpected) > 1 else ""))
    if unused:
        try:
            own_name = detect_scheme(ckpt.hf_config, ckpt.weights)[0]
        except SchemeError:
            own_name = None
        names = [name for group in unused.values() for name in group]
        if chosen.name == own_name:
            # Still the checkpoint's own scheme, but with parameters that leave trained position weights out: a
            # silent change of the model. Another scheme (e.g. `rope`) is an explicit choice and only warns.
            layers = sorted({int(_LAYER_WEIGHT.fullmatch(name)[1]) for name in names})
            own = as_scheme(detect_scheme(ckpt.hf_config, ckpt.weights)).spec()
            raise CheckpointError(
                f"{path}: scheme {chosen.spec()} drops the trained {' and '.join(unused)} weights of layers "
                f"{format_layer_ids(layers)} ({_format_names(names)}); force just `{own_name}` to keep the "
                f"checkpoint's own parameters ({own}), or another scheme (e.g. `rope`) to run without them")
    for title, names in unused.items():
        layers = sorted({int(_LAYER_WEIGHT.fullmatch(name)[1]) for name in names})
        warnings.warn(f"{path}: ignoring the {title} weights of layers {format_layer_ids(layers)}: scheme "
                      f"{chosen.spec()} does not use {title} there", stacklevel=3)

    device = torch.device(device)
    if device.type != "meta":
        model.to_empty(device=device)
        params = checkpoint_tensors(model)  # to_empty made new tensors
        with torch.no_grad():
            for file in sorted({ckpt.weights[name].file for name in params if name in ckpt.weights}):
                with safe_open(file, framework="pt") as f:
                    for name in f.keys():
                        if name in params:
                            tensor = f.get_tensor(name)
                            if not bool(torch.isfinite(tensor).all()):  # would be scored as a model that knows nothing
                                raise CheckpointError(f"{file}: weight {name} holds NaN or infinite values")
                            params[name].copy_(tensor)
            for layer in fresh_layers:
                model.layers[layer].self_attn.reset_position_parameters()
    model.eval()

    counts = model.parameter_counts()
    stored = sorted({_SAFETENSORS_DTYPES.get(w.dtype, w.dtype) for w in ckpt.weights.values()})
    info = {
        "path": str(path),
        "architecture": ckpt.config.model_type,
        "hf_class": ARCHITECTURES[ckpt.config.model_type],
        "num_layers": ckpt.config.num_layers,
        "hidden_size": ckpt.config.hidden_size,
        "num_heads": ckpt.config.num_heads,
        "num_kv_heads": ckpt.config.num_kv_heads,
        "head_dim": ckpt.config.head_dim,
        "vocab_size": ckpt.config.vocab_size,
        "max_position_embeddings": ckpt.config.max_position_embeddings,
        "num_parameters": counts["total"],
        "position_parameters": counts["position"],
        "dtype": str(dtype).removeprefix("torch."),
        "stored_dtype": stored[0] if len(stored) == 1 else stored,
        "scheme": chosen.describe(),
        "scheme_spec": chosen.spec(),
        "detected_scheme": detected.spec() if detected is not None else None,
        "layer_schemes": list(model.layer_kinds),
        "rope_parameters": dict(model.rope_parameters),
        "fresh_position_layers": fresh_layers,
        "unused_weights": sorted(name for names in unused.values() for name in names),
    }
    return model, info


def inspect_model(path, scheme=None) -> dict:
    """load_model's checks and info, on the meta device: nothing but headers is read (instant, even for 7B)."""
    return _build(open_checkpoint(path), scheme, torch.float32, "meta")[1]


def load_model(path, scheme=None, dtype: torch.dtype = torch.float32, device="cpu"):
    """(model, tokenizer or None, info) from a checkpoint folder.

    scheme: None (detect from the checkpoint), a spec string ("repo,start_layer=5"), a (name, params) pair or a
    Scheme. Raises CheckpointError (missing folder, unsupported model_type, missing, mis-shaped or unexpected
    weights) or SchemeError (bad scheme).
    """
    ckpt = open_checkpoint(path)
    model, info = _build(ckpt, scheme, dtype, device)
    return model, load_tokenizer(ckpt.path), info


def load_tokenizer(path):
    """The tokenizer of a checkpoint folder (None if it has no tokenizer files), or of a bare tokenizer.json file.
    Local files only, never remote code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if path.is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(path))
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as err:  # the Rust tokenizers library raises a bare Exception for an unreadable file
        raise CheckpointError(f"{path}: cannot load the tokenizer ({err})") from None


def save_model(model: Transformer, path, tokenizer=None) -> Path:
    """Write model (and tokenizer) as a transformers checkpoint that load_model reads back identically.

    config.json is the source config with our fields, the scheme's RoPE parameters (rope_parameters, 5.x form),
    the scheme's spec (posbench_scheme) and Sakana's pe_config describing the layer kinds where their code knows
    them; transformers itself loads everything but the position layers' weights.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in checkpoint_tensors(model).items()}
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})

    # Legacy keys would override rope_parameters when transformers reads the file back.
    legacy = ("rope_scaling", "rope_theta", "partial_rotary_factor", "torch_dtype")
    hf = {k: v for k, v in model.config.hf_config.items() if k not in legacy}
    hf.update(model.config.to_hf())
    rope = dict(model.rope_parameters)
    if rope.get("partial_rotary_factor") == 1.0:
        del rope["partial_rotary_factor"]
    hf["rope_parameters"] = rope
    hf["posbench_scheme"] = model.scheme.checkpoint_spec()  # what detection reads first: any registered scheme
    pe_config = sakana_pe_config(model.layer_kinds)  # Sakana's code (transformers and vLLM forks) reads this one
    if pe_config is None:
        hf.pop("pe_config", None)
    else:
        hf["pe_config"] = pe_config
    hf["dtype"] = str(model.embed_tokens.weight.dtype).removeprefix("torch.")
    (path / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return path
