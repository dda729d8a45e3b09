"""RULER needle-in-a-haystack (`scripts/data/synthetic/niah.py`): keys with values hidden as needle sentences in a
noise, essay or needle haystack; the question asks for the values of one or more keys."""
import random

from posbench.tasks.registry import register_generator
from posbench.tasks.ruler import essays
from posbench.tasks.ruler.common import (
    DEPTHS,
    NEEDLE,
    NOISE,
    LinePositions,
    check_choice,
    fit,
    fit_budget,
    random_value,
)
from posbench.tasks.schema import SampleDraft

HAYSTACKS = ("noise", "essay", "needle")
KINDS = ("words", "numbers", "uuids")


def join_tracked(parts: list, sep: str, tracked: list) -> tuple:
    """sep.join(parts) and the character offset of each part whose index is in `tracked`."""
    offsets, pos = {}, 0
    for i, part in enumerate(parts):
        offsets[i] = pos
        pos += len(part) + len(sep)
    return sep.join(parts), [offsets[i] for i in tracked]


def locate(ctx, prompt: str, context: str, offsets: list) -> list:
    """Context-relative character offsets -> (prompt character offset, prompt tokens before it)."""
    start = prompt.index(context)
    return [(start + o, ctx.count_tokens(prompt[:start + o])) for o in offsets]


class NeedleLines:
    """Distractor lines of the `needle` haystack: each a needle with its own random key and value, drawn in order
    from a private RNG so the first N lines are the same for every N."""

    def __init__(self, seed, type_needle_k, type_needle_v):
        self._rng, self._k, self._v, self._lines = random.Random(seed), type_needle_k, type_needle_v, []

    def first(self, n: int) -> list:
        while len(self._lines) < n:
            key = random_value(self._rng, self._k)
            self._lines.append(NEEDLE.format(type_needle_v=self._v, key=key,
                                             value=random_value(self._rng, self._v)))
        return self._lines[:n]


@register_generator("ruler_niah")
def niah(ctx, *, type_haystack: str = "essay", type_needle_k: str = "words", type_needle_v: str = "numbers",
         num_needle_k: int = 1, num_needle_v: int = 1, num_needle_q: int = 1, essay_dir: str = "",
         nltk_data: str = "", fit_new_tokens: int = 0):
    """RULER's niah arguments. When one value is asked (num_needle_q * num_needle_v == 1) the template field
    type_needle_v is singular ("number"), and the YAML template must be RULER's singular rewrite."""
    check_choice(ctx.task, "type_haystack", type_haystack, HAYSTACKS)
    check_choice(ctx.task, "type_needle_k", type_needle_k, KINDS)
    check_choice(ctx.task, "type_needle_v", type_needle_v, KINDS)
    if type_haystack == "essay":
        essays.require(ctx.task, essay_dir, nltk_data)
    num_needle_k = max(num_needle_k, num_needle_q)
    rng = ctx.rng

    # Content first, in RULER's order, so the size search cannot change it.
    keys, values, needles = [], [], []
    for _ in range(num_needle_k):
        keys.append(random_value(rng, type_needle_k))
        values.append([])
        for _ in range(num_needle_v):
            values[-1].append(random_value(rng, type_needle_v))
            needles.append((NEEDLE.format(type_needle_v=type_needle_v, key=keys[-1], value=values[-1][-1]),
                            keys[-1], values[-1][-1]))
    random.Random(ctx.seed).shuffle(needles)      # RULER: a fresh Random(random_seed) for every sample
    depths = sorted(rng.sample(DEPTHS, len(needles))) if type_haystack == "essay" else None
    positions = LinePositions(rng.getrandbits(64), ctx.task)
    distractors = NeedleLines(rng.getrandbits(64), type_needle_k, type_needle_v)
    picked = rng.sample(range(num_needle_k), num_needle_q)
    queries = [keys[i] for i in picked]
    answers = [a for i in picked for a in values[i]]
    query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
    # RULER rewrites the template to the singular for one value asked (the YAML holds the rewritten text).
    shown_type = type_needle_v[:-1] if num_needle_q * num_needle_v == 1 else type_needle_v
    texts = [n[0] for n in needles]

    def build(n):
        if type_haystack == "essay":
            sents = essays.sentences(essay_dir, nltk_data, n)
            cuts = [0] + [int(len(sents) * (d / 100)) for d in depths] + [len(sents)]
            parts, tracked, where = [], [], []
            for i in range(1, len(cuts)):
                parts.append(" ".join(sents[cuts[i - 1]:cuts[i]]))
                if i - 1 < len(texts):
                    tracked.append(len(parts))
                    parts.append(texts[i - 1])
                    where.append({"depth": depths[i - 1], "sentence": cuts[i], "sentences": len(sents)})
            context, offsets = join_tracked(parts, " ", tracked)
        else:
            lines = [NOISE] * n if type_haystack == "noise" else distractors.first(n)
            lines = list(lines)
            at = positions.sample(n, len(texts))
            # RULER inserts at descending indices, pairing the first (shuffled) needle with the largest index.
            order = sorted(at, reverse=True)
            for index, text in zip(order, texts):
                lines.insert(index, text)
            # A needle drawn at line p ends up before original line p, shifted by the needles above it.
            final = [p + sum(q < p for q in order) for p in order]
            context, offsets = join_tracked(lines, "\n", final)
            where = [{"depth": round(100 * p / n, 2), "line": p, "lines": n} for p in order]
        fields = {"type_needle_v": shown_type, "context": context, "query": query}
        prompt = ctx.render(fields)
        return ctx.count_tokens(prompt), (fields, prompt, offsets, where)

    essay = type_haystack == "essay"
    start = 500 if essay else (5 if ctx.length is not None and ctx.length < 4096 else 25)
    n, (fields, prompt, offsets, where) = fit(ctx, build, fit_budget(ctx, fit_new_tokens), start,
                                              "words" if essay else "lines")
    placed = []
    for (_text, key, value), info, (char, token) in zip(needles, where,
                                                        locate(ctx, prompt, fields["context"], offsets)):
        placed.append({"key": key, "value": value, **info, "char_offset": char, "token_offset": token})
    first = prompt.find(answers[0])
    metadata = {
        "haystack": type_haystack, "haystack_size": n, "haystack_unit": "words" if essay else "lines",
        "needles": placed, "queries": queries,
        # RULER's record: prompt tokens before the first occurrence of the first answer.
        "token_position_answer": ctx.count_tokens(prompt[:first]),
    }
    return SampleDraft(fields=fields, answers=answers, metadata=metadata)
