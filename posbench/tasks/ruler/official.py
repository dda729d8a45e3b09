"""RULER's `official` sampling: the samples NVIDIA/RULER's `scripts/data/prepare.py` writes, byte for byte, for the
same tokenizer, seed, sample count and length (base model template; tests/fixtures/ruler_official/ holds its files).

RULER draws a whole dataset from one stream: Python's `random` and numpy's legacy generator, both seeded with the
task seed. Per task and length it estimates tokens per haystack unit from one prompt, binary-searches one haystack
size (every probe draws fresh content and so moves the stream), then builds the samples in order, each redrawn with
a haystack smaller by the search's increment while it overflows. Matching its files means replaying every draw in
that order; this module does, following RULER's rules (shared/reference/ruler.md), not its code. The per-sample
generators beside it are the `fill` sampling.

Each sampler returns SampleDraft(fields, answers, metadata) with metadata["ruler"] = the fields of RULER's record
that the prompt does not give (index, length, length_w_model_temp, token_position_answer); see records.py.
"""
import functools
import random
import string

import numpy as np
from scipy.special import zeta

from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_official_sampler
from posbench.tasks.ruler import essays, qa
from posbench.tasks.ruler.common import DEPTHS, NEEDLE, NOISE, check_choice, fit_budget, random_value
from posbench.tasks.ruler.common_words import numbered, shuffled_pool
from posbench.tasks.ruler.freq_words import coded_vocabulary
from posbench.tasks.ruler.niah import HAYSTACKS, KINDS
from posbench.tasks.ruler.variable_tracking import heap_shuffle
from posbench.tasks.schema import SampleDraft

# At the smallest haystack RULER redraws until a sample fits (forever if none does); we give up after this many.
FLOOR_RETRIES = 100


class Stream:
    """RULER's two global generators, seeded as its scripts seed them."""

    def __init__(self, seed: int):
        self.py = random.Random(seed)
        self.np = np.random.RandomState(seed)

    def upper(self, k: int) -> str:
        return "".join(self.py.choices(string.ascii_uppercase, k=k))


def search(ctx, probe, inc: int, upper: int, budget: int, extra: int = 0) -> int:
    """RULER's binary search over [inc, upper]: the largest size whose prompt (plus `extra` tokens) fits the budget,
    else inc. probe(n) draws a prompt (moving the stream) and returns its text."""
    lo, hi, best = inc, upper, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if ctx.count_tokens(probe(mid)) + extra <= budget:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return inc if best is None else best


def fit_sample(ctx, draw, size: int, inc: int, budget: int):
    """RULER's per-sample loop: draw at `size`; while the prompt overflows, shrink by inc (while size > inc) and
    redraw. draw(n) -> (prompt, payload). Returns (prompt, payload, tokens, size used)."""
    floor_tries = 0
    while floor_tries < FLOOR_RETRIES:
        prompt, payload = draw(size)
        tokens = ctx.count_tokens(prompt)
        if tokens <= budget:
            return prompt, payload, tokens, size
        if size > inc:
            size -= inc
        else:
            floor_tries += 1
    raise TaskError(f"task {ctx.task}: length {ctx.length} is too small: no sample fits the budget of {budget} "
                    f"tokens at the smallest haystack ({size}); RULER would retry forever")


def record(tokens: int, new_tokens: int, index: int, **extra) -> dict:
    """RULER's record fields besides input, outputs and answer_prefix (no model template: both lengths agree)."""
    length = tokens + new_tokens
    return {"index": index, "length": length, "length_w_model_temp": length, **extra}


def check_length(ctx):
    if ctx.length is None:
        raise TaskError(f"task {ctx.task}: RULER samples are fitted to a context length; give --length")


# ---- niah -----------------------------------------------------------------------------------------------------------

@register_official_sampler("ruler_niah")
def niah(ctx, *, type_haystack: str = "essay", type_needle_k: str = "words", type_needle_v: str = "numbers",
         num_needle_k: int = 1, num_needle_v: int = 1, num_needle_q: int = 1, essay_dir: str = "",
         nltk_data: str = "", fit_new_tokens: int = 0):
    check_length(ctx)
    check_choice(ctx.task, "type_haystack", type_haystack, HAYSTACKS)
    check_choice(ctx.task, "type_needle_k", type_needle_k, KINDS)
    check_choice(ctx.task, "type_needle_v", type_needle_v, KINDS)
    essay = type_haystack == "essay"
    if essay:
        essays.require(ctx.task, essay_dir, nltk_data)
    num_needle_k = max(num_needle_k, num_needle_q)
    shown_type = type_needle_v[:-1] if num_needle_q * num_needle_v == 1 else type_needle_v
    budget = fit_budget(ctx, fit_new_tokens)
    new_tokens = ctx.length - budget
    rs = Stream(ctx.seed).py

    def draw(n):
        keys, values, placed = [], [], []          # placed: (needle text, key, value), shuffled like RULER's texts
        for _ in range(num_needle_k):
            keys.append(random_value(rs, type_needle_k))
            values.append([])
            for _ in range(num_needle_v):
                values[-1].append(random_value(rs, type_needle_v))
                placed.append((NEEDLE.format(type_needle_v=type_needle_v, key=keys[-1], value=values[-1][-1]),
                               keys[-1], values[-1][-1]))
        random.Random(ctx.seed).shuffle(placed)   # the permutation depends on the count only, not on the items
        needles = [p[0] for p in placed]
        if essay:
            sents = essays.sentences(essay_dir, nltk_data, n)
            depths = sorted(rs.sample(DEPTHS, len(needles)))   # the sorted cuts pair with the needles in order
            cuts = [0] + sorted(int(len(sents) * (d / 100)) for d in depths) + [len(sents)]
            parts = []
            for i in range(1, len(cuts)):
                parts.append(" ".join(sents[cuts[i - 1]:cuts[i]]))
                if i - 1 < len(needles):
                    parts.append(needles[i - 1])
            context = " ".join(parts)
        else:
            if type_haystack == "noise":
                lines = [NOISE] * n
            else:   # every line a distractor needle: key drawn before value
                lines = [NEEDLE.format(type_needle_v=type_needle_v, key=random_value(rs, type_needle_k),
                                       value=random_value(rs, type_needle_v)) for _ in range(n)]
            at = sorted(rs.sample(range(n), len(needles)), reverse=True)
            for line, needle in zip(at, needles):
                lines.insert(line, needle)
            context = "\n".join(lines)
            depths = [round(100 * line / n, 2) for line in at]
        picked = rs.sample(range(num_needle_k), num_needle_q)
        queries = [keys[i] for i in picked]
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
        fields = {"type_needle_v": shown_type, "context": context, "query": query}
        where = {"needles": [{"key": k, "value": v, "depth": d} for (_, k, v), d in zip(placed, depths)],
                 "queries": queries}                       # for the report's depth heatmap
        return ctx.render(fields), (fields, [a for i in picked for a in values[i]], where)

    inc = 500 if essay else (5 if ctx.length < 4096 else 25)
    per_unit = ctx.count_tokens(draw(inc)[0]) / inc
    size = search(ctx, lambda n: draw(n)[0], inc, max(int(ctx.length / per_unit * 3), inc * 2), budget)
    drafts = []
    for _ in range(ctx.num_samples):
        prompt, (fields, answers, where), tokens, used = fit_sample(ctx, draw, size, inc, budget)
        text = prompt[:len(prompt) - len(ctx.answer_prefix(fields))]
        first = text.find(answers[0])      # RULER's record: `index` is this character position (its quirk)
        ruler = record(tokens, new_tokens, first,
                       token_position_answer=ctx.count_tokens(text[:first]))
        drafts.append(SampleDraft(fields=fields, answers=answers, token_count=tokens, metadata={
            "haystack": type_haystack, "haystack_size": used, "searched_size": size,
            "haystack_unit": "words" if essay else "lines", **where, "ruler": ruler}))
    return drafts


# ---- variable tracking ----------------------------------------------------------------------------------------------

@register_official_sampler("ruler_variable_tracking")
def variable_tracking(ctx, *, num_chains: int = 1, num_hops: int = 4, type_haystack: str = "noise",
                      add_fewshot: bool = True, example_sep: str = "\n\n", essay_dir: str = "", nltk_data: str = "",
                      fit_new_tokens: int = 0):
    """First the one-shot example (3-letter names, value 12345, sized to 500 tokens with nothing to generate), then
    the dataset; every sample renames the example and inserts it before the task, followed by a newline."""
    check_length(ctx)
    check_choice(ctx.task, "type_haystack", type_haystack, ("noise", "essay"))
    essay = type_haystack == "essay"
    if essay:
        essays.require(ctx.task, essay_dir, nltk_data)
    budget = fit_budget(ctx, fit_new_tokens)
    new_tokens = ctx.length - budget
    st = Stream(ctx.seed)

    def chains_of(icl: bool):
        k, hops = (3, min(10, num_hops)) if icl else (5, num_hops)
        names = [st.upper(k) for _ in range((hops + 1) * num_chains)]
        while len(set(names)) < num_chains * (hops + 1):      # RULER appends, keeping the duplicates
            names.append(st.upper(k))
        groups = [names[i:i + hops + 1] for i in range(0, len(names), hops + 1)]
        chains = []
        for g in groups:
            value = "12345" if icl else str(st.np.randint(10000, 99999))
            chains.append([f"VAR {g[0]} = {value}"] + [f"VAR {g[j + 1]} = VAR {g[j]} " for j in range(hops)])
        return groups[0], chains

    def draw(n, icl):
        names, chains = chains_of(icl)
        value = chains[0][0].split("=")[-1].strip()
        if essay:
            sents = essays.sentences(essay_dir, nltk_data, n)
            flat = heap_shuffle(st.py, chains)
            cuts = [0] + sorted(int(len(sents) * (d / 100)) for d in st.py.sample(DEPTHS, len(flat))) + [len(sents)]
            parts = []
            for i in range(1, len(cuts)):
                parts.append(" ".join(sents[cuts[i - 1]:cuts[i]]))
                if i - 1 < len(flat):
                    parts.append(flat[i - 1].strip() + ".")
            context = " ".join(parts)
        else:
            lines = [NOISE] * n
            for chain in chains:
                for j, at in enumerate(sorted(st.py.sample(range(len(lines)), len(chain)))):
                    lines.insert(at + j, chain[j])
            context = "\n".join(lines)
        fields = {"example": "", "context": context.replace(". \n", ".\n"), "query": value, "num_v": num_hops + 1}
        return ctx.render(fields), (fields, names)

    def sized(length, budget, inc, icl, extra):
        per_unit = ctx.count_tokens(draw(inc, icl)[0]) / inc
        upper = max(int(length / per_unit * 3), inc * 2)
        return search(ctx, lambda n: draw(n, icl)[0], inc, upper, budget, extra)

    example, example_tokens = "", 0
    if add_fewshot:
        inc = 50 if essay else 5
        prompt, (_, names), _, _ = fit_sample(ctx, lambda n: draw(n, True), sized(500, 500, inc, True, 0), inc, 500)
        example = prompt + " " + " ".join(names) + "\n"
        example_tokens = ctx.count_tokens(example)

    def rename(text):
        """RULER's randomize_icl: the answer names (last num_hops+1 words) replaced everywhere by random capitals of
        the same length, then 12345 by a new value (plain str.replace)."""
        for item in text.strip().split()[-num_hops - 1:]:
            text = text.replace(item, st.upper(len(item)))
        return text.replace("12345", str(st.np.randint(10000, 99999)))

    def draw_sample(n):
        prompt, (fields, names) = draw(n, False)
        if add_fewshot:
            fields = {**fields, "example": rename(example)[:-1] + example_sep}
            prompt = ctx.render(fields)
        return prompt, (fields, names)

    inc = 500 if essay else (5 if ctx.length < 4096 else 10)
    size = sized(ctx.length, budget, inc, False, example_tokens)
    drafts = []
    for index in range(ctx.num_samples):
        _, (fields, names), tokens, used = fit_sample(ctx, draw_sample, size, inc, budget)
        drafts.append(SampleDraft(fields=fields, answers=names, token_count=tokens, metadata={
            "haystack": type_haystack, "haystack_size": used, "searched_size": size,
            "haystack_unit": "words" if essay else "lines", "value": fields["query"],
            "ruler": record(tokens, new_tokens, index)}))
    return drafts


# ---- common words extraction ----------------------------------------------------------------------------------------

@register_official_sampler("ruler_common_words")
def common_words(ctx, *, freq_cw: int = 30, freq_ucw: int = 3, num_cw: int = 10, num_fewshot: int = 1,
                 example_sep: str = "\n", fit_new_tokens: int = 0):
    check_length(ctx)
    budget = fit_budget(ctx, fit_new_tokens)
    new_tokens = ctx.length - budget
    pool = shuffled_pool(ctx.seed)
    rs = Stream(ctx.seed).py
    small = ctx.length < 4096

    def word_list(n, common_repeats, uncommon_repeats):
        if n > len(pool):
            raise TaskError(f"task {ctx.task}: length {ctx.length} needs {n} > {len(pool)} wonderwords words; RULER "
                            f"then draws from its english_words.json, which posbench does not ship")
        words = rs.sample(pool, n)
        listed = words[:num_cw] * common_repeats + words[num_cw:] * uncommon_repeats
        random.Random(ctx.seed).shuffle(listed)
        return numbered(listed), words[:num_cw]

    def draw(n):
        shots = [word_list(20, 3, 1) if small else word_list(40, 10, 3) for _ in range(num_fewshot)]
        context, answers = word_list(n, 6, 1) if small else word_list(n, freq_cw, freq_ucw)
        examples = [ctx.render({"example": "", "context": c}) + " " + numbered(a) for c, a in shots]
        fields = {"example": "\n".join(examples) + example_sep, "context": context}
        return ctx.render(fields), (fields, answers)

    inc = 10
    per_word = ctx.count_tokens(draw(4096)[0]) / 4096
    size = search(ctx, lambda n: draw(n)[0], inc, max(int(ctx.length // per_word) * 2, inc * 2), budget)
    drafts = []
    for index in range(ctx.num_samples):
        _, (fields, answers), tokens, used = fit_sample(ctx, draw, size, inc, budget)
        drafts.append(SampleDraft(fields=fields, answers=answers, token_count=tokens, metadata={
            "num_words": used, "searched_size": size, "ruler": record(tokens, new_tokens, index)}))
    return drafts


# ---- frequent words extraction --------------------------------------------------------------------------------------

@register_official_sampler("ruler_freq_words")
def freq_words(ctx, *, alpha: float = 2.0, coded_wordlen: int = 6, vocab_size: int = -1, fit_new_tokens: int = 0):
    """A fresh coded vocabulary for every call of RULER's generate_input_output (one to size the dataset, then one
    per sample); its linear search runs on the sizing call, each sample only shrinks."""
    check_length(ctx)
    budget = fit_budget(ctx, fit_new_tokens)
    new_tokens = ctx.length - budget
    size = budget // 50 if vocab_size == -1 else vocab_size
    if size < 4:
        raise TaskError(f"task {ctx.task}: length {ctx.length} is too small: a vocabulary of {size} words "
                        f"(budget // 50) cannot hold the noise word and three answers")
    step = budget // 32
    rs = Stream(ctx.seed).py

    def vocabulary():
        return coded_vocabulary(rs, size, coded_wordlen, ctx.seed)

    def text(vocab, n):
        counts = (n * (np.arange(1, len(vocab) + 1) ** -alpha) / zeta(alpha)).astype(int)
        words = [w for w, c in zip(vocab, counts) for _ in range(c)]
        random.Random(ctx.seed).shuffle(words)
        fields = {"context": " ".join(words), "query": ""}
        return ctx.count_tokens(ctx.render(fields)), fields

    vocab, n = vocabulary(), budget // coded_wordlen
    while text(vocab, n)[0] < budget:
        n += step
    n -= step
    drafts = []
    for index in range(ctx.num_samples):
        vocab, used = vocabulary(), n
        tokens, fields = text(vocab, used)
        while tokens > budget:
            used -= step
            if used <= 0:
                raise TaskError(f"task {ctx.task}: length {ctx.length} is too small for any coded text")
            tokens, fields = text(vocab, used)
        drafts.append(SampleDraft(fields=fields, answers=vocab[1:4], token_count=tokens, metadata={
            "num_words": used, "searched_size": n, "vocab_size": len(vocab),
            "ruler": record(tokens, new_tokens, index)}))
    return drafts


# ---- qa -------------------------------------------------------------------------------------------------------------

@register_official_sampler("ruler_qa")
def qa_docs(ctx, *, dataset: str, path: str, fit_new_tokens: int = 0):
    """Sample i asks question i; the search sizes the documents on question 0."""
    check_length(ctx)
    check_choice(ctx.task, "dataset", dataset, tuple(qa.OFFICIAL))
    docs, qas = qa.load(ctx.task, dataset, path)
    if ctx.num_samples > len(qas):
        raise TaskError(f"task {ctx.task}: {ctx.num_samples} samples ask {ctx.num_samples} questions, but {path} "
                        f"has only {len(qas)} answerable questions")
    budget = fit_budget(ctx, fit_new_tokens)
    new_tokens = ctx.length - budget
    rs = Stream(ctx.seed).py

    def draw(index, n):
        question, answers, own, more = qas[index]
        if n < len(docs):
            if n - len(own) > len(more):
                others = [i for i in range(len(docs)) if i not in own + more]
                chosen = own + more + rs.sample(others, max(0, n - len(own) - len(more)))
            else:
                chosen = own + rs.sample(more, n - len(own))
            texts = [docs[i] for i in chosen]
        else:
            texts = (list(docs) * -(-n // len(docs)))[:n]
        random.Random(ctx.seed).shuffle(texts)
        context = "\n\n".join(qa.DOCUMENT.format(i=i + 1, document=d) for i, d in enumerate(texts))
        fields = {"context": context, "query": question, "question": question}
        return ctx.render(fields), (fields, list(answers), len(texts))

    inc = 10
    per_doc = ctx.count_tokens(draw(0, inc)[0]) / inc
    size = search(ctx, lambda n: draw(0, n)[0], inc, max(int(ctx.length / per_doc * 3), inc * 2), budget)
    drafts = []
    for index in range(ctx.num_samples):
        ask = functools.partial(draw, index)
        _, (fields, answers, num_docs), tokens, used = fit_sample(ctx, ask, size, inc, budget)
        drafts.append(SampleDraft(fields=fields, answers=answers, token_count=tokens, metadata={
            "dataset": dataset, "question_index": index, "num_docs": num_docs, "searched_size": size,
            "ruler": record(tokens, new_tokens, index)}))
    return drafts
