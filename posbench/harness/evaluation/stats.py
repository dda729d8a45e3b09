"""Intervals that stay honest at small n, and paired differences between two models on the same samples.

0/1 scores get score-based intervals (Wilson for one mean, Newcombe's method 10 for a paired difference): at n = 5
all-correct they read [56.6, 100], not [100, 100]. Other scores get a seeded percentile bootstrap, stratified by
task for a mean of tasks. Results carry the method's name, for the tables to state. Scores here are fractions (0-1).
"""
import math

import numpy as np

Z95 = 1.959963984540054
RESAMPLES = 2000


def is_binary(values) -> bool:
    return len(values) > 0 and bool(np.isin(values, (0.0, 1.0)).all())


def wilson(successes, n, z=Z95) -> tuple:
    """(low, high) Wilson score interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_mean(strata, seed=0, resamples=RESAMPLES) -> tuple:
    """(low, high) 95% percentile bootstrap of the unweighted mean of the strata's means (one stratum per task),
    resampling within each stratum."""
    rng = np.random.default_rng(seed)
    means = np.zeros(resamples)
    for values in strata:
        values = np.asarray(values, dtype=float)
        means += values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    means /= len(strata)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


def mean_interval(values, seed=0) -> dict:
    """{"mean", "low", "high", "n", "method"} of one cell's scores."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0, "method": ""}
    (low, high), method = ((wilson(values.sum(), values.size), "Wilson") if is_binary(values)
                           else (bootstrap_mean([values], seed), "bootstrap"))
    return {"mean": float(values.mean()), "low": low, "high": high, "n": int(values.size), "method": method}


def newcombe_paired(a, b, z=Z95) -> tuple:
    """(low, high) of mean(a) - mean(b) for paired 0/1 scores: Newcombe (1998) method 10, from the two Wilson
    intervals and the correlation of the pairs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n, p1, p2 = a.size, a.mean(), b.mean()
    (l1, u1), (l2, u2) = wilson(a.sum(), n, z), wilson(b.sum(), n, z)
    margins = a.sum() * (n - a.sum()) * b.sum() * (n - b.sum())
    phi = (np.mean(a * b) - p1 * p2) * n * n / math.sqrt(margins) if margins > 0 else 0.0   # (ad - bc) / sqrt(...)
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, p1 - p2 - below), min(1.0, p1 - p2 + above))


def paired_difference(pairs, seed=0) -> dict:
    """{"diff", "low", "high", "n", "method"} of mean(a) - mean(b) over tasks: `pairs` is [(a scores, b scores)]
    per task, aligned sample by sample. The difference is the unweighted mean over tasks of the per-task mean
    differences (so it equals the difference of the group scores). 0/1 scores with the same n per task pool into one
    Newcombe interval (the pooled mean is then the mean of task means); anything else is a stratified bootstrap."""
    pairs = [(np.asarray(a, dtype=float), np.asarray(b, dtype=float)) for a, b in pairs if len(a)]
    if not pairs:
        return {"diff": math.nan, "low": math.nan, "high": math.nan, "n": 0, "method": ""}
    diff = float(np.mean([a.mean() - b.mean() for a, b in pairs]))
    n = sum(a.size for a, _ in pairs)
    if all(is_binary(a) and is_binary(b) for a, b in pairs) and len({a.size for a, _ in pairs}) == 1:
        low, high = newcombe_paired(np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs]))
        method = "Newcombe paired"
    else:
        (low, high), method = bootstrap_mean([a - b for a, b in pairs], seed), "paired bootstrap"
    return {"diff": diff, "low": low, "high": high, "n": n, "method": method}
