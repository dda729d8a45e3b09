"""Per-layer position modules: what one attention layer rotates its queries and keys by.

A scheme builds one PositionLayer per layer (Scheme.position_layers). The model core knows nothing else about a kind
of layer than what this interface says:

  input_maps         {name: width}: linear maps of the attention input the layer needs. The model computes them in the
                     same matrix product as q, k and v (they are rows of the fused q/k/v weight); checkpoints store
                     them as model.layers.{i}.self_attn.{name}.weight.
  own parameters     ordinary nn.Parameters of the module; checkpoints store them under model.layers.{i}.self_attn.
                     with the module's attribute path (e.g. final_map.weight).
  positions(maps, position_ids) -> what q and k rotate by: None (no rotation), [B, N] (one position per token) or
                     [B, N, P] fp32 (one per token and position head; P divides the KV heads). position_ids [B, N]
                     are the integer positions of this forward's tokens: 0..N-1 (counted from the first real token
                     under left padding) at a prefill, the cache offset onwards at a decode step. Keys are cached
                     after rotation, so a decode step computes positions for its new tokens only, from those tokens.
  reset_parameters(maps)  initialise the own parameters and the given rows of the input maps (fresh_init, scratch).

Subclassing registers the kind by its `kind` name in POSITION_LAYERS (what detection and warnings look up).
"""
import torch
from torch import nn

from .base import PositionShape, SchemeError

POSITION_LAYERS: dict = {}  # kind -> PositionLayer subclass


class PositionLayer(nn.Module):
    kind = ""        # the name in layer maps, manifests and `eval.py info`
    title = ""       # how messages name its weights ("RePo")
    rotates = True   # False: q and k are never rotated (the model then skips computing frequencies)
    weight_names: tuple = ()  # checkpoint leaf names of its weights (input maps and own), for unused-weight warnings

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            known = POSITION_LAYERS.get(cls.kind)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise SchemeError(f"position layer kind {cls.kind!r} is already defined by {known.__qualname__}")
            POSITION_LAYERS[cls.kind] = cls

    def __init__(self, shape: PositionShape):
        super().__init__()
        self.shape = shape
        self.input_maps: dict[str, int] = {}

    def positions(self, maps: list, position_ids: torch.Tensor):
        raise NotImplementedError

    def reset_parameters(self, maps: dict):
        """Initialise own parameters and `maps` ({name: weight rows [width, hidden]}); nothing to do by default."""

    def num_parameters(self) -> int:
        """Own parameters plus the input-map rows this layer adds to the q/k/v product."""
        own = sum(p.numel() for p in self.parameters())
        return own + sum(self.input_maps.values()) * self.shape.hidden_size


class NoPositions(PositionLayer):
    """NoPE: q and k are not rotated."""
    kind, rotates = "nope", False

    def positions(self, maps, position_ids):
        return None


class IntegerRotary(PositionLayer):
    """RoPE: each token rotates by its integer position."""
    kind = "rope"

    def positions(self, maps, position_ids):
        return position_ids
