"""RULER frequent words extraction (`scripts/data/synthetic/freq_words_extraction.py`): coded words drawn from a
Zipf (zeta) distribution; the model names the three most frequent, ignoring the '...' noise word."""
import random
import string

import numpy as np
from scipy.special import zeta

from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_generator
from posbench.tasks.ruler.common import fit_budget
from posbench.tasks.schema import SampleDraft


def coded_vocabulary(rng, size: int, word_length: int, seed: int) -> list:
    """RULER's fwe vocabulary: `size` distinct random lowercase words drawn from rng, sorted, shuffled by a
    Random(seed), and rank 0 replaced by the noise word '...' (both samplings draw it this way)."""
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=word_length)) for _ in range(size)]
    while len(set(vocab)) < size:
        vocab.append("".join(rng.choices(string.ascii_lowercase, k=word_length)))
    vocab = sorted(set(vocab))
    random.Random(seed).shuffle(vocab)
    vocab[0] = "..."                                # the top rank is noise
    return vocab


@register_generator("ruler_freq_words")
def freq_words(ctx, *, alpha: float = 2.0, coded_wordlen: int = 6, vocab_size: int = -1, fit_new_tokens: int = 0):
    budget = fit_budget(ctx, fit_new_tokens)        # RULER's max_len = L - tokens_to_generate
    size = budget // 50 if vocab_size == -1 else vocab_size
    if size < 4:
        raise TaskError(f"task {ctx.task}: length {ctx.length} is too small: a vocabulary of {size} words "
                        f"(budget // 50) cannot hold the noise word and three answers")
    rng = ctx.rng
    vocab = coded_vocabulary(rng, size, coded_wordlen, ctx.seed)
    ranks = np.arange(1, len(vocab) + 1)

    def build(n):
        counts = (n * (ranks ** -alpha) / zeta(alpha)).astype(int)
        words = [w for w, c in zip(vocab, counts) for _ in range(c)]
        random.Random(ctx.seed).shuffle(words)
        fields = {"context": " ".join(words), "query": ""}
        return ctx.count_tokens(ctx.render(fields)), fields, counts

    # RULER's linear search: start at max_len // coded_wordlen words, add max_len // 32 while under max_len, step
    # back once, then shrink by the same step while over it.
    step = budget // 32
    n = budget // coded_wordlen
    while build(n)[0] < budget:
        n += step
    n -= step
    tokens, fields, counts = build(n)
    while tokens > budget:
        n -= step
        if n <= 0:
            raise TaskError(f"task {ctx.task}: length {ctx.length} is too small for any coded text")
        tokens, fields, counts = build(n)
    metadata = {"num_words": n, "vocab_size": len(vocab), "top_counts": [int(c) for c in counts[:4]]}
    return SampleDraft(fields=fields, answers=vocab[1:4], metadata=metadata)
