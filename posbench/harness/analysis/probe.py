"""The hook `eval.py analyze` passes into the model core's forward (Transformer.forward(probe=...)): it replaces
the positions of chosen layers (the ablations) and reads the rotated q and k of every layer to measure attention.

Attention is recomputed here eagerly, in fp32, from q and k, one chunk of query rows at a time, so a 16K-token prompt
needs [heads, chunk, 16K] floats at a time and never the full [heads, 16K, 16K] matrix. The model's own attention
(SDPA or a fused kernel) is left as it is: what the model computes does not change when a probe watches.
"""
import math

import torch

# Replacements for the learned positions of RePo layers; "nope" switches chosen layers off instead (no rotation).
POSITION_ABLATIONS = ("zeros", "shuffled", "index")
MAX_DISTANCE = 1 << 20   # the locality bins are fixed, so samples of slightly different lengths add up


def distance_bins(max_distance: int) -> list:
    """[(lo, hi)] inclusive token distances: 0, 1, 2-3, 4-7, ... up to max_distance (log2 bins: attention falls
    off over orders of magnitude of distance, so equal-width bins would put everything in the first one)."""
    bins, lo = [(0, 0)], 1
    while lo <= max_distance:
        bins.append((lo, min(2 * lo - 1, max_distance)))
        lo *= 2
    return bins


class Probe:
    """One forward's hook. `replace` maps layer -> "zeros" | "shuffled" | "index" (RePo layers) or "nope" (any
    layer). With `spans` ({"needle": LongTensor of token indices, "distractor": ..., "context": ...}) and
    `query_from` (the first query row, an absolute token index) it measures, per layer, the attention those query
    rows pay to each span; with `locality_rows` > 0 it also measures mean attention against token distance on that
    many prompt rows (evenly spaced) of a prefill.
    """

    def __init__(self, replace=None, shuffle_seed: int = 0, spans=None, query_from=None, locality_rows: int = 0,
                 chunk: int = 128):
        self.replace = dict(replace or {})
        self.shuffle_seed = shuffle_seed
        self.spans = spans
        self.span_sizes = {name: len(index) for name, index in (spans or {}).items()}
        self.query_from = query_from
        self.locality_rows = locality_rows
        self.chunk = chunk
        self.span_mass = {}      # layer -> {span: [sum over (query row, head) of attention on the span], rows}
        self.locality = {}       # layer -> (sum of attention per distance bin [bins], pair count per bin [bins])

    # ---- positions -------------------------------------------------------------------------------------------------

    def positions(self, layer: int, kind: str, positions, step):
        how = self.replace.get(layer)
        if how is None:
            return positions
        if how == "nope":
            return None
        if kind != "repo":
            raise ValueError(f"layer {layer} is {kind}: only learned positions can be replaced by {how}")
        if how == "zeros":
            return torch.zeros_like(positions)
        if how == "index":
            return step.position_ids.to(positions.dtype)[..., None].expand_as(positions).contiguous()
        if how == "shuffled":
            if positions.shape[1] == 1:   # a decoded token: nothing to shuffle it with, it keeps its own
                return positions
            gen = torch.Generator().manual_seed(self.shuffle_seed * 1000 + layer)
            order = torch.randperm(positions.shape[1], generator=gen).to(positions.device)
            return positions[:, order]
        raise ValueError(f"unknown position replacement {how!r} (valid: {', '.join(POSITION_ABLATIONS)}, nope)")

    # ---- attention -------------------------------------------------------------------------------------------------

    def attention(self, layer: int, q: torch.Tensor, k: torch.Tensor):
        """q [1, H, n, D] for the n newest tokens, k [1, H_kv, T, D] for all T tokens so far (cache included)."""
        if self.spans is None and not self.locality_rows:
            return
        n, T = q.shape[2], k.shape[2]
        first = T - n                                      # absolute index of q's first row
        rows = []
        if self.spans is not None and self.query_from is not None:
            rows += list(range(max(first, self.query_from), T))
        locality = []
        if self.locality_rows and n > 1:                   # prefill: evenly spaced prompt rows
            count = min(self.locality_rows, n)
            locality = sorted({first + round(i * (n - 1) / max(count - 1, 1)) for i in range(count)})
        wanted = sorted(set(rows) | set(locality))
        if not wanted:
            return
        in_rows, in_locality = set(rows), set(locality)
        k = k[0].float().repeat_interleave(q.shape[1] // k.shape[1], dim=0)   # [H, T, D]
        scale = 1 / math.sqrt(q.shape[-1])
        keys = torch.arange(T, device=q.device)
        for start in range(0, len(wanted), self.chunk):
            chunk = torch.tensor(wanted[start:start + self.chunk], device=q.device)
            scores = (q[0, :, chunk - first].float() @ k.transpose(1, 2)) * scale      # [H, c, T]
            scores.masked_fill_(keys[None, None, :] > chunk[None, :, None], float("-inf"))
            probs = scores.softmax(-1)
            pick = [i for i, r in enumerate(chunk.tolist()) if r in in_rows]
            if pick:
                self._add_span_mass(layer, probs[:, pick])
            pick = [i for i, r in enumerate(chunk.tolist()) if r in in_locality]
            if pick:
                self._add_locality(layer, probs[:, pick], chunk[pick])

    def _add_span_mass(self, layer: int, probs: torch.Tensor):
        """probs [H, rows, T]: per span, the attention mass summed over its tokens, kept per head."""
        out = self.span_mass.setdefault(layer, {"rows": 0})
        out["rows"] += probs.shape[1]
        for name, index in self.spans.items():
            index = index[index < probs.shape[-1]].to(probs.device)
            mass = probs[..., index].sum(-1).sum(-1) if len(index) else probs.new_zeros(probs.shape[0])   # [H]
            out[name] = out.get(name, 0) + mass.cpu()

    def _add_locality(self, layer: int, probs: torch.Tensor, rows: torch.Tensor):
        """probs [H, r, T] for query rows `rows`: attention summed per distance bin, and how many (row, key) pairs
        each bin holds, so that sum / count is the mean attention a key at that distance gets."""
        T = probs.shape[-1]
        bins = distance_bins(MAX_DISTANCE)
        distance = rows[:, None] - torch.arange(T, device=rows.device)[None, :]          # [r, T], < 0: future
        edges = torch.tensor([hi for _, hi in bins], device=rows.device)
        which = torch.bucketize(distance.clamp(min=0), edges)                            # bin index per pair
        which[distance < 0] = len(bins)                                                  # future keys: dropped
        sums = torch.zeros(probs.shape[0], len(bins) + 1, device=probs.device)
        sums.scatter_add_(1, which.flatten()[None].expand(probs.shape[0], -1), probs.flatten(1))
        counts = torch.bincount(which.flatten(), minlength=len(bins) + 1).float()
        old_sums, old_counts = self.locality.get(layer, (0, 0))
        self.locality[layer] = (old_sums + sums[:, :-1].mean(0).cpu(), old_counts + counts[:-1].cpu())
