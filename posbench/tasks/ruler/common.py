"""Pieces every RULER generator shares: needle values, depths, seeded draws that do not depend on the size search,
and the search itself (the largest haystack that fits the token budget)."""
import random
import string
import uuid

import numpy as np

from posbench.tasks.errors import TaskError
from posbench.tasks.ruler import words

# RULER's 40 needle depths in percent: np.round(np.linspace(0, 100, 40)).astype(int).
DEPTHS = [int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True)).astype(int)]

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."


def random_value(rng: random.Random, kind: str) -> str:
    """A key or value as RULER's niah draws it: an adjective-noun pair, a 7-digit number or a uuid4."""
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        return rng.choice(words.adj_noun_pairs())
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise ValueError(kind)


def random_upper(rng: random.Random, k: int) -> str:
    """An uppercase name of k letters (variable tracking)."""
    return "".join(rng.choices(string.ascii_uppercase, k=k))


def check_choice(task: str, key: str, value, choices):
    if value not in choices:
        raise TaskError(f"task {task}: source.params.{key} must be one of {', '.join(map(str, choices))}, "
                        f"got {value!r}")


def fit_budget(ctx, fit_new_tokens: int) -> int:
    """Prompt tokens a sample may use. Normally the task's budget (length - max_new_tokens); with `fit_new_tokens`
    the sample is sized as RULER sized it for that many generated tokens, whatever the task generates (the RePo
    authors' variant: RULER-sized instances, then left-truncated by the schema)."""
    if ctx.length is None:
        raise TaskError(f"task {ctx.task}: RULER samples are fitted to a context length; give --length")
    return ctx.length - fit_new_tokens if fit_new_tokens else ctx.budget


class DistinctDraws:
    """Distinct indices below n (none from `exclude`), uniform without replacement, from a private RNG.

    The first k draws are the same whichever k is asked for, so a sample drawn before the size search keeps its
    content while the search tries more or fewer units (random.sample(range(n), k) changes with k).
    """

    def __init__(self, n: int, seed: int, exclude=()):
        self.n, self._rng, self._order, self._seen = n, random.Random(seed), [], set(exclude)
        self.available = n - len(self._seen)

    def take(self, k: int) -> list:
        if k > self.available:
            raise ValueError(f"cannot draw {k} distinct items from {self.available}")
        while len(self._order) < k:
            j = self._rng.randrange(self.n)
            if j not in self._seen:
                self._seen.add(j)
                self._order.append(j)
        return self._order[:k]


class LinePositions:
    """Distinct line indices for k inserted lines among N, like random.sample(range(N), k), but from fractions
    u_i drawn once: index floor(u_i * N), repeats skipped. The same sample keeps the same relative depths at every
    length and at every step of the size search."""

    def __init__(self, seed: int, task: str = ""):
        self._rng, self._u, self._task = random.Random(seed), [], task

    def sample(self, n_lines: int, k: int) -> list:
        if k > n_lines:
            raise TaskError(f"task {self._task}: {k} lines cannot take distinct places among {n_lines} haystack "
                            f"lines; use a longer length or fewer needles")
        out, i = [], 0
        while len(out) < k:
            if i == len(self._u):
                self._u.append(self._rng.random())
            j = int(self._u[i] * n_lines)
            if j not in out:
                out.append(j)
            i += 1
        return out


def fit(ctx, measure, budget: int, start: int, unit: str, limit: int = None):
    """The largest n in [start, limit] whose prompt fits: measure(n) -> (prompt tokens, payload).

    RULER binary-searches the number of haystack units once per dataset and then shrinks each sample by its
    increment until it fits; we search per sample (so each sample is at least as full), with the same lower bound
    `start` (RULER's increment). Token counts grow almost linearly in n, so secant steps bracket the answer in a
    few probes; bisection takes over whenever a secant step does not halve the bracket.
    """
    if limit is not None:
        start = min(start, limit)
    t_lo, p_lo = measure(start)
    if t_lo > budget:
        raise TaskError(f"task {ctx.task}: length {ctx.length} is too small: the smallest haystack ({start} {unit}) "
                        f"already makes a {t_lo}-token prompt, over the budget of {budget} tokens")
    lo, hi, t_hi = start, None, None
    prev, width = None, None         # an earlier fitting point (slope before a bracket exists); last bracket width
    while hi is None or hi - lo > 1:
        if hi is None:
            if lo == limit:
                break
            slope = (t_lo - prev[1]) / (lo - prev[0]) if prev and t_lo > prev[1] else t_lo / lo
            n = lo + max(1, int((budget - t_lo) / slope * 1.01) + 1)   # aim just past the budget to bracket it
            n = n if limit is None else min(n, limit)
        else:
            if width is not None and hi - lo > width / 2:
                n = (lo + hi) // 2
            else:
                n = lo + int((budget - t_lo) * (hi - lo) / max(t_hi - t_lo, 1))
            width = hi - lo
            n = min(max(n, lo + 1), hi - 1)
        t, p = measure(n)
        if t <= budget:
            prev, (lo, t_lo, p_lo) = (lo, t_lo), (n, t, p)
        else:
            hi, t_hi = n, t
    return lo, p_lo
