"""The RePo authors' RULER metrics (OLMES `ruler.py`, HELMET `utils.py`). The schema prepends the answer prefix
(`score_with_prefix: true`) before these see the text: OLMES scores `system_template + continuation`.

Their scores are fractions; posbench reports 100 x the mean like every RULER number (same ranking, no rounding
loss at 2 decimals).
"""
import re
import string

from posbench.tasks.registry import register_metric

_PUNCTUATION = set(string.punctuation)


@register_metric("ruler_recall")
def ruler_recall(prediction: str, sample) -> float:
    """The fraction of gold strings in the text, case-insensitive (RULER's string_match_all, no post-processing)."""
    pred = prediction.lower()
    return sum(a.lower() in pred for a in sample.answers) / len(sample.answers)


def normalize_answer(s: str) -> str:
    """SQuAD/DrQA normalisation as HELMET uses it: lowercase, drop punctuation, drop articles, squeeze spaces."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def parse_output(output: str, prefix: str = "Answer:"):
    """HELMET's parse_output: the rest of the line after the first `prefix` (case-insensitive), else the first line;
    stripped, with one more leading `prefix` removed."""
    for pattern in (re.compile(f"(?:{prefix})(.*)(?:\n|$)", flags=re.IGNORECASE), re.compile(r"(?:^)(.*)(?:\n|$)")):
        match = pattern.search(output)
        if match is not None:
            return re.sub(f"^{re.escape(prefix)}", "", match[1].strip(), flags=re.IGNORECASE).strip()
    return None


def _substring_em(prediction: str, answers) -> float:
    return max(float(normalize_answer(a) in normalize_answer(prediction)) for a in answers)


@register_metric("substring_exact_match")
def substring_exact_match(prediction: str, sample) -> float:
    """HELMET's default_post_process for RULER qa: the metric on the text and on its parsed answer, keeping the max."""
    score = _substring_em(prediction, sample.answers)
    parsed = parse_output(prediction)
    if parsed is not None:
        score = max(score, _substring_em(parsed, sample.answers))
    return score
