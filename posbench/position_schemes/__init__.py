"""Positional schemes for posbench's model core. See README.md in this folder."""
from .base import PositionShape, RotaryConfig, SchemeError, format_layer_ids, format_layer_kinds
from .frequencies import ROPE_VARIANTS, resolve_rope_parameters, rope_frequencies
from .layers import POSITION_LAYERS, IntegerRotary, NoPositions, PositionLayer
from .registry import (
    detect_scheme,
    get_scheme,
    list_schemes,
    parse_scheme_spec,
    repo_weight_layers,
    sakana_pe_config,
)
from .repo import REPO_WEIGHTS, LearnedRotary, RepoPositions
from .schemes import SCHEMES, HybridScheme, NopeScheme, RepoScheme, RopeScheme, Scheme

__all__ = [
    "POSITION_LAYERS", "IntegerRotary", "LearnedRotary", "NoPositions", "PositionLayer", "PositionShape",
    "REPO_WEIGHTS", "ROPE_VARIANTS", "SCHEMES", "HybridScheme", "NopeScheme", "RepoPositions",
    "RepoScheme", "RopeScheme", "RotaryConfig", "Scheme", "SchemeError", "detect_scheme", "format_layer_ids",
    "format_layer_kinds", "get_scheme", "list_schemes", "parse_scheme_spec", "repo_weight_layers",
    "resolve_rope_parameters", "rope_frequencies", "sakana_pe_config",
]
