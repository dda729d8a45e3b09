"""What every part of position_schemes shares: the error type and the facts a model hands over."""
from dataclasses import dataclass, field


class SchemeError(ValueError):
    """A bad scheme name, parameter or checkpoint pe_config: the message names the key and the valid choices."""


@dataclass
class RotaryConfig:
    """The rotary facts of a checkpoint, built by the model from its config.json.

    rope_parameters is the config's own scaling dict in transformers 5.x form (`rope_type`, `factor`, ...;
    `{"rope_type": "default"}` when unscaled). rope_theta is kept apart because older configs store it at top level.
    """
    head_dim: int
    rope_theta: float = 10_000.0
    max_position_embeddings: int = 2048
    rope_parameters: dict = field(default_factory=lambda: {"rope_type": "default"})
    partial_rotary_factor: float = 1.0

    @property
    def rotary_dim(self) -> int:
        """R: the leading dims of each head that rotate (the rest pass through)."""
        return int(self.head_dim * self.partial_rotary_factor)


@dataclass(frozen=True)
class PositionShape:
    """The attention shape a position layer is built for."""
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


def format_layer_kinds(kinds: list[str]) -> str:
    """['rope'] * 5 + ['repo'] * 11 -> 'layers 0-4 rope, 5-15 repo'."""
    runs = []  # [first, last, kind]
    for i, kind in enumerate(kinds):
        if runs and runs[-1][2] == kind:
            runs[-1][1] = i
        else:
            runs.append([i, i, kind])
    parts = [f"{a}-{b} {kind}" if a != b else f"{a} {kind}" for a, b, kind in runs]
    return "layers " + ", ".join(parts) if parts else "no layers"


def format_layer_ids(ids) -> str:
    """[5, 6, 7, 9] -> '5-7, 9' (for error messages)."""
    ids = sorted(ids)
    runs = []
    for i in ids:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)
