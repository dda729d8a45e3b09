"""What learned positions look like, per layer and head: their range, how well they follow token order, and the
pattern class of each head.

The RePo paper (arXiv 2512.14391, its analysis section) describes heads whose positions stay nearly constant (as NoPE
does), heads whose positions grow with the token index (as RoPE's do), and heads that mix the two (flat stretches and
jumps); it gives no numeric rule. Ours, per head and sample, over the prompt's tokens:
  monotonic  |Spearman rank correlation with the token index| >= 0.9
  constant   otherwise, and the spread (5th to 95th percentile of positions) is below 5% of the prompt's token count,
             i.e. the head places the whole prompt within a twentieth of the span integer positions would take
  mixed      everything else
"""
import torch

MONOTONIC_RHO = 0.9
CONSTANT_SPREAD = 0.05
CLASSES = ("constant", "monotonic", "mixed")


def rank_correlation(values: torch.Tensor) -> torch.Tensor:
    """Spearman's rho of each column of values [N, P] with 0..N-1 (average ranks for ties); 0 for a constant
    column."""
    n = values.shape[0]
    ranks = torch.empty_like(values, dtype=torch.float64)
    for p in range(values.shape[1]):
        col = values[:, p].double()
        order = torch.argsort(col, stable=True)
        r = torch.empty(n, dtype=torch.float64)
        r[order] = torch.arange(n, dtype=torch.float64)
        # ties share their average rank
        uniq, inverse = torch.unique(col, return_inverse=True)
        if len(uniq) < n:
            sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, r)
            counts = torch.bincount(inverse, minlength=len(uniq)).double()
            r = (sums / counts)[inverse]
        ranks[:, p] = r
    index = torch.arange(n, dtype=torch.float64)
    index = index - index.mean()
    centred = ranks - ranks.mean(0)
    denom = centred.norm(dim=0) * index.norm()
    rho = (centred * index[:, None]).sum(0) / denom.clamp(min=1e-12)
    return torch.where(denom > 0, rho, torch.zeros_like(rho))


def head_stats(positions: torch.Tensor) -> list:
    """positions [N, P] (one layer, one sample) -> per head {range, spread, rho, class}."""
    positions = positions.double()
    n = positions.shape[0]
    rho = rank_correlation(positions)
    lo, hi = positions.min(0).values, positions.max(0).values
    q = torch.quantile(positions, torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
    spread = q[1] - q[0]
    out = []
    for p in range(positions.shape[1]):
        if abs(float(rho[p])) >= MONOTONIC_RHO:
            cls = "monotonic"
        elif float(spread[p]) < CONSTANT_SPREAD * n:
            cls = "constant"
        else:
            cls = "mixed"
        out.append({"range": float(hi[p] - lo[p]), "spread": float(spread[p]), "rho": float(rho[p]),
                    "min": float(lo[p]), "max": float(hi[p]), "class": cls})
    return out


def median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summarize_heads(per_sample: list) -> dict:
    """per_sample: [{layer: [head stats]}] at one length -> per layer and overall medians and class shares."""
    layers = sorted({layer for sample in per_sample for layer in sample})
    out = {"layers": {}}
    everything = []
    for layer in layers:
        heads = [h for sample in per_sample for h in sample.get(layer, [])]
        everything += heads
        num_heads = len(per_sample[0][layer])
        out["layers"][str(layer)] = {
            "range_median": median([h["range"] for h in heads]),
            "spread_median": median([h["spread"] for h in heads]),
            "rho_median": median([h["rho"] for h in heads]),
            "per_head": [{"range_median": median([s[layer][p]["range"] for s in per_sample]),
                          "rho_median": median([s[layer][p]["rho"] for s in per_sample]),
                          "class": _majority([s[layer][p]["class"] for s in per_sample])}
                         for p in range(num_heads)],
        }
    out["range_median"] = median([h["range"] for h in everything])
    out["spread_median"] = median([h["spread"] for h in everything])
    out["rho_median"] = median([h["rho"] for h in everything])
    out["abs_rho_median"] = median([abs(h["rho"]) for h in everything])
    out["class_share"] = {c: (sum(h["class"] == c for h in everything) / len(everything) if everything else None)
                          for c in CLASSES}
    return out


def _majority(classes: list) -> str:
    return max(CLASSES, key=lambda c: (classes.count(c), -CLASSES.index(c)))
