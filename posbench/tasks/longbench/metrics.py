"""LongBench v1 metrics exactly as `LongBench/metrics.py` + `eval.py` score them, and the RePo authors' variants.

Every registered metric takes the max over the sample's gold answers (eval.py starts that max at 0.0). The first-line
rule for trec/triviaqa/samsum/lsht is the `first_line` filter in those tasks' YAML, applied before the metric.

Backends are part of the definition: ROUGE-L is the PyPI `rouge` 1.0.1 package (summary-level union LCS, not
`rouge-score`), code similarity is `fuzzywuzzy` 0.18.0 `fuzz.ratio` on its difflib backend, Chinese tokens come from
`jieba` 0.42.1 (all pinned in requirements.txt).
"""
import difflib
import logging
import re
import string
import warnings

from posbench.tasks.errors import TaskError
from posbench.tasks.metrics.squad import best_over, multiset_f1, normalize_answer, set_f1, substring_match
from posbench.tasks.registry import register_metric


def _fuzz():
    """fuzzywuzzy's fuzz module, imported on first use (machines without LongBench's packages still load the tasks)."""
    with warnings.catch_warnings():
        # fuzzywuzzy warns that it runs on difflib; difflib is exactly the backend we pin (see code_sim).
        warnings.simplefilter("ignore", UserWarning)
        from fuzzywuzzy import fuzz
    return fuzz

_CN_PUNCTUATION = ("！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠"
                   "｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏.")
_ZH_PUNCTUATION = set(string.punctuation + _CN_PUNCTUATION)


def _jieba_cut(text: str) -> list:
    import jieba  # imported lazily: it builds its dictionary on first use
    jieba.setLogLevel(logging.WARNING)
    return list(jieba.cut(text, cut_all=False))


def normalize_zh_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _ZH_PUNCTUATION)
    return "".join(text.split())


# ---- per-(prediction, gold) definitions --------------------------------------------------------------------------

def qa_f1(prediction: str, gold: str) -> float:
    return multiset_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def qa_f1_zh(prediction: str, gold: str) -> float:
    pred = [t for t in (normalize_zh_answer(x) for x in _jieba_cut(prediction)) if t]
    ref = [t for t in (normalize_zh_answer(x) for x in _jieba_cut(gold)) if t]
    return multiset_f1(pred, ref)


def rouge_l(prediction: str, gold: str) -> float:
    """`rouge` 1.0.1 ROUGE-L F. LongBench wraps the call in a bare `except` -> 0.0: empty texts raise ValueError and
    long sentence pairs overflow the package's recursive LCS (RecursionError); both score 0 officially."""
    from rouge import Rouge
    try:
        return Rouge().get_scores([prediction], [gold], avg=True)["rouge-l"]["f"]
    except Exception:  # noqa: BLE001 - the official scorer's bare except, on purpose
        return 0.0


def rouge_l_zh(prediction: str, gold: str) -> float:
    return rouge_l(" ".join(_jieba_cut(prediction)), " ".join(_jieba_cut(gold)))


def classification(prediction: str, gold: str, all_classes: list) -> float:
    matches = [c for c in all_classes if c in prediction]
    # Official quirk, kept on purpose: removing from the list being iterated skips the element after each removal,
    # so a second class that is also a substring of the gold can survive (and halve the score).
    for match in matches:
        if match in gold and match != gold:
            matches.remove(match)
    return 1.0 / len(matches) if gold in matches else 0.0


def _share_of_numbers(prediction: str, target: str) -> float:
    numbers = re.findall(r"\d+", prediction)
    return sum(n == target for n in numbers) / len(numbers) if numbers else 0.0


def retrieval(prediction: str, gold: str, pattern: str = r"Paragraph (\d+)") -> float:
    ids = re.findall(pattern, gold)
    if not ids:
        raise TaskError(f"LongBench retrieval gold {gold!r} has no paragraph id matching {pattern!r}")
    return _share_of_numbers(prediction, ids[0])


def count(prediction: str, gold) -> float:
    return _share_of_numbers(prediction, str(gold))


def code_sim(prediction: str, gold: str) -> float:
    """First line (after leading newlines) without ` # or //, then fuzz.ratio / 100."""
    fuzz = _fuzz()
    if fuzz.SequenceMatcher is not difflib.SequenceMatcher:
        raise TaskError("LongBench code_sim_score is pinned to fuzzywuzzy's difflib backend, but python-Levenshtein "
                        "is installed and replaces it (scores can differ); uninstall python-Levenshtein")
    line = next((x for x in prediction.lstrip("\n").split("\n") if "`" not in x and "#" not in x and "//" not in x),
                "")
    return fuzz.ratio(line, gold) / 100


# ---- registered metrics: max over the sample's gold answers -------------------------------------------------------

def _register_max(name, fn):
    register_metric(name)(lambda prediction, sample: best_over(sample.answers, fn, prediction))


for _name, _fn in [("qa_f1_score", qa_f1), ("qa_f1_zh_score", qa_f1_zh), ("rouge_score", rouge_l),
                   ("rouge_zh_score", rouge_l_zh), ("retrieval_score", retrieval),
                   ("retrieval_zh_score", lambda p, g: retrieval(p, g, r"段落(\d+)")), ("count_score", count),
                   ("code_sim_score", code_sim)]:
    _register_max(_name, _fn)


@register_metric("classification_score")
def classification_score(prediction, sample) -> float:
    classes = sample.metadata.get("all_classes")
    if not isinstance(classes, list):
        raise TaskError(f"task {sample.task} sample {sample.index}: classification_score needs metadata "
                        f"'all_classes' (a list), got {classes!r}")
    return best_over(sample.answers, lambda p, g: classification(p, g, classes), prediction)


# ---- the RePo authors' OLMES metrics (longbench.md §7) --------------------------------------------------------------

_register_max("repo_f1", set_f1)
_register_max("repo_substring_match", substring_match)


@register_metric("repo_rouge_l")
def repo_rouge_l(prediction, sample) -> float:
    """`rouge_score` RougeScorer(["rougeL"]) F1, no stemmer, against the first gold answer only (as OLMES does)."""
    from rouge_score import rouge_scorer
    if not sample.answers:
        return 0.0
    return rouge_scorer.RougeScorer(["rougeL"]).score(sample.answers[0], prediction)["rougeL"].fmeasure
