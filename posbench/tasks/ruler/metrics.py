"""RULER's scoring (`scripts/eval/evaluate.py`, `scripts/eval/synthetic/constants.py`).

A prediction is the generated text only; it is stripped, control characters become newlines, and it is stripped
again (YAML `postprocess: [ruler_postprocess]`). Matching is a case-insensitive plain substring test, no word
boundaries. Task scores are 100 x the mean, rounded to 2 decimals (the schema's aggregate).
"""
import re

from posbench.tasks.registry import register_filter, register_metric

_CONTROL = re.compile(r"[\x00-\x1f]")


@register_filter("ruler_postprocess")
def ruler_postprocess(text: str) -> str:
    return _CONTROL.sub("\n", text.strip()).strip()


@register_metric("string_match_all")
def string_match_all(prediction: str, sample) -> float:
    """The fraction of gold strings found in the prediction (niah, vt, cwe, fwe)."""
    pred = prediction.lower()
    return sum(1.0 if r.lower() in pred else 0.0 for r in sample.answers) / len(sample.answers)


@register_metric("string_match_part")
def string_match_part(prediction: str, sample) -> float:
    """1 if any gold string is found in the prediction (qa)."""
    pred = prediction.lower()
    return max(1.0 if r.lower() in pred else 0.0 for r in sample.answers)


def average(task_scores) -> float:
    """RULER's per-length score: the unweighted mean of the task scores (13 tasks), rounded to 2 decimals. The
    RePo authors' `ruler_all` is the same flat mean, and their category suites are this mean over each group."""
    scores = list(task_scores.values()) if isinstance(task_scores, dict) else list(task_scores)
    return round(sum(scores) / len(scores), 2)
