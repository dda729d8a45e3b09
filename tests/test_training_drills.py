"""The training retrieval drill (posbench/harness/training/drills.py) shares no template phrase, key, value form or
haystack with the evaluation generators (RULER), fits its budget, and is deterministic."""
import gzip
import json
import re
from pathlib import Path

import pytest
import yaml

from posbench.harness.training import drills
from posbench.tasks import TaskRegistry, build_samples

ROOT = Path(__file__).resolve().parents[1]
RULER = ROOT / "posbench" / "tasks" / "ruler"
RULER_ANSWER_FORMS = [re.compile(r"^\d{7}$"), re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                                         r"[0-9a-f]{12}$"), re.compile(r"^[a-z]+(-[a-z]+)*$")]


def words(text: str) -> list:
    return re.findall(r"[a-z]+", text.lower())


def ngrams(text: str, n: int) -> set:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def ruler_text() -> str:
    """Every template, answer prefix, needle and noise sentence of RULER (its YAML files and generator modules),
    and every other evaluation task's YAML file (NLGraph, HybridQA, LongBench, general, RULER-repo)."""
    files = sorted(RULER.glob("*.py")) + sorted((ROOT / "posbench" / "tasks").rglob("*.yaml"))
    return "\n".join(p.read_text() for p in files)


def drill_text() -> str:
    spec = yaml.safe_load((drills.TASK_FOLDER / "retrieval_drill.yaml").read_text())
    return "\n".join([drills.ENTRY, spec["template"], spec["answer_prefix"]])


def test_templates_share_no_phrase_with_ruler():
    ruler, drill = ruler_text(), drill_text()
    assert not ngrams(drill, 3) & ngrams(ruler, 3)
    for phrase in ("special magic", "needle", "memorize", "quiz", "hidden within", "mentioned in the provided text"):
        assert phrase not in drill.lower()


def test_keys_and_values_never_take_a_ruler_form():
    from posbench.tasks.ruler.words import _read, cwe_pool

    ruler_words = set(cwe_pool()) | set(_read("adjectivelist.txt")) | set(_read("nounlist.txt"))
    assert not [w for w in ruler_words if drills.KEY_PATTERN.match(w)]   # no RULER word could be a drill key
    import random
    rng = random.Random(0)
    for _ in range(2000):
        key, value = drills.drill_key(rng), drills.drill_value(rng)
        assert drills.KEY_PATTERN.match(key) and drills.VALUE_PATTERN.match(value)
        assert key not in ruler_words and not any(f.match(value) for f in RULER_ANSWER_FORMS)
        assert "-" not in key                                              # RULER word keys are adj-noun pairs


@pytest.fixture(scope="module")
def tokenizer_and_corpus(tmp_path_factory):
    from posbench.harness.training.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("drill")
    text = ("The lighthouse keeper wrote in his journal every evening. Storms came from the west in autumn. "
            "Supplies arrived by boat twice a month, weather permitting. ") * 40
    path = root / "corpus" / "natural_v1" / "train.jsonl.gz"
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as f:
        for i in range(3):
            f.write(json.dumps({"id": str(i), "source": "fixture", "text": text}) + "\n")
    return train_bpe([text], 400), root


def test_samples_fit_the_budget_hold_their_answer_once_and_repeat(tokenizer_and_corpus):
    tokenizer, data_root = tokenizer_and_corpus
    spec = TaskRegistry(include_paths=[drills.TASK_FOLDER]).get("training_retrieval_drill")
    assert spec.source_kind == "generator"
    samples = build_samples(spec, tokenizer, 512, num_samples=12, seed=1234, data_paths={"data": str(data_root)})
    again = build_samples(spec, tokenizer, 512, num_samples=12, seed=1234, data_paths={"data": str(data_root)})
    other = build_samples(spec, tokenizer, 512, num_samples=12, seed=1235, data_paths={"data": str(data_root)})
    assert [s.prompt for s in samples] == [s.prompt for s in again]
    assert [s.prompt for s in samples] != [s.prompt for s in other]
    for sample in samples:
        (value,) = sample.answers
        assert drills.VALUE_PATTERN.match(value) and sample.prompt.count(value) == 1
        key = re.search(r"cabinet (\w+) receive\?", sample.prompt).group(1)
        assert f"cabinet {key} was assigned the code {value}." in sample.prompt
        assert len(tokenizer(sample.prompt)["input_ids"]) <= 512 - spec.max_new_tokens
        assert "lighthouse keeper" in sample.prompt                        # the haystack is corpus text
