"""Metric parity: hand-made prediction/gold pairs whose official scores were worked out by hand (arithmetic in the
comments), for the SQuAD-style metrics (HybridQA, RePo variants) and every LongBench metric."""
import difflib

import pytest

from posbench.tasks.metrics.squad import normalize_answer, set_f1, squad_exact, squad_f1, substring_match
from posbench.tasks.registry import METRICS, ensure_imported
from posbench.tasks.schema import Sample


def sample(answers, **metadata):
    return Sample(task="t", index=0, length=None, seed=0, prompt="", answer_prefix="", answers=answers,
                  max_new_tokens=1, stop=[], token_count=0, metadata=metadata)


def score(metric, prediction, answers, **metadata):
    ensure_imported()
    return METRICS[metric](prediction, sample(answers, **metadata))


# ---- SQuAD normalisation, HybridQA EM/F1 ----------------------------------------------------------------------------

def test_normalisation_steps_in_order():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"       # punctuation goes before articles
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert normalize_answer("another theory") == "another theory"        # \b: articles only as whole words
    assert normalize_answer("t.h.e cat") == "cat"                        # 't.h.e' -> 'the' -> removed


@pytest.mark.parametrize("pred, gold, em, f1", [
    ("The Beatles", "Beatles", 1.0, 1.0),
    ("Paris, France", "Paris", 0.0, 2 / 3),          # P = 1/2, R = 1/1 -> 2*(1/2)/(3/2) = 2/3
    ("", "Beatles", 0.0, 0.0),                       # empty prediction: [] != ['beatles']
    ("", "the", 1.0, 1.0),                           # both normalise to nothing: EM "" == "", F1 int([] == [])
    ("a", "", 1.0, 1.0),                             # 'a' normalises to nothing as well
    ("1990 - 2002", "1990-2002", 0.0, 0.0),          # '1990 2002' (2 tokens) vs '19902002' (1 token): no overlap
    ("3.5 million", "35 million", 1.0, 1.0),         # '.' is punctuation: both become '35 million'
    ("cat cat cat", "cat", 0.0, 0.5),                # Counter overlap min(3,1)=1: P=1/3, R=1 -> 2*(1/3)/(4/3)
])
def test_hybridqa_em_and_f1(pred, gold, em, f1):
    assert squad_exact(pred, gold) == em and score("hybridqa_em", pred, [gold]) == em
    assert squad_f1(pred, gold) == pytest.approx(f1) and score("hybridqa_f1", pred, [gold]) == pytest.approx(f1)


def test_hybridqa_substring_variant():
    assert score("hybridqa_substring", "It was the sixth place.", ["sixth"]) == 1.0
    assert score("hybridqa_substring", "sixty", ["six"]) == 1.0             # plain substring: 'six' in 'sixty'
    assert score("hybridqa_substring", "anything", ["The"]) == 1.0          # empty normalised gold always matches
    assert score("hybridqa_substring", "fifth", ["sixth"]) == 0.0


# ---- LongBench -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pred, golds, expected", [
    ("The Eiffel Tower!", ["Eiffel tower"], 1.0),
    ("It was in Paris, France", ["Paris"], 1 / 3),   # 5 tokens vs 1: P=1/5, R=1 -> 2*(1/5)/(6/5) = 1/3
    ("", ["Paris"], 0.0),
    ("", ["the"], 0.0),                              # unlike HybridQA: no common token -> 0 even if both empty
    ("city of paris", ["Paris", "the city of Paris"], 1.0),   # max over golds: 1/2 and 1.0
    ("1,000", ["1000"], 1.0),
    ("another apple", ["apple"], 2 / 3),             # P=1/2, R=1 -> 2/3; 'another' is not the article 'an'
    ("x", [], 0.0),                                  # no gold: eval.py's max starts at 0
])
def test_qa_f1_score(pred, golds, expected):
    assert score("qa_f1_score", pred, golds) == pytest.approx(expected)


def test_qa_f1_zh_score():
    # jieba: 我爱北京。 -> 我/爱/北京/。 ; '。' normalises to '' and is dropped: 3 tokens vs [北京] -> P=1/3, R=1 -> 0.5
    assert score("qa_f1_zh_score", "我爱北京。", ["北京"]) == pytest.approx(0.5)
    assert score("qa_f1_zh_score", "北京", ["北京", "上海"]) == 1.0
    assert score("qa_f1_zh_score", "。！", ["北京"]) == 0.0          # punctuation only: no tokens left
    assert score("qa_f1_zh_score", "Beijing 北京", ["beijing"]) == pytest.approx(2 / 3)  # lowercased; P=1/2, R=1


ROUGE_EPS = 1e-8   # rouge 1.0.1: F = 2PR / (P + R + 1e-8)


def f_rouge(p, r):
    return 2 * p * r / (p + r + ROUGE_EPS)


@pytest.mark.parametrize("pred, gold, expected", [
    # unique ref words {the,cat,lay,on,mat}=5, hyp {the,cat,sat,on,mat}=5, union-LCS words {the,cat,on,mat}=4
    ("the cat sat on the mat", "the cat lay on the mat", f_rouge(4 / 5, 4 / 5)),
    # '.' splits the hypothesis into 'a b' and 'c d'; their LCS with the one reference sentence unions to 4 words
    ("a b. c d", "a b c d", f_rouge(1, 1)),
    ("The cat", "the cat", f_rouge(1 / 2, 1 / 2)),          # no lowercasing: only 'cat' is shared
    ("a b", "a a a b", f_rouge(1, 1)),                      # counts are of unique words: m = n = 2, llcs = 2
    ("", "the cat", 0.0),                                   # 'Hypothesis is empty.' -> except -> 0
    ("...", "the cat", 0.0),                                # only dots: no sentence left -> exception -> 0
    ("the cat", "", 0.0),                                   # empty reference -> exception -> 0
    # one shared word among 100 unique hypothesis words: R = 1/1, P = 1/100
    (" ".join(f"w{i}" for i in range(100)), "w0", f_rouge(1 / 100, 1)),
    # the same shape with 1100 words overflows the package's recursive LCS walk: RecursionError -> 0 officially
    (" ".join(f"w{i}" for i in range(1100)), "w0", 0.0),
])
def test_rouge_score(pred, gold, expected):
    assert score("rouge_score", pred, [gold]) == pytest.approx(expected, abs=1e-12)


def test_rouge_score_max_over_golds_and_zh():
    assert score("rouge_score", "the cat", ["a dog", "the cat"]) == pytest.approx(f_rouge(1, 1))
    # jieba: '我 爱 北京' vs '他 在 北京 工作': llcs 1, m = 4, n = 3 -> P = 1/3, R = 1/4
    assert score("rouge_zh_score", "我爱北京", ["他在北京工作"]) == pytest.approx(f_rouge(1 / 3, 1 / 4))
    assert score("rouge_zh_score", "", ["北京"]) == 0.0


@pytest.mark.parametrize("pred, gold, classes, expected", [
    ("Human being", "Human", ["Human", "Location"], 1.0),
    ("Location or Human", "Human", ["Human", "Location"], 0.5),      # two matches, gold among them: 1/2
    ("human", "Human", ["Human", "Location"], 0.0),                  # case-sensitive substring test
    ("Location", "Human", ["Human", "Location"], 0.0),
    ("nothing", "Human", ["Human", "Location"], 0.0),
    # The remove-while-iterating quirk: matches [A, B, ABC]; 'A' is removed (substring of gold 'ABC'), the loop
    # then skips 'B', so matches stay [B, ABC] and the score is 1/2 (it would be 1 without the quirk).
    ("A B ABC", "ABC", ["A", "B", "ABC"], 0.5),
])
def test_classification_score(pred, gold, classes, expected):
    assert score("classification_score", pred, [gold], all_classes=classes) == expected


def test_classification_needs_all_classes():
    from posbench.tasks.errors import TaskError
    with pytest.raises(TaskError, match="all_classes"):
        score("classification_score", "Human", ["Human"], all_classes=None)


@pytest.mark.parametrize("metric, pred, gold, expected", [
    ("retrieval_score", "Paragraph 12", "Paragraph 12", 1.0),
    ("retrieval_score", "Paragraph 1, Paragraph 12", "Paragraph 12", 0.5),   # numbers ['1', '12']: one right
    ("retrieval_score", "Paragraph 012", "Paragraph 12", 0.0),               # '012' != '12' (string compare)
    ("retrieval_score", "I am not sure", "Paragraph 12", 0.0),               # no numbers -> 0
    ("retrieval_zh_score", "段落5", "段落5", 1.0),
    ("retrieval_zh_score", "段落15和段落5", "段落5", 0.5),
    ("count_score", "7", "7", 1.0),
    ("count_score", "There are 7 unique paragraphs out of 30", "7", 0.5),    # ['7', '30']
    ("count_score", "17", "7", 0.0),
    ("count_score", "", "7", 0.0),
])
def test_retrieval_and_count(metric, pred, gold, expected):
    assert score(metric, pred, [gold]) == expected


def test_retrieval_gold_without_id_is_an_error():
    from posbench.tasks.errors import TaskError
    with pytest.raises(TaskError, match="no paragraph id"):
        score("retrieval_score", "Paragraph 1", ["the first one"])


@pytest.mark.parametrize("pred, gold, expected", [
    ("\n# comment\n    return x + 1\nfoo()", "    return x + 1", 1.0),  # first line without `, # or //
    ("abcd", "abce", 0.75),          # difflib ratio 2*3/8 = 0.75 -> round(75) / 100
    ("abc", "abd", 0.67),            # 2*2/6 = 0.6667 -> round(66.67) = 67
    ("", "", 1.0),                   # fuzz.ratio checks equality before emptiness: 100
    ("# only a comment", "x", 0.0),  # no usable line -> '' vs 'x' -> 0
    ("a = b // 2\nc = 1", "c = 1", 1.0),   # '//' disqualifies the first line
    ("```python\nx = 1\n```", "x = 1", 1.0),
])
def test_code_sim_score(pred, gold, expected):
    assert score("code_sim_score", pred, [gold]) == expected


def test_code_sim_backend_is_difflib():
    from fuzzywuzzy import fuzz
    assert fuzz.SequenceMatcher is difflib.SequenceMatcher


# ---- the RePo authors' OLMES variants --------------------------------------------------------------------------------

def test_repo_set_f1_differs_from_multiset_f1():
    # sets: pred {cat, sat}, gold {cat, sat, on, mat}: p = 1, r = 1/2 -> 1 / (0.5/1 + 0.5/0.5) = 2/3
    assert set_f1("the cat cat sat", "cat sat on mat") == pytest.approx(2 / 3)
    # LongBench's Counter F1 on the same pair: [cat, cat, sat] vs 4 tokens, same = 2 -> P = 2/3, R = 1/2 -> 4/7
    assert score("qa_f1_score", "the cat cat sat", ["cat sat on mat"]) == pytest.approx(4 / 7)
    assert score("repo_f1", "the cat cat sat", ["dog", "cat sat on mat"]) == pytest.approx(2 / 3)
    assert set_f1("", "cat") == 0.0 and set_f1("the", "cat") == 0.0


def test_repo_substring_and_rouge_l():
    assert substring_match("It is a Location.", "location") == 1.0
    assert score("repo_substring_match", "It is a Location.", ["Human", "location"]) == 1.0
    # rouge_score lowercases and splits on non-alphanumerics: [the, cat, sat] vs [the, cat, sat, on, the, mat]:
    # LCS 3 -> P = 1, R = 1/2 -> F = 2/3. Only the first gold counts.
    assert score("repo_rouge_l", "The cat sat.", ["the cat sat on the mat", "The cat sat."]) == pytest.approx(2 / 3)
