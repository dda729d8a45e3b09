"""RoPE inverse frequencies: one function per variant, chosen from ROPE_VARIANTS by `rope_type`.

Every function takes (rotary: RotaryConfig, params: dict, seq_len: int | None) and returns
(inv_freq fp32 [R/2], attention_scaling float), where params is a complete transformers-5.x rope_parameters dict
(see resolve_rope_parameters). The scaled variants call transformers' own ROPE_INIT_FUNCTIONS so that our numbers
are theirs by construction; only the unscaled default is written here, because transformers 5.x has no "default"
entry (each model class computes it itself).
"""
import functools
import math

import torch
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from .base import RotaryConfig, SchemeError


class _TransformersRopeConfig:
    """The few config attributes ROPE_INIT_FUNCTIONS read (identical in transformers 5.17 and 5.24).

    Building a real model config would run transformers' validation and legacy-key handling on a dict that we have
    already resolved, so a minimal stand-in is both simpler and more predictable.
    """

    def __init__(self, rotary: RotaryConfig, params: dict):
        self.rope_parameters = params
        self.head_dim = rotary.head_dim
        self.hidden_size = rotary.head_dim  # only read when head_dim is missing
        self.num_attention_heads = 1
        self.max_position_embeddings = rotary.max_position_embeddings

    def standardize_rope_params(self):
        """Nothing to do: resolve_rope_parameters already filled rope_theta and the original length."""


def _default(rotary: RotaryConfig, params: dict, seq_len=None):
    """Plain RoPE: inv_freq_i = theta^(-2i/R)."""
    dim = rotary.rotary_dim
    inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    return inv_freq, 1.0


def _from_transformers(rope_type: str, rotary: RotaryConfig, params: dict, seq_len=None):
    # seq_len only matters for dynamic (NTK base grows with the length) and longrope (short/long factor switch).
    inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](_TransformersRopeConfig(rotary, params), seq_len=seq_len)
    return inv_freq.float(), float(scaling)


ROPE_VARIANTS = {"default": _default} | {
    name: functools.partial(_from_transformers, name) for name in ("linear", "dynamic", "yarn", "llama3", "longrope")
}

# rope_type -> (keys it requires, keys it may take); transformers 5.x validation rules, except that
# original_max_position_embeddings defaults to max_position_embeddings as transformers' standardisation does.
VARIANT_KEYS = {
    "default": ((), ()),
    "linear": (("factor",), ()),
    "dynamic": (("factor",), ()),
    "yarn": (("factor",), ("original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
                           "mscale", "mscale_all_dim", "truncate")),
    "llama3": (("factor", "low_freq_factor", "high_freq_factor"), ("original_max_position_embeddings",)),
    "longrope": (("short_factor", "long_factor"), ("factor", "original_max_position_embeddings", "attention_factor")),
}
assert VARIANT_KEYS.keys() == ROPE_VARIANTS.keys()

# Variants whose frequencies depend on the current length (max position + 1), as transformers'
# dynamic_rope_update decides per forward.
LENGTH_DEPENDENT = {"dynamic", "longrope"}

# Scheme parameters that override the checkpoint's RoPE settings. `scaling` picks the variant ("none" forces plain
# RoPE); `theta` replaces rope_theta (static NTK-aware scaling is plain RoPE with a larger theta).
SCALING_PARAMS = {
    "scaling": (str, None),
    "theta": (float, None),
    "factor": (float, None),
    "original_max_position_embeddings": (int, None),
    "attention_factor": (float, None),
    "beta_fast": (float, None),
    "beta_slow": (float, None),
    "mscale": (float, None),
    "mscale_all_dim": (float, None),
    "truncate": (bool, None),
    "low_freq_factor": (float, None),
    "high_freq_factor": (float, None),
}


_POSITIVE_KEYS = {"factor", "rope_theta", "original_max_position_embeddings", "attention_factor", "beta_fast",
                  "beta_slow", "low_freq_factor", "high_freq_factor"}


def resolve_rope_parameters(scheme: str, rotary: RotaryConfig, overrides: dict, allowed=None) -> dict:
    """The complete rope_parameters dict a scheme rotates with: the checkpoint's, changed by the user's overrides.

    Overriding `scaling` with another variant drops the checkpoint's scaling keys; overriding individual keys
    (`factor=4`) keeps the rest. `allowed` restricts the variants (RePo: only length-independent ones).
    """
    own = {k: v for k, v in rotary.rope_parameters.items() if k not in ("rope_theta", "partial_rotary_factor")}
    own_type = own.get("rope_type", "default")
    scaling = overrides.get("scaling")
    rope_type = own_type if scaling is None else ("default" if scaling == "none" else scaling)
    valid = [t for t in ROPE_VARIANTS if allowed is None or t in allowed]
    if rope_type not in valid:
        names = ", ".join("none" if t == "default" else t for t in valid)
        where = "scaling" if scaling is not None else "the checkpoint's rope_type"
        raise SchemeError(f"scheme {scheme}: {where} {rope_type!r} is not supported (valid: {names})")

    params = dict(own) if rope_type == own_type else {}
    required, optional = VARIANT_KEYS[rope_type]
    for key, value in overrides.items():
        if key in ("scaling", "theta") or value is None:
            continue
        if key not in required + optional:
            takes = ", ".join(required + optional) or "no parameters"
            raise SchemeError(f"scheme {scheme}: {key} does not apply to scaling={rope_type} (it takes {takes})")
        params[key] = value
    params["rope_type"] = rope_type
    params["rope_theta"] = overrides.get("theta") or rotary.rope_theta
    params["partial_rotary_factor"] = rotary.partial_rotary_factor
    if "original_max_position_embeddings" in optional:
        params.setdefault("original_max_position_embeddings", rotary.max_position_embeddings)
    for key, value in params.items():  # a factor of 0, -1 or NaN would silently rotate every position wrong
        if key in _POSITIVE_KEYS and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value <= 0):
            raise SchemeError(f"scheme {scheme}: {key} must be a positive finite number, got {value!r}")
        if key in ("mscale", "mscale_all_dim") and value is not None and not math.isfinite(value):
            raise SchemeError(f"scheme {scheme}: {key} must be finite, got {value!r}")
    missing = [key for key in required if params.get(key) is None]
    if missing:
        raise SchemeError(f"scheme {scheme}: scaling={rope_type} needs {missing[0]} "
                          f"(e.g. {scheme},scaling={rope_type},{missing[0]}=...)")
    return params


def rope_frequencies(rotary: RotaryConfig, params: dict, seq_len: int | None = None):
    """(inv_freq fp32 [R/2], attention_scaling) for a dict from resolve_rope_parameters."""
    return ROPE_VARIANTS[params["rope_type"]](rotary, params, seq_len)
