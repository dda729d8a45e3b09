"""Finding schemes: by name, from a `NAME[,key=value...]` spec string, or from a checkpoint's config and weights."""
import re
import warnings

from .base import SchemeError, format_layer_ids
from .repo import REPO_WEIGHTS
from .schemes import SCHEMES, Scheme


def list_schemes() -> dict[str, str]:
    """{name: one-line description} for `eval.py list schemes`."""
    return {name: cls.summary for name, cls in SCHEMES.items()}


def get_scheme(name: str, **params) -> Scheme:
    cls = SCHEMES.get(name.strip().lower())
    if cls is None:
        raise SchemeError(f"unknown scheme {name!r} (valid: {', '.join(SCHEMES)})")
    return cls(**params)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside [...], so `nope_layers=[3,7]` stays one item."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def _parse_value(text: str):
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [_parse_value(item) for item in _split_top_level(text[1:-1]) if item.strip()]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_scheme_spec(spec: str) -> tuple[str, dict]:
    """'rope,scaling=yarn,factor=4' -> ('rope', {'scaling': 'yarn', 'factor': 4}).

    Grammar: NAME[,key=value...]; values become int, float, bool (true/false), a list ([3,7]) or stay strings.
    Only the syntax is checked here; get_scheme checks the name and the parameters.
    """
    name, *items = _split_top_level(spec)
    name = name.strip().lower()
    if not name:
        raise SchemeError(f"scheme spec {spec!r}: missing the scheme name (valid: {', '.join(SCHEMES)})")
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SchemeError(f"scheme spec {spec!r}: expected key=value, got {item.strip()!r}")
        if key in params:
            raise SchemeError(f"scheme spec {spec!r}: {key} given twice")
        params[key] = _parse_value(value)
    return name, params


# --- detection from a checkpoint -----------------------------------------------------------------------------------

_REPO_WEIGHT = re.compile(r"model\.layers\.(\d+)\.self_attn\.(" + "|".join(REPO_WEIGHTS) + r")\.weight")

# Sakana's pe_config modes that posbench runs. The authors' code knows more modes; they have no released weights.
_PE_MODES = {"none": "rope", "nope": "nope or hybrid", "swigluex_multihead": "repo"}


def repo_weight_layers(weight_names) -> list[int]:
    """Layers that carry RePo maps (model.layers.{i}.self_attn.{gate_map,content_map,final_map}.weight)."""
    found: dict[int, set] = {}
    for name in weight_names:
        match = _REPO_WEIGHT.fullmatch(name)
        if match:
            found.setdefault(int(match[1]), set()).add(match[2])
    for layer, maps in sorted(found.items()):
        if len(maps) < len(REPO_WEIGHTS):
            missing = ", ".join(f"model.layers.{layer}.self_attn.{m}.weight" for m in REPO_WEIGHTS if m not in maps)
            raise SchemeError(f"layer {layer} has only part of RePo's weights: missing {missing}")
    return sorted(found)


def _layer_ids(key: str, value) -> list[int] | None:
    """Sakana's layer-id list: '' (all layers) -> None, '3,7' or [3, 7] -> [3, 7]."""
    if value in (None, "", []):
        return None
    items = value.split(",") if isinstance(value, str) else value
    try:
        return sorted({int(str(v).strip()) for v in items if str(v).strip()})
    except (TypeError, ValueError):
        raise SchemeError(f"pe_config {key}: expected comma-separated layer numbers, got {value!r}") from None


def _pe_key(pe: dict, key: str, parse, default):
    """Read dynamic_pe_{key} in both spellings. transformers and vLLM read only the misspelled dynmaic_pe_{key};
    when both are present and disagree we follow them, and warn."""
    right_key, wrong_key = f"dynamic_pe_{key}", f"dynmaic_pe_{key}"
    right = parse(right_key, pe[right_key]) if right_key in pe else None
    wrong = parse(wrong_key, pe[wrong_key]) if wrong_key in pe else None
    if right_key in pe and wrong_key in pe and right != wrong:
        warnings.warn(f"pe_config: {wrong_key}={pe[wrong_key]!r} and {right_key}={pe[right_key]!r} disagree; "
                      f"using {wrong_key}, the spelling transformers and vLLM read", stacklevel=3)
    if wrong_key in pe:
        return wrong
    return right if right_key in pe else default


def _start_layer(key: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SchemeError(f"pe_config {key}: expected a layer number, got {value!r}") from None


def detect_scheme(hf_config: dict, weight_names) -> tuple[str, dict]:
    """(name, params) of the scheme a checkpoint was trained with: the spec posbench recorded (`posbench_scheme`),
    else from Sakana's `pe_config` and the weights.

    A layer uses the pe_config mode iff it is listed in layer_ids (empty: all) and >= start_layer; the others use
    plain RoPE. Config and weights must agree on which layers carry RePo maps. The checkpoint's RoPE scaling is not
    part of the result: every scheme reads it from the config unless overridden.
    """
    num_layers = hf_config.get("num_hidden_layers")
    if not isinstance(num_layers, int) or num_layers < 1:
        raise SchemeError(f"config num_hidden_layers must be a positive integer, got {num_layers!r}")
    recorded = hf_config.get("posbench_scheme")
    if recorded is not None:  # written by save_model: any registered scheme, a subclass's own included
        if not isinstance(recorded, str):
            raise SchemeError(f"config posbench_scheme must be a scheme spec string, got {recorded!r}")
        name, params = parse_scheme_spec(recorded)
        if name not in SCHEMES:
            raise SchemeError(f"config posbench_scheme {recorded!r}: scheme {name!r} is not defined in this process "
                              f"(defined: {', '.join(SCHEMES)}); import the module that defines it, or force a scheme")
        return name, params
    pe = hf_config.get("pe_config") or {}
    mode = pe.get("dynamic_pe_mode") or "none"
    if mode not in _PE_MODES:
        valid = ", ".join(f"{m} ({s})" for m, s in _PE_MODES.items())
        raise SchemeError(f"pe_config dynamic_pe_mode {mode!r} is not supported (valid: {valid})")
    start = _pe_key(pe, "start_layer", _start_layer, 0)
    ids = _pe_key(pe, "layer_ids", _layer_ids, None)
    outside = [i for i in ids or [] if not 0 <= i < num_layers]
    if outside:
        raise SchemeError(f"pe_config layer_ids {format_layer_ids(outside)} outside layers 0-{num_layers - 1}")
    active = [i for i in (ids if ids is not None else range(num_layers)) if i >= start]
    weights = repo_weight_layers(weight_names)

    if mode == "swigluex_multihead":
        if active != weights:
            raise SchemeError(f"pe_config puts RePo in layers {format_layer_ids(active) or 'none'} but the "
                              f"checkpoint has RePo weights (gate_map, content_map, final_map) in layers "
                              f"{format_layer_ids(weights) or 'none'}")
        if active != list(range(active[0], num_layers)):
            raise SchemeError(f"pe_config puts RePo in layers {format_layer_ids(active)}: the repo scheme needs a "
                              f"run from start_layer to the last layer ({num_layers - 1})")
        return "repo", {"start_layer": active[0]}
    if weights:
        raise SchemeError(f"the checkpoint has RePo weights in layers {format_layer_ids(weights)} but pe_config "
                          f"dynamic_pe_mode is {mode!r}, not 'swigluex_multihead'")
    if mode == "none" or not active:
        return "rope", {}
    if len(active) == num_layers:
        return "nope", {}
    return "hybrid", {"nope_layers": active}


def sakana_pe_config(layer_kinds: list[str]) -> dict | None:
    """The pe_config Sakana's code would write for these layer kinds (inverse of detect_scheme), with the start-layer
    and layer-id keys in both spellings: their transformers and vLLM forks read dynmaic_*, their training config
    dynamic_*. None when a layer is of a kind their code does not know."""
    if set(layer_kinds) - {"rope", "nope", "repo"}:
        return None
    if "repo" in layer_kinds:  # RePo layers always run from the start layer to the last
        mode, start, ids = "swigluex_multihead", layer_kinds.index("repo"), ""
    elif "nope" in layer_kinds:
        nope = [i for i, kind in enumerate(layer_kinds) if kind == "nope"]
        mode, start, ids = "nope", 0, "" if len(nope) == len(layer_kinds) else ",".join(map(str, nope))
    else:
        mode, start, ids = "none", 0, ""
    return {"dynamic_pe_mode": mode, "dynamic_pe_start_layer": start, "dynmaic_pe_start_layer": start,
            "dynamic_pe_layer_ids": ids, "dynmaic_pe_layer_ids": ids}
