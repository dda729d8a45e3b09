"""RePo's position module (Sakana AI, "Language Models with Context Re-Positioning", arXiv 2512.14391).

    z = final_map(SiLU(gate_map(h)) * content_map(h))        gate_map, content_map: d -> d/8;  final_map: d/8 -> P

h is the layer's attention input (OLMo-2: the un-normalised residual stream, as in the authors' code; pre-norm
models: the normed attention input, the closest analogue). z[b, t, p] is one real, unconstrained, absolute position
per token and position head; it replaces the integer position in that layer's RoPE.

P is the number of KV heads. Sakana's models are MHA (P = heads). Under grouped-query attention each key head is
shared by a group of query heads, so we give the group one position: the query heads of group g rotate by z[..., g]
like their key head does, which keeps q.k a function of the position difference. (The authors' code does not cover
GQA; this is our design choice.)

LearnedRotary is the layer the model runs: gate_map and content_map are rows of the attention's fused q/k/v product,
final_map is its own, and the formula goes through posbench.kernels.fused.repo_positions (one Triton pass on GPU).
RepoPositions is the plain module with the same formula, the reference the kernels and the layer are tested against.
"""
import torch
from torch import nn

from posbench.kernels.fused import repo_positions

from .base import PositionShape
from .layers import PositionLayer

# Sakana's weight names under model.layers.{i}.self_attn.
REPO_WEIGHTS = ("gate_map", "content_map", "final_map")


def _trunc_normal_(weight: torch.Tensor, std: float):
    """The authors' init: normal(0, std) truncated at 3 std."""
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)


class LearnedRotary(PositionLayer):
    """RePo: one learned position per token and KV head, predicted from the attention input."""
    kind, title, weight_names = "repo", "RePo", REPO_WEIGHTS

    def __init__(self, shape: PositionShape, init_std: float = 0.02):
        super().__init__(shape)
        mid = shape.hidden_size // 8
        self.input_maps = {"gate_map": mid, "content_map": mid}
        self.final_map = nn.Linear(mid, shape.num_kv_heads, bias=False)
        self.init_std = init_std

    def positions(self, maps, position_ids):
        gate, content = maps
        return repo_positions(gate, content, self.final_map.weight)

    @torch.no_grad()
    def reset_parameters(self, maps: dict):
        for weight in (maps["gate_map"], maps["content_map"], self.final_map.weight):
            _trunc_normal_(weight, self.init_std)


class RepoPositions(nn.Module):
    def __init__(self, hidden_size: int, num_position_heads: int, init_std: float = 0.02):
        super().__init__()
        mid = hidden_size // 8
        self.gate_map = nn.Linear(hidden_size, mid, bias=False)
        self.content_map = nn.Linear(hidden_size, mid, bias=False)
        self.final_map = nn.Linear(mid, num_position_heads, bias=False)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.02):
        """The authors' init: normal(0, std) truncated at 3 std, every weight."""
        for linear in (self.gate_map, self.content_map, self.final_map):
            _trunc_normal_(linear.weight, std)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, N, d] in the model dtype -> positions [B, N, P] fp32."""
        return self.from_maps(self.gate_map(h), self.content_map(h))

    def from_maps(self, gate: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Positions from gate_map(h) and content_map(h) already computed.

        The linears run in the model dtype like the authors' training; only the result is upcast, since angles
        (position * inv_freq) must be formed in fp32.
        """
        act = nn.functional.silu(gate) * content
        return self.final_map(act).float()
