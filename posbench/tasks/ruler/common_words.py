"""RULER common words extraction (`scripts/data/synthetic/common_words_extraction.py`): a numbered list where 10
words repeat often and the rest rarely; the model names the 10 common ones. A worked example comes first."""
import functools
import random

from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_generator
from posbench.tasks.ruler.common import DistinctDraws, fit, fit_budget
from posbench.tasks.ruler.words import cwe_pool
from posbench.tasks.schema import SampleDraft


@functools.lru_cache(maxsize=8)
def shuffled_pool(seed: int) -> tuple:
    """The word pool as RULER holds it: sorted, then shuffled once with Random(random_seed)."""
    pool = list(cwe_pool())
    random.Random(seed).shuffle(pool)
    return tuple(pool)


def numbered(words) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


@register_generator("ruler_common_words")
def common_words(ctx, *, freq_cw: int = 30, freq_ucw: int = 3, num_cw: int = 10, num_fewshot: int = 1,
                 example_sep: str = "\n", fit_new_tokens: int = 0):
    """Below 4096 tokens RULER uses 6/1 repeats and a 20-word example with 3/1 repeats (fixed in its code);
    otherwise freq_cw/freq_ucw and a 40-word example with 10/3 repeats. `example_sep` joins the examples to the
    task (RULER: "\\n")."""
    pool = shuffled_pool(ctx.seed)
    rng = ctx.rng
    small = ctx.length is not None and ctx.length < 4096
    # The task's words first (the same at every length), then the example's.
    order = DistinctDraws(len(pool), rng.getrandbits(64))
    shots = [rng.sample(pool, 20 if small else 40) for _ in range(num_fewshot)]

    def word_list(words, common_repeats, uncommon_repeats):
        common, uncommon = list(words[:num_cw]), list(words[num_cw:])
        listed = common * common_repeats + uncommon * uncommon_repeats
        random.Random(ctx.seed).shuffle(listed)       # RULER: a fresh Random(random_seed) for every list
        return numbered(listed), common

    examples = []
    for words in shots:
        context, answer = word_list(words, *((3, 1) if small else (10, 3)))
        examples.append(ctx.render({"example": "", "context": context}) + " " + numbered(answer))
    example = "\n".join(examples) + example_sep
    repeats = (6, 1) if small else (freq_cw, freq_ucw)

    def build(n):
        context, answer = word_list([pool[j] for j in order.take(n)], *repeats)
        fields = {"example": example, "context": context}
        return ctx.count_tokens(ctx.render(fields)), (fields, answer)

    n, (fields, answers) = fit(ctx, build, fit_budget(ctx, fit_new_tokens), 10, "words", limit=len(pool))
    if n == len(pool):
        raise TaskError(f"task {ctx.task}: length {ctx.length} needs more than the {len(pool)} wonderwords words; "
                        f"RULER then draws from english_words.json, which posbench does not ship")
    metadata = {"num_words": n, "repeats": list(repeats), "fewshot_words": [len(s) for s in shots]}
    return SampleDraft(fields=fields, answers=answers, metadata=metadata)
