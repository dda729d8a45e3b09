"""RULER's word lists, from the pinned wonderwords 3.0.1 (keys and cwe words change with its lists).

niah `words` keys/values are `random.choice(sorted(set(f"{adj}-{noun}")))`: 6,171,620 strings that take ten seconds
to build and sort. `SortedPairs` gives the same sequence (same length, same item at every index) without building
it: pairs sharing an adjective are contiguous and ordered by noun, except where one adjective plus "-" starts
another ("old-" and "old-fashioned-"), and only those few groups are built and sorted.
"""
import bisect
import functools
import itertools

from wonderwords import random_word


def _read(name: str) -> list:
    return random_word._get_words_from_text_file(name)


class SortedPairs:
    """sorted(set(f"{a}-{n}" for a in adjectives for n in nouns)) as a read-only sequence."""

    def __init__(self, adjectives, nouns):
        self._nouns = sorted(set(nouns))
        keyed = sorted(set(adjectives), key=lambda a: a + "-")
        # Group adjectives whose "adj-" prefixes another's: only inside a group can pairs interleave.
        groups = []
        for a in keyed:
            if groups and (a + "-").startswith(groups[-1][0] + "-"):
                groups[-1].append(a)
            else:
                groups.append([a])
        self._blocks = []            # (adjective, None) or (None, the group's pairs sorted)
        sizes = []
        for g in groups:
            if len(g) == 1:
                self._blocks.append((g[0], None))
                sizes.append(len(self._nouns))
            else:
                pairs = sorted({f"{a}-{n}" for a in g for n in self._nouns})
                self._blocks.append((None, pairs))
                sizes.append(len(pairs))
        self._starts = list(itertools.accumulate(sizes, initial=0))

    def __len__(self):
        return self._starts[-1]

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < len(self):
            raise IndexError(i)
        b = bisect.bisect_right(self._starts, i) - 1
        adjective, pairs = self._blocks[b]
        j = i - self._starts[b]
        return pairs[j] if pairs is not None else f"{adjective}-{self._nouns[j]}"


@functools.lru_cache(maxsize=None)
def adj_noun_pairs() -> SortedPairs:
    return SortedPairs(_read("adjectivelist.txt"), _read("nounlist.txt"))


@functools.lru_cache(maxsize=None)
def cwe_pool() -> tuple:
    """sorted(set(nouns + adjs + verbs)): 8,166 words with wonderwords 3.0.1 (before the seeded shuffle)."""
    return tuple(sorted(set(_read("nounlist.txt") + _read("adjectivelist.txt") + _read("verblist.txt"))))
