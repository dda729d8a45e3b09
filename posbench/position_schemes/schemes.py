"""The schemes: per layer, whether q and k rotate by integer positions (rope), not at all (nope) or by learned
per-head positions (repo), and with which RoPE frequencies.

Every scheme answers the same questions:
  layer_kinds(num_layers)            -> a kind per layer ("rope", "nope", "repo" or a kind of its own)
  position_layers(shape, num_layers) -> the PositionLayer module of each layer (posbench/position_schemes/layers.py)
  rope_parameters(rotary)            -> the resolved transformers-style rope_parameters dict (validates early)
  frequencies(rotary, seq_len=None, layer_kind="rope") -> (inv_freq fp32 [R/2], attention_scaling) for that kind
  describe()                         -> {"name": ..., "params": {...}} for manifests
  checkpoint_spec()                  -> what a saved checkpoint records to come back as this scheme
Subclassing Scheme with a `name` registers it in SCHEMES, so `get_scheme`, specs and checkpoints find it.
"""
from .base import PositionShape, RotaryConfig, SchemeError, format_layer_ids
from .frequencies import LENGTH_DEPENDENT, SCALING_PARAMS, resolve_rope_parameters, rope_frequencies
from .layers import POSITION_LAYERS, PositionLayer
from .repo import LearnedRotary

SCHEMES: dict = {}  # name -> Scheme subclass, in definition order


def _check_type(scheme: str, key: str, value, expected):
    """value as the declared type (an int is fine where a float is expected); SchemeError otherwise."""
    if expected is None or value is None:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(expected, expected)
    raise SchemeError(f"scheme {scheme}: {key} must be {wanted}, got {value!r}")


class Scheme:
    """Base class. Subclasses set `name`, `summary` (one line for `eval.py list schemes`) and `param_types`
    (key -> (type or None, default)); instances hold the resolved values in `self.params`."""
    name = ""
    summary = ""
    param_types: dict = SCALING_PARAMS
    allowed_scaling = None  # None: every RoPE variant
    creation_params = ()    # params that only matter when weights are created; checkpoints do not record them

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            known = SCHEMES.get(cls.name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise SchemeError(f"scheme {cls.name!r} is already defined by {known.__qualname__}")
            SCHEMES[cls.name] = cls

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.param_types))
        if unknown:
            valid = ", ".join(self.param_types) or "none"
            raise SchemeError(f"scheme {self.name}: unknown parameter {unknown[0]!r} (valid: {valid})")
        self.params = {key: default for key, (_, default) in self.param_types.items()}
        for key, value in params.items():
            self.params[key] = _check_type(self.name, key, value, self.param_types[key][0])

    def layer_kinds(self, num_layers: int) -> list[str]:
        raise NotImplementedError

    def position_layers(self, shape: PositionShape, num_layers: int) -> list[PositionLayer]:
        return [self.position_layer(kind, shape) for kind in self.layer_kinds(num_layers)]

    def position_layer(self, kind: str, shape: PositionShape) -> PositionLayer:
        """The module of one layer of this kind; override to pass the scheme's parameters to it."""
        return POSITION_LAYERS[kind](shape)

    def rope_parameters(self, rotary: RotaryConfig) -> dict:
        overrides = {k: v for k, v in self.params.items() if k in SCALING_PARAMS}
        return resolve_rope_parameters(self.name, rotary, overrides, self.allowed_scaling)

    def length_dependent(self, rotary: RotaryConfig) -> bool:
        """Whether frequencies() must be recomputed per forward from the current length (dynamic NTK, LongRoPE)."""
        return self.rope_parameters(rotary)["rope_type"] in LENGTH_DEPENDENT

    def frequencies(self, rotary: RotaryConfig, seq_len: int | None = None, layer_kind: str = "rope"):
        """(inv_freq fp32 [R/2], attention_scaling) for the layers of `layer_kind` ("rope" or "repo").
        seq_len = max position + 1, used by length-dependent variants."""
        return rope_frequencies(rotary, self.rope_parameters(rotary), seq_len)

    def same_frequencies(self) -> bool:
        """Whether every rotating layer uses the same frequencies (only RePo's scaling_target can split them)."""
        return True

    def describe(self) -> dict:
        return {"name": self.name, "params": {k: v for k, v in self.params.items() if v is not None}}

    def checkpoint_spec(self) -> str:
        """The spec a checkpoint records (config.json posbench_scheme): the layers' parameters only, since the RoPE
        scaling is in the config's rope_parameters already and creation-only parameters are spent."""
        skip = set(SCALING_PARAMS) | set(self.creation_params)
        return self.spec({k: v for k, v in self.describe()["params"].items() if k not in skip})

    def spec(self, params: dict | None = None) -> str:
        """The `NAME[,key=value...]` string that rebuilds this scheme through parse_scheme_spec."""
        parts = [self.name]
        for key, value in (self.describe()["params"] if params is None else params).items():
            if isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, (list, tuple)):
                value = "[" + ",".join(map(str, value)) + "]"
            parts.append(f"{key}={value}")
        return ",".join(parts)

    def __repr__(self) -> str:
        return f"<scheme {self.spec()}>"


class RopeScheme(Scheme):
    name = "rope"
    summary = ("integer RoPE in every layer; scaling from the checkpoint or scaling=none|linear|dynamic|yarn|llama3|"
               "longrope with factor=, original_max_position_embeddings=, theta=, ...")

    def layer_kinds(self, num_layers):
        return ["rope"] * num_layers


class NopeScheme(Scheme):
    name = "nope"
    summary = "no rotation in any layer (what a checkpoint with dynamic_pe_mode 'nope' and no layer ids runs)"
    param_types = {}

    def layer_kinds(self, num_layers):
        return ["nope"] * num_layers


def _parse_layer_list(scheme: str, key: str, value) -> list[int]:
    """[3, 7], 3 or "3,7" -> [3, 7]."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    items = value.split(",") if isinstance(value, str) else value
    try:
        return sorted({int(str(v).strip()) for v in items if str(v).strip()})
    except (TypeError, ValueError):
        raise SchemeError(f"scheme {scheme}: {key} must be layer numbers like [3,7] or '3,7', got {value!r}") from None


class HybridScheme(Scheme):
    name = "hybrid"
    summary = ("RoPE with some NoPE layers: pattern=RRRN repeats over depth (N = NoPE: layers 3, 7, ...) "
               "or nope_layers=[3,7]; RoPE layers take rope's scaling parameters")
    param_types = {"pattern": (str, None), "nope_layers": (None, None)} | SCALING_PARAMS

    def __init__(self, **params):
        super().__init__(**params)
        pattern, layers = self.params["pattern"], self.params["nope_layers"]
        if (pattern is None) == (layers is None):
            raise SchemeError("scheme hybrid: give exactly one of pattern (e.g. pattern=RRRN) or nope_layers "
                              "(e.g. nope_layers=[3,7])")
        if pattern is not None:
            pattern = pattern.upper()
            if not pattern or set(pattern) - {"R", "N"}:
                raise SchemeError(f"scheme hybrid: pattern must be letters R (RoPE) and N (NoPE), got {pattern!r}")
            self.params["pattern"] = pattern
        else:
            self.params["nope_layers"] = _parse_layer_list(self.name, "nope_layers", layers)

    def layer_kinds(self, num_layers):
        pattern = self.params["pattern"]
        if pattern is not None:
            return ["nope" if pattern[i % len(pattern)] == "N" else "rope" for i in range(num_layers)]
        nope = set(self.params["nope_layers"])
        outside = sorted(i for i in nope if not 0 <= i < num_layers)
        if outside:
            raise SchemeError(f"scheme hybrid: nope_layers {format_layer_ids(outside)} outside the model's "
                              f"layers 0-{num_layers - 1}")
        return ["nope" if i in nope else "rope" for i in range(num_layers)]


class RepoScheme(Scheme):
    """RePo (Sakana AI, arXiv 2512.14391): layers >= start_layer rotate each head by a position the layer predicts
    from its own input (posbench.position_schemes.repo.RepoPositions); earlier layers use integer RoPE. Scaling, if any,
    rescales the frequencies of both kinds of layer by default, as the authors' vLLM path does with YaRN at 8K/16K;
    scaling_target=integer or learned restricts it to one kind (the paper's ablation), the other keeping plain RoPE.
    """
    name = "repo"
    summary = ("learned per-head positions in layers >= start_layer (default 5), RoPE below; scaling=linear|yarn "
               "applies to both kinds of layer, or scaling_target=integer|learned to one; fresh_init=true initialises "
               "RePo weights the checkpoint lacks (init_std 0.02)")
    param_types = {"start_layer": (int, 5), "fresh_init": (bool, False), "init_std": (float, 0.02),
                   "scaling_target": (str, "both")} | SCALING_PARAMS
    creation_params = ("fresh_init", "init_std")
    SCALING_TARGETS = {"both": ("rope", "repo"), "integer": ("rope",), "learned": ("repo",)}
    # Learned positions are not token counts, so variants that switch on the current length make no sense here.
    allowed_scaling = ("default", "linear", "yarn", "llama3")

    def __init__(self, **params):
        super().__init__(**params)
        if self.params["start_layer"] < 0:
            raise SchemeError(f"scheme repo: start_layer must be >= 0, got {self.params['start_layer']}")
        if self.params["init_std"] <= 0:
            raise SchemeError(f"scheme repo: init_std must be > 0, got {self.params['init_std']}")
        if self.params["scaling_target"] not in self.SCALING_TARGETS:
            raise SchemeError(f"scheme repo: scaling_target must be one of {', '.join(self.SCALING_TARGETS)}, "
                              f"got {self.params['scaling_target']!r}")

    def frequencies(self, rotary, seq_len=None, layer_kind="rope"):
        if layer_kind in self.SCALING_TARGETS[self.params["scaling_target"]]:
            return super().frequencies(rotary, seq_len, layer_kind)
        # Not targeted: plain RoPE with the same theta (a theta override is the base, not a scaling).
        overrides = {"scaling": "none", "theta": self.params["theta"]}
        return rope_frequencies(rotary, resolve_rope_parameters(self.name, rotary, overrides), seq_len)

    def same_frequencies(self):
        return self.params["scaling_target"] == "both"

    def layer_kinds(self, num_layers):
        start = self.params["start_layer"]
        if start >= num_layers:
            raise SchemeError(f"scheme repo: start_layer {start} leaves no RePo layer in a {num_layers}-layer model "
                              f"(valid: 0-{num_layers - 1})")
        return ["rope" if i < start else "repo" for i in range(num_layers)]

    def position_layer(self, kind, shape):
        if kind == LearnedRotary.kind:
            return LearnedRotary(shape, init_std=self.params["init_std"])
        return super().position_layer(kind, shape)

    def describe(self):
        # init_std and fresh_init only matter when weights are created; keep them in the manifest only then.
        out = super().describe()
        if not self.params["fresh_init"]:
            out["params"].pop("fresh_init")
            out["params"].pop("init_std")
        if self.params["scaling_target"] == "both":  # the default, and what every older manifest meant
            out["params"].pop("scaling_target")
        return out

