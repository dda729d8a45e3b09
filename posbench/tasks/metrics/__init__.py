"""Metrics and text filters shared by several task families. Family-specific metrics live beside their family
(e.g. posbench/tasks/ruler/metrics.py) and register themselves the same way."""
from posbench.tasks.registry import register_filter, register_metric


@register_filter("strip")
def strip(text: str) -> str:
    return text.strip()


@register_filter("first_line")
def first_line(text: str) -> str:
    """LongBench's rule for few-shot datasets: the first line after leading newlines."""
    return text.lstrip("\n").split("\n")[0]


@register_metric("acc")
def acc(loglikelihoods, sample) -> float:
    """Multiple choice: 1 if the gold continuation has the highest summed log-likelihood (lm-eval `acc`)."""
    best = max(range(len(loglikelihoods)), key=lambda i: loglikelihoods[i])
    return float(best == sample.gold_index)


@register_metric("acc_norm")
def acc_norm(loglikelihoods, sample) -> float:
    """Multiple choice: as `acc` after dividing each log-likelihood by its continuation's length in characters,
    excluding the leading delimiter (lm-eval `acc_norm`, OLMES `acc_per_char`)."""
    lengths = [max(len(c.lstrip(" ")), 1) for c in sample.choices]
    best = max(range(len(loglikelihoods)), key=lambda i: loglikelihoods[i] / lengths[i])
    return float(best == sample.gold_index)
