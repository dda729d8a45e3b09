"""SQuAD answer normalisation and the token scores built on it.

One normalisation serves HybridQA's `evaluate_script.py`, LongBench's `normalize_answer` and the RePo authors' OLMES
metrics: they are the same four steps in the same order (lower, drop ASCII punctuation, drop the words a/an/the,
collapse whitespace). The scores differ in small ways, so each is its own function, named for its source.
"""
import re
import string
from collections import Counter

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def multiset_f1(pred_tokens: list, gold_tokens: list) -> float:
    """Counter-overlap F1 with LongBench's edge rule: no common token -> 0 (so two empty lists score 0)."""
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact(prediction: str, gold: str) -> float:
    """HybridQA/SQuAD `compute_exact`."""
    return float(normalize_answer(gold) == normalize_answer(prediction))


def squad_f1(prediction: str, gold: str) -> float:
    """HybridQA/SQuAD `compute_f1`: if either side has no tokens, 1 when both are empty, else 0."""
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    gold_tokens = normalize_answer(gold).split() if gold else []
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    return multiset_f1(pred_tokens, gold_tokens)


def set_f1(prediction: str, gold: str) -> float:
    """The RePo authors' OLMES `GeneralMatch(return_f1=True)`: bag-of-words F1 over token *sets* of the normalised
    texts, 1 / (0.5/p + 0.5/r), and 0 when precision or recall is 0 or undefined."""
    pred, ref = set(normalize_answer(prediction).split()), set(normalize_answer(gold).split())
    if not pred or not ref:
        return 0.0
    common = len(pred & ref)
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 1.0 / (0.5 / p + 0.5 / r)


def substring_match(prediction: str, gold: str) -> float:
    """OLMES `substring_exact_match` on SQuAD-normalised strings: gold inside prediction (an empty gold always
    matches, as in OLMES)."""
    return float(normalize_answer(gold) in normalize_answer(prediction))


def best_over(golds, fn, prediction) -> float:
    """Max of fn(prediction, gold) over the golds; 0.0 when there is no gold (LongBench starts its max at 0)."""
    return max((float(fn(prediction, g)) for g in golds), default=0.0)
