"""RULER scoring on hand-made predictions: RULER's own metrics and post-processing, the RePo authors' variants, and
the aggregates, against scores computed by hand from the official formulas."""
import pytest

from posbench.tasks import TaskRegistry, aggregate, score_sample
from posbench.tasks.registry import FILTERS, METRICS, ensure_imported
from posbench.tasks.ruler.metrics import average
from posbench.tasks.ruler_repo.metrics import normalize_answer, parse_output
from posbench.tasks.schema import Sample

ensure_imported()


def sample(answers, prefix=""):
    return Sample(task="t", index=0, length=4096, seed=42, prompt="..." + prefix, answer_prefix=prefix,
                  answers=answers, max_new_tokens=8, stop=[], token_count=1, metadata={})


@pytest.fixture(scope="module")
def registry():
    return TaskRegistry()


def test_ruler_postprocess_strips_and_turns_control_characters_into_newlines():
    post = FILTERS["ruler_postprocess"]
    assert post("  \t 123\x01456\x1f789 \n") == "123\n456\n789"
    assert post("\x00\x00 abc") == "abc"                 # stripped again after the substitution
    assert post("a\x7fb") == "a\x7fb"                      # DEL is not in RULER's [\x00-\x1f]


@pytest.mark.parametrize("answers, prediction, expected", [
    (["7991196"], " 7991196.", 1.0),
    (["123", "456", "789"], "123 and 789", 2 / 3),          # partial credit: the fraction found
    (["Hungry-Lake"], "the key is HUNGRY-LAKE", 1.0),       # case-insensitive
    (["12"], "9123", 1.0),                                   # plain substring, no word boundaries
    (["aaa", "bbb"], "", 0.0),
])
def test_string_match_all(answers, prediction, expected):
    assert METRICS["string_match_all"](prediction, sample(answers)) == pytest.approx(expected)


@pytest.mark.parametrize("answers, prediction, expected", [
    (["Denver Broncos", "Broncos"], "the broncos won", 1.0),     # any one gold string is enough
    (["Denver Broncos", "Broncos"], "Denver", 0.0),
    (["1,000"], "about 1000", 0.0),                             # no normalisation in RULER
])
def test_string_match_part(answers, prediction, expected):
    assert METRICS["string_match_part"](prediction, sample(answers)) == expected


def test_task_scores_through_the_schema_match_rulers_formula(registry):
    spec = registry.get("niah_multivalue")                  # string_match_all with post-processing
    s = sample(["1111111", "2222222", "3333333", "4444444"])
    preds = [" 1111111, 2222222, 3333333 and 4444444.", "1111111\x002222222", "4444444", "none"]
    per = [score_sample(spec, s, p) for p in preds]
    assert [p["string_match_all"] for p in per] == [1.0, 0.5, 0.25, 0.0]
    # RULER: round(sum(per-sample) / N * 100, 2) = round(1.75 / 4 * 100, 2)
    assert aggregate(spec, per) == {"string_match_all": 43.75}

    qa = registry.get("qa_1")                                # string_match_part
    gold = sample(["Denver Broncos", "the Broncos"])
    per = [score_sample(qa, gold, p) for p in (" Denver Broncos", " the broncos", " Carolina", " Broncos")]
    assert aggregate(qa, per) == {"string_match_part": 50.0}
    assert aggregate(qa, per[:3]) == {"string_match_part": 66.67}   # 2/3 -> 66.666... -> 66.67


def test_rulers_per_length_average_is_the_flat_mean_of_task_scores():
    assert average({"niah_single_1": 100.0, "vt": 50.0, "qa_1": 33.33}) == 61.11
    assert average([90.0, 80.0]) == 85.0


def test_ruler_recall_scores_the_answer_prefix_too(registry):
    ours, theirs = registry.get("niah_single_1"), registry.get("repo_niah_single_1")
    assert theirs.score_with_prefix and theirs.variant_of == "niah_single_1"
    # A vt-like case: a gold string that the prefix itself contains counts for the RePo metric only.
    s = sample(["12345", "ABCDE"], prefix="Answer: the value 12345, they are:")
    assert score_sample(ours, s, " ABCDE")["string_match_all"] == 0.5
    assert score_sample(theirs, s, " ABCDE")["ruler_recall"] == 1.0
    assert score_sample(theirs, s, " nothing")["ruler_recall"] == 0.5
    assert aggregate(theirs, [{"ruler_recall": 1.0}, {"ruler_recall": 0.5}]) == {"ruler_recall": 75.0}


def test_helmet_normalisation_and_parse_output():
    assert normalize_answer("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert parse_output("Answer: Paris\nMore text") == "Paris"
    assert parse_output("Let me think.\nanswer: Answer: Lyon") == "Lyon"    # first `Answer:`, repeated prefix dropped
    assert parse_output("The capital is Paris.\nSecond line") == "The capital is Paris."   # no prefix: first line


@pytest.mark.parametrize("answers, continuation, expected", [
    (["The Eiffel Tower"], " eiffel tower.", 1.0),          # SQuAD normalisation: articles, punctuation, case
    (["Denver Broncos", "Broncos"], " Denver", 0.0),
    (["Denver Broncos", "Broncos"], " Carolina Panthers beat the broncos", 1.0),
    (["Paris"], " I am not sure.\nIt is Paris", 1.0),         # the parsed line misses it; the whole text keeps it
    (["Paris"], " Lyon\nnot Paris? no: Lyon", 1.0),           # substring anywhere in the text (no boundary rules)
    (["Nice"], " Lyon", 0.0),
])
def test_substring_exact_match_on_prefix_plus_generation(registry, answers, continuation, expected):
    spec = registry.get("repo_qa_1")
    s = sample(answers, prefix="Answer:")
    assert score_sample(spec, s, continuation) == {"substring_exact_match": expected}
