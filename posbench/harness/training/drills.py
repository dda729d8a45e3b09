"""Retrieval drills for training: key/code statements hidden in natural text, asked back at the end.

A language model trained on prose alone rarely learns to copy a fact from 4K tokens back; a minority of drill rows
teaches that skill without showing the model any evaluation task. Everything a drill shows is its own, disjoint from
the evaluation generators (tests/test_training_drills.py checks it against posbench/tasks/ruler):
- template: a "ledger entry" sentence and a question about a "cabinet"; no RULER phrase ("special magic", "needle",
  "memorize", "quiz", "hidden within") and no three-word sequence of any evaluation task file;
- keys: invented four-syllable words ending in "x" (consonant-vowel syllables + x), never an English or RULER word;
- values: codes of two capital letters, a hyphen and four digits ("KT-4821"), never a RULER answer form (7-digit
  numbers, UUIDs, words);
- haystack: sentences of the training corpus (its train split), never the Paul Graham essays or noise sentences.

Importing this module registers generator `training_retrieval_drill`; its task file is drills/retrieval_drill.yaml
(data.task_paths: [posbench/harness/training/drills], data.task_modules: [posbench.harness.training.drills]).
"""
import gzip
import json
import re
from functools import lru_cache
from pathlib import Path

from posbench.tasks import SampleDraft, TaskError, register_generator

TASK_FOLDER = Path(__file__).with_name("drills")
CONSONANTS, VOWELS = "bdgklmnprstvz", "aeiou"
LETTERS = "BCDFGHJKLMNPRSTVWXZ"
ENTRY = "Ledger entry: cabinet {key} was assigned the code {value}."
KEY_PATTERN = re.compile(r"^(?:[bdgklmnprstvz][aeiou]){4}x$")
VALUE_PATTERN = re.compile(r"^[BCDFGHJKLMNPRSTVWXZ]{2}-\d{4}$")


def drill_key(rng) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(4)) + "x"


def drill_value(rng) -> str:
    return f"{rng.choice(LETTERS)}{rng.choice(LETTERS)}-{rng.randint(1000, 9999)}"


@lru_cache(maxsize=4)
def corpus_sentences(path: str) -> tuple:
    """Every sentence of a corpus split file (.jsonl.gz of {"text"}), in file order: the haystack's units."""
    if not Path(path).is_file():
        raise TaskError(f"training drill: corpus file {path} does not exist (build the corpus first: python -m "
                        f"posbench.harness.training.corpus build)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return tuple(s for line in f for p in json.loads(line)["text"].split("\n\n")
                     for s in re.split(r"(?<=[.!?])\s+", p) if s)


@register_generator("training_retrieval_drill")
def retrieval_drill(ctx, corpus: str, max_entries: int = 4):
    """1..max_entries ledger entries with distinct keys at random depths of a corpus passage; one key is asked.
    Fewer entries when even an empty passage with all of them exceeds the budget (short rows)."""
    sentences = corpus_sentences(corpus)
    count = ctx.rng.randint(1, max_entries)
    keys = []
    while len(keys) < count:
        key = drill_key(ctx.rng)
        if key not in keys:
            keys.append(key)
    entries = [ENTRY.format(key=k, value=drill_value(ctx.rng)) for k in keys]
    asked = ctx.rng.randrange(count)
    depths = sorted(ctx.rng.random() for _ in range(count))
    start = ctx.rng.randrange(len(sentences))

    def fields(n, used):
        passage = [sentences[(start + i) % len(sentences)] for i in range(n)]
        for i in reversed(used):
            passage.insert(int(depths[i] * len(passage)), entries[i])
        return {"context": " ".join(passage), "key": keys[asked]}

    def fits(n, used):
        return ctx.count_tokens(ctx.render(fields(n, used))) <= ctx.budget

    used = list(range(count))
    while not fits(0, used):
        if len(used) == 1:
            raise TaskError(f"training drill: one entry and the question exceed the budget of {ctx.budget} tokens")
        used.remove(next(i for i in reversed(used) if i != asked))
    low, high = 0, 1                     # the most sentences that fit the budget: double, then bisect
    while fits(high, used) and high < len(sentences):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid, used) else (low, mid)
    value = entries[asked].rsplit(" ", 1)[1].rstrip(".")
    return SampleDraft(fields=fields(low, used), answers=[value])
