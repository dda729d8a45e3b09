"""RULER variable tracking (`scripts/data/synthetic/variable_tracking.py`): chains `VAR B = VAR A` hidden in a
haystack; the model lists every variable that holds the chain's value. A one-shot example comes first."""
import heapq
import random

from posbench.tasks.registry import register_generator
from posbench.tasks.ruler import essays
from posbench.tasks.ruler.common import DEPTHS, NOISE, LinePositions, check_choice, fit, fit_budget, random_upper
from posbench.tasks.schema import SampleDraft

ICL_BUDGET = 500           # RULER builds its example at max_seq_length=500 with nothing to generate
ICL_VALUE = "12345"


def distinct_names(rng, count: int, k: int) -> list:
    # RULER appends names until the set is large enough but keeps the duplicates in the list (a one-in-a-million
    # event at 5 letters); we redraw a duplicate instead, so chains never share a name.
    names = []
    while len(names) < count:
        name = random_upper(rng, k)
        if name not in names:
            names.append(name)
    return names


def make_chains(rng, num_chains: int, num_hops: int, name_len: int, value=None):
    names = distinct_names(rng, num_chains * (num_hops + 1), name_len)
    chains = []
    for c in range(num_chains):
        v = names[c * (num_hops + 1):(c + 1) * (num_hops + 1)]
        first = f"VAR {v[0]} = {value if value is not None else rng.randint(10000, 99998)}"  # np randint(10000, 99999)
        chains.append([first] + [f"VAR {v[j + 1]} = VAR {v[j]} " for j in range(num_hops)])
    return names[:num_hops + 1], chains


def heap_shuffle(rng, chains) -> list:
    """RULER's shuffle_sublists_heap: interleave the chains at random, each chain's lines kept in order."""
    heap = [(rng.random(), i, 0) for i in range(len(chains))]
    heapq.heapify(heap)
    out = []
    while heap:
        _, i, j = heapq.heappop(heap)
        out.append(chains[i][j])
        if j + 1 < len(chains[i]):
            heapq.heappush(heap, (rng.random(), i, j + 1))
    return out


class Haystack:
    """Inserts chains into n noise lines (sorted random lines, order kept) or into n essay words (at DEPTHS)."""

    def __init__(self, rng, kind, chains, essay_dir, nltk_data, task=""):
        self.kind, self.chains, self.essay_dir, self.nltk_data = kind, chains, essay_dir, nltk_data
        if kind == "essay":
            self.flat = heap_shuffle(rng, chains)
            self.depths = sorted(rng.sample(DEPTHS, len(self.flat)))
        else:
            self.positions = [LinePositions(rng.getrandbits(64), task) for _ in chains]

    def context(self, n: int) -> tuple:
        if self.kind == "essay":
            sents = essays.sentences(self.essay_dir, self.nltk_data, n)
            cuts = [0] + [int(len(sents) * (d / 100)) for d in self.depths] + [len(sents)]
            parts = []
            for i in range(1, len(cuts)):
                parts.append(" ".join(sents[cuts[i - 1]:cuts[i]]))
                if i - 1 < len(self.flat):
                    parts.append(self.flat[i - 1].strip() + ".")
            where = [{"depth": d, "sentence": c} for d, c in zip(self.depths, cuts[1:-1])]
            return " ".join(parts).replace(". \n", ".\n"), where
        lines = [NOISE] * n
        for chain, positions in zip(self.chains, self.positions):
            at = sorted(positions.sample(len(lines), len(chain)))
            for j, p in enumerate(at):
                lines.insert(p + j, chain[j])
        where = [[lines.index(line) for line in chain] for chain in self.chains]   # final line of each chain line
        return "\n".join(lines).replace(". \n", ".\n"), where


def icl_example(ctx, kind, num_chains, num_hops, essay_dir, nltk_data) -> str:
    """The one-shot example, as RULER builds it once per dataset: 3-letter names, value 12345, fitted to 500
    tokens, followed by a space and its answer. Seeded by the task seed alone: every sample starts from the same
    example and only renames it."""
    rng = random.Random(f"ruler-vt-icl:{ctx.seed}")
    names, chains = make_chains(rng, num_chains, min(10, num_hops), 3, ICL_VALUE)
    hay = Haystack(rng, kind, chains, essay_dir, nltk_data, ctx.task)

    def build(n):
        prompt = ctx.render({"example": "", "context": hay.context(n)[0], "query": ICL_VALUE,
                             "num_v": num_hops + 1})
        return ctx.count_tokens(prompt), prompt

    _, prompt = fit(ctx, build, ICL_BUDGET, 50 if kind == "essay" else 5, "words" if kind == "essay" else "lines")
    return prompt + " " + " ".join(names)


def randomize_icl(rng, example: str, num_hops: int) -> str:
    """RULER's randomize_icl: each answer name (the last num_hops+1 words) is replaced everywhere by random capitals
    of the same length, then 12345 by a new 5-digit value (plain str.replace, exactly as RULER does)."""
    for item in example.strip().split()[-num_hops - 1:]:
        example = example.replace(item, random_upper(rng, len(item)))
    return example.replace(ICL_VALUE, str(rng.randint(10000, 99998)))


@register_generator("ruler_variable_tracking")
def variable_tracking(ctx, *, num_chains: int = 1, num_hops: int = 4, type_haystack: str = "noise",
                      add_fewshot: bool = True, example_sep: str = "\n\n", essay_dir: str = "", nltk_data: str = "",
                      fit_new_tokens: int = 0):
    """`example_sep` follows the example: RULER's example ends in "\\n" and is joined to the task by "\\n"."""
    check_choice(ctx.task, "type_haystack", type_haystack, ("noise", "essay"))
    if type_haystack == "essay":
        essays.require(ctx.task, essay_dir, nltk_data)
    rng = ctx.rng
    answers, chains = make_chains(rng, num_chains, num_hops, 5)
    value = chains[0][0].split("=")[-1].strip()
    hay = Haystack(rng, type_haystack, chains, essay_dir, nltk_data, ctx.task)
    example = ""
    if add_fewshot:
        example = randomize_icl(rng, icl_example(ctx, type_haystack, num_chains, num_hops, essay_dir, nltk_data),
                                num_hops) + example_sep

    def build(n):
        context, where = hay.context(n)
        fields = {"example": example, "context": context, "query": value, "num_v": num_hops + 1}
        prompt = ctx.render(fields)
        return ctx.count_tokens(prompt), (fields, prompt, where)

    essay = type_haystack == "essay"
    start = 500 if essay else (5 if ctx.length is not None and ctx.length < 4096 else 10)
    n, (fields, prompt, where) = fit(ctx, build, fit_budget(ctx, fit_new_tokens), start,
                                     "words" if essay else "lines")
    begin = prompt.index(fields["context"])
    metadata = {
        "haystack": type_haystack, "haystack_size": n, "haystack_unit": "words" if essay else "lines",
        "value": value, "chains": chains, "placement": where,
        # where each line of the asked chain starts in the prompt (after the one-shot example)
        "char_offsets": [prompt.index(line.strip(), begin) for line in chains[0]],
    }
    return SampleDraft(fields=fields, answers=answers, metadata=metadata)
