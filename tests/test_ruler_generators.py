"""RULER sample generation: official templates, needle placement, answer sets, determinism and the token budget.

Most checks run at 1-4K tokens; one 16K smoke per generator family keeps the default run under a minute."""
import re

import pytest

from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import TaskError, TaskRegistry, build_samples
from posbench.tasks.ruler import essays
from posbench.tasks.ruler.common import DEPTHS, NEEDLE, NOISE
from posbench.tasks.ruler.words import SortedPairs, adj_noun_pairs, cwe_pool
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer", "essays", "punkt_tab")

SHARED = default_data_root()
TOKENIZER_FILE = SHARED / "tokenizers" / "olmo2_dolma2_tokenizer.json"
PATHS = {"data": str(SHARED)}
ESSAYS, NLTK = str(SHARED / "haystack" / "pg_essays"), str(SHARED / "nltk_data")
DATA_FREE = ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
             "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe"]

# Literal strings from shared/reference/ruler.md §3.2 (RULER scripts/data/synthetic/constants.py).
NIAH_TEMPLATE = ("Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
                 "I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic "
                 "{type_needle_v} for {query} mentioned in the provided text?")
NIAH_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
NIAH_SINGULAR = ("A special magic {type_needle_v} is hidden within the following text. Make sure to memorize it. I "
                 "will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat is the special magic "
                 "{type_needle_v} for {query} mentioned in the provided text? The special magic {type_needle_v} for "
                 "{query} mentioned in the provided text is")
OFFICIAL = {
    "vt": ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
           "Question: Find all variables that are assigned the value {query} in the text above.",
           " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
           "assigned the value {query}, they are: "),
    "cwe": ("Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
            "ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?",
            " Answer: The top 10 words that appear most often in the list are:"),
    "fwe": ("Read the following coded text and track the frequency of each coded word. Find the three most "
            "frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the "
            "dots '....'. What are the three most frequently appeared words in the above coded text?",
            " Answer: According to the coded text above, the three most frequently appeared words are:"),
    "qa_1": ("Answer the question based on the given documents. Only give me the answer and do not output any other "
             "words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given "
             "documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}",
             " Answer:"),
}


@pytest.fixture(scope="module")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(TOKENIZER_FILE)


@pytest.fixture(scope="module")
def registry():
    return TaskRegistry()


def build(registry, tokenizer, task, length, n=1, **kw):
    return build_samples(registry.get(task), tokenizer, length=length, num_samples=n, data_paths=PATHS, **kw)


def tokens(tokenizer, text):
    return len(tokenizer.encode(text, add_special_tokens=False))


# ---- fixed tables and word lists ------------------------------------------------------------------------------------

def test_depths_are_rulers_forty():
    assert DEPTHS == [0, 3, 5, 8, 10, 13, 15, 18, 21, 23, 26, 28, 31, 33, 36, 38, 41, 44, 46, 49, 51, 54, 56, 59, 62,
                      64, 67, 69, 72, 74, 77, 79, 82, 85, 87, 90, 92, 95, 97, 100]


def test_word_lists_match_rulers_construction():
    pairs = adj_noun_pairs()
    assert len(pairs) == 6_171_620 and len(cwe_pool()) == 8_166           # wonderwords 3.0.1 (ruler.md §7)
    assert list(cwe_pool()) == sorted(cwe_pool())
    # Where one adjective prefixes another ("old", "old-fashioned") pairs interleave; compare with brute force.
    adjs, nouns = ["old", "old-fashioned", "oak", "ad hoc", "ad"], ["fashioned-tree", "tree", "hoc-x", "Zebra"]
    small = SortedPairs(adjs, nouns)
    assert list(small) == sorted({f"{a}-{n}" for a in adjs for n in nouns})
    picks = [pairs[i] for i in range(0, len(pairs), 99_991)]
    assert picks == sorted(picks) and all("-" in p for p in picks)


def test_adj_noun_pairs_are_strictly_increasing_hence_the_sorted_set():
    # Strictly increasing + 6,171,620 items (the size of the set, ruler.md §7) = sorted(set(pairs)). Inside a block
    # the order is the sorted nouns' (or an explicit sort); check every block boundary and a few items per block.
    pairs = adj_noun_pairs()
    starts = pairs._starts
    for b in range(1, len(starts) - 1):
        i = starts[b]
        assert pairs[i - 1] < pairs[i] < pairs[i + 1], i
    assert all(pairs[i] < pairs[i + 1] for i in range(0, len(pairs) - 1, 6_781))


def test_size_search_finds_the_largest_fitting_size():
    from types import SimpleNamespace

    from posbench.tasks.ruler.common import fit
    ctx = SimpleNamespace(task="toy", length=999)
    for per_unit, overhead, budget in ((1.3, 70, 4000), (24.0, 100, 16256), (0.7, 5, 900), (3.0, 0, 31)):
        probes = []

        def measure(n, probes=probes, overhead=overhead, per_unit=per_unit):
            probes.append(n)
            return int(overhead + per_unit * n + (n % 7) // 3), n     # near-linear, slightly bumpy, nondecreasing
        n, payload = fit(ctx, measure, budget, 10, "units")
        assert payload == n and measure(n)[0] <= budget < measure(n + 1)[0]
        assert len(probes) <= 14                                   # + the two checks above
    assert fit(ctx, lambda n: (n, n), 100, 10, "units", limit=40) == (40, 40)     # everything fits
    assert fit(ctx, lambda n: (n, n), 100, 10, "units", limit=5) == (5, 5)
    with pytest.raises(TaskError, match="task toy: length 999 is too small: the smallest haystack .10 units."):
        fit(ctx, lambda n: (n * 50, n), 100, 10, "units")


# ---- templates ------------------------------------------------------------------------------------------------------

def test_templates_are_the_official_strings(registry):
    # RULER's singular rewrite, applied to template + prefix as its generator does.
    singular = (NIAH_TEMPLATE + NIAH_PREFIX).replace("Some", "A").replace("are all", "is").replace("are", "is") \
        .replace("answers", "answer")
    assert singular == NIAH_SINGULAR
    for name in ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
                 "niah_multikey_3"):
        spec = registry.get(name)
        assert spec.template + spec.answer_prefix == NIAH_SINGULAR
    for name in ("niah_multivalue", "niah_multiquery"):
        spec = registry.get(name)
        assert (spec.template, spec.answer_prefix) == (NIAH_TEMPLATE, NIAH_PREFIX)
    for name, (template, prefix) in OFFICIAL.items():
        spec = registry.get(name)
        # vt and cwe carry their worked example in an {example} field at the very start.
        assert (spec.template.replace("{example}", "", 1), spec.answer_prefix) == (template, prefix)
    assert registry.get("qa_2").template == OFFICIAL["qa_1"][0]
    expected_new = {"vt": 30, "cwe": 120, "fwe": 50, "qa_1": 32, "qa_2": 32, "niah_single_1": 128}
    for name, n in expected_new.items():
        assert registry.get(name).new_tokens(4096) == n
    for spec in registry.resolve("ruler"):
        assert (spec.num_samples, spec.seed, spec.context_lengths) == (500, 42, (4096, 8192, 16384))


# The RePo authors' user/system templates (ruler.md §8.2); their prompt is user + "\n" + system.
REPO = {
    "singular": (NIAH_SINGULAR.split("? The special")[0] + "?",
                 "The special magic {type_needle_v} for {query} mentioned in the provided text is"),
    "plural": (NIAH_TEMPLATE, NIAH_PREFIX.strip()),
    "vt": ("{example}" + OFFICIAL["vt"][0], OFFICIAL["vt"][1].strip()),
    "cwe": ("{example}" + OFFICIAL["cwe"][0], OFFICIAL["cwe"][1].strip()),
    "fwe": (OFFICIAL["fwe"][0].replace(" {context}", "\n{context}"), OFFICIAL["fwe"][1].strip()),
    "qa": (OFFICIAL["qa_1"][0].replace("{query}", "{question}"), "Answer:"),
}


def test_repo_variant_prompts_and_lengths(registry):
    kinds = {"niah_multivalue": "plural", "niah_multiquery": "plural", "vt": "vt", "cwe": "cwe", "fwe": "fwe",
             "qa_1": "qa", "qa_2": "qa"}
    variants = registry.resolve("ruler_repo")
    assert len(variants) == 13
    for spec in variants:
        user, system = REPO[kinds.get(spec.variant_of, "singular")]
        assert (spec.template, spec.answer_prefix) == (user + "\n", system), spec.name
        assert spec.name == "repo_" + spec.variant_of and spec.variant_of in [t.name for t in registry.resolve("ruler")]
        assert spec.num_samples == 100 and spec.truncation == "left" and spec.score_with_prefix
    gen = {s.variant_of: [s.new_tokens(L) for L in (4096, 8192, 16384)] for s in variants}
    assert gen["niah_multivalue"] == [300, 250, 250]
    assert {t for t, n in gen.items() if n == [100] * 3} == {"niah_multikey_3", "niah_multiquery", "cwe"}
    assert {t for t, n in gen.items() if n == [50] * 3} == {"niah_single_1", "niah_single_2", "niah_single_3",
                                                             "niah_multikey_1", "niah_multikey_2", "vt", "fwe",
                                                             "qa_1", "qa_2"}


# ---- niah -----------------------------------------------------------------------------------------------------------

def check_needles(tokenizer, s):
    for needle in s.metadata["needles"]:
        text = NEEDLE.format(type_needle_v="numbers" if needle["value"].isdigit() else
                             ("uuids" if len(needle["value"]) == 36 else "words"),
                             key=needle["key"], value=needle["value"])
        assert s.prompt[needle["char_offset"]:needle["char_offset"] + len(text)] == text
        assert needle["token_offset"] == tokens(tokenizer, s.prompt[:needle["char_offset"]])


def test_essay_needle_sits_at_the_sampled_depth(registry, tokenizer):
    for s in build(registry, tokenizer, "niah_single_2", 1024, n=3) + build(registry, tokenizer, "niah_multikey_1",
                                                                             2048, n=2):
        check_needles(tokenizer, s)
        sents = essays.sentences(ESSAYS, NLTK, s.metadata["haystack_size"])
        begin = s.prompt.index("afterwards.\n") + len("afterwards.\n")
        for k, needle in enumerate(s.metadata["needles"]):
            assert needle["depth"] in DEPTHS and needle["sentences"] == len(sents)
            assert needle["sentence"] == int(len(sents) * (needle["depth"] / 100))
            # Everything before the needle: the essay's first `sentence` sentences and the earlier needles.
            before = s.prompt[begin:needle["char_offset"]]
            for other in s.metadata["needles"][:k]:
                before = before.replace(NEEDLE.format(type_needle_v="numbers", key=other["key"],
                                                      value=other["value"]) + " ", "", 1)
            assert before == " ".join(sents[:needle["sentence"]]) + " "


def test_noise_and_needle_haystacks_insert_at_the_line_index(registry, tokenizer):
    for task in ("niah_single_1", "niah_multikey_2", "niah_multikey_3"):
        for s in build(registry, tokenizer, task, 2048, n=2):
            check_needles(tokenizer, s)
            context = s.prompt.split("afterwards.\n", 1)[1].rsplit("\nWhat is the special", 1)[0]
            lines = context.split("\n")
            assert len(lines) == s.metadata["haystack_size"] + 1
            (needle,) = s.metadata["needles"]
            line = NEEDLE.format(type_needle_v="uuids" if task.endswith("3") else "numbers", key=needle["key"],
                                 value=needle["value"])
            assert lines.index(line) == needle["line"]            # just before original line `line`
            if task == "niah_single_1":
                assert [x for x in lines if x != line] == [NOISE] * s.metadata["haystack_size"]
            else:                                                  # every line is a needle; only one has the key
                assert all(re.fullmatch(r"One of the special magic \w+ for \S+ is: \S+\.", x) for x in lines)
                assert sum(f" for {needle['key']} is:" in x for x in lines) == 1


def test_multi_key_query_and_value_answer_sets(registry, tokenizer):
    s = build(registry, tokenizer, "niah_multikey_1", 2048)[0]
    needles = s.metadata["needles"]
    assert len(needles) == 4 and len({n["key"] for n in needles}) == 4
    (key,) = s.metadata["queries"]
    assert s.answers == [n["value"] for n in needles if n["key"] == key]
    assert s.prompt.endswith(f"What is the special magic number for {key} mentioned in the provided text? "
                             f"The special magic number for {key} mentioned in the provided text is")

    s = build(registry, tokenizer, "niah_multiquery", 2048)[0]
    keys = s.metadata["queries"]
    assert len(keys) == 4 and len(s.metadata["needles"]) == 4
    value_of = {n["key"]: n["value"] for n in s.metadata["needles"]}
    assert s.answers == [value_of[k] for k in keys]              # in the order the question asks
    query = f"{keys[0]}, {keys[1]}, {keys[2]}, and {keys[3]}"
    assert s.prompt.endswith(f" The special magic numbers for {query} mentioned in the provided text are")
    assert s.prompt.startswith("Some special magic numbers are hidden")

    s = build(registry, tokenizer, "niah_multivalue", 2048)[0]
    assert {n["key"] for n in s.metadata["needles"]} == set(s.metadata["queries"])
    assert sorted(s.answers) == sorted(n["value"] for n in s.metadata["needles"]) and len(s.answers) == 4
    check_needles(tokenizer, s)


def test_uuid_values_and_singular_type(registry, tokenizer):
    s = build(registry, tokenizer, "niah_single_3", 1024)[0]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", s.answers[0])
    assert s.prompt.startswith("A special magic uuid is hidden") and "special magic uuids for" in s.prompt


# ---- variable tracking, cwe, fwe ------------------------------------------------------------------------------------

def test_vt_chain_and_one_shot_example(registry, tokenizer):
    samples = build(registry, tokenizer, "vt", 2048, n=2)
    shapes = []
    for s in samples:
        names, value = s.answers, s.metadata["value"]
        assert len(names) == 5 and all(re.fullmatch(r"[A-Z]{5}", x) for x in names) and re.fullmatch(r"\d{5}", value)
        chain = [f"VAR {names[0]} = {value}"] + [f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(4)]
        offsets = [s.prompt.index("\n" + line + "\n") + 1 for line in chain]
        assert offsets == sorted(offsets) == s.metadata["char_offsets"]
        # The example comes first, ends with its 5 answers, a blank line, then the task.
        example = s.prompt.split("\n\nMemorize and track", 1)[0]
        assert example.startswith("Memorize and track the chain(s)")
        ex_names = example.rsplit("they are:  ", 1)[1].split(" ")   # RULER's prefix space + " " + answers
        assert len(ex_names) == 5 and all(re.fullmatch(r"[A-Z]{3}", x) for x in ex_names)
        ex_value = re.search(r"VAR " + ex_names[0] + r" = (\d{5})\n", example)[1]
        assert f"assigned the value {ex_value} in the text above." in example   # renamed consistently
        for j in range(4):
            assert f"\nVAR {ex_names[j + 1]} = VAR {ex_names[j]} \n" in example
        assert s.prompt.endswith(f"5 variables are assigned the value {value}, they are: ")
        # Only names and the value are re-randomised: the example's layout is the same in every sample.
        shapes.append(re.sub(r"\b[A-Z]{3}\b", "X", re.sub(r"\b\d{5}\b", "V", example)))
    assert shapes[0] == shapes[1] and samples[0].answers != samples[1].answers


def counted(listing: str) -> dict:
    """{word: count} of a "1. w 2. w ..." list, checking the numbering runs 1..n."""
    items = re.findall(r"(\d+)\. (\S+)", listing)
    assert [int(i) for i, _ in items] == list(range(1, len(items) + 1))
    words = [w for _, w in items]
    return {w: words.count(w) for w in words}


def test_cwe_counts_and_example(registry, tokenizer):
    # (length, task repeats common/rare, example words, example repeats): RULER's >=4096 and <4096 settings
    for length, repeats, shot, shot_repeats in ((4096, (30, 3), 40, (10, 3)), (2048, (6, 1), 20, (3, 1))):
        s = build(registry, tokenizer, "cwe", length)[0]
        example, task = s.prompt.split("\nBelow is a numbered list", 1)
        counts = counted(task.split("\nQuestion:")[0])
        assert len(s.answers) == 10 and all(counts[w] == repeats[0] for w in s.answers)
        assert all(c == repeats[1] for w, c in counts.items() if w not in s.answers)
        assert len(counts) == s.metadata["num_words"]
        # The example is the whole template with its own list, then " " and its 10 answers, numbered.
        listing, shown = example.split("\nQuestion:")[0], example.rsplit("appear most often in the list are: ", 1)[1]
        ex_counts, ex_answers = counted(listing), list(counted(shown))
        assert len(ex_counts) == shot and len(ex_answers) == 10
        assert all(ex_counts[w] == shot_repeats[0] for w in ex_answers)
        assert all(c == shot_repeats[1] for w, c in ex_counts.items() if w not in ex_answers)


def test_fwe_answers_are_the_three_most_frequent_words(registry, tokenizer):
    s = build(registry, tokenizer, "fwe", 4096)[0]
    text = s.prompt.split("coded words. ", 1)[1].split("\nQuestion:")[0]
    words = text.split(" ")
    ranked = sorted(set(words), key=words.count, reverse=True)
    assert ranked[0] == "..." and s.answers == ranked[1:4]
    assert s.metadata["vocab_size"] == (4096 - 50) // 50 == 80


# ---- determinism and budget -----------------------------------------------------------------------------------------

def test_same_seed_same_bytes_and_indices_differ(registry, tokenizer):
    for task in ("niah_single_2", "niah_multikey_2", "vt", "cwe", "fwe"):
        a = [s.to_json() for s in build(registry, tokenizer, task, 2048, n=2)]
        b = [s.to_json() for s in build(registry, tokenizer, task, 2048, n=2)]
        assert a == b and a[0] != a[1]
        alone = build_samples(registry.get(task), tokenizer, length=2048, indices=[1], data_paths=PATHS)[0]
        assert alone.to_json() == a[1]                           # a sample does not depend on the others
        assert build(registry, tokenizer, task, 2048, seed=7)[0].to_json() != a[0]


def test_same_index_keeps_needles_keys_and_depths_across_lengths(registry, tokenizer):
    for task in ("niah_multikey_1", "niah_single_1", "vt", "cwe"):
        short, long = build(registry, tokenizer, task, 4096)[0], build(registry, tokenizer, task, 8192)[0]
        assert short.answers == long.answers
        if task.startswith("niah"):
            a, b = short.metadata["needles"], long.metadata["needles"]
            assert [(n["key"], n["value"]) for n in a] == [(n["key"], n["value"]) for n in b]
            tolerance = 0 if task == "niah_multikey_1" else 100 / short.metadata["haystack_size"] + 1e-9
            assert all(abs(x["depth"] - y["depth"]) <= tolerance for x, y in zip(a, b))
        assert long.token_count > 1.9 * short.token_count


def check_budget(samples, length, full=True):
    for s in samples:
        assert s.token_count + s.max_new_tokens <= length
        if full:
            assert s.token_count + s.max_new_tokens >= 0.9 * length, (s.task, s.token_count, length)


@pytest.mark.parametrize("task", DATA_FREE)
def test_budget_at_4k(registry, tokenizer, task):
    samples = build(registry, tokenizer, task, 4096, n=2)
    check_budget(samples, 4096)
    for s in samples:
        assert s.token_count == tokens(tokenizer, s.prompt)      # measured, never estimated


@pytest.mark.parametrize("task", ["niah_single_2", "niah_multikey_3", "vt", "cwe", "fwe"])
def test_budget_at_16k(registry, tokenizer, task):
    check_budget(build(registry, tokenizer, task, 16384), 16384)


def test_repo_variant_is_sized_like_ruler_then_left_truncated(registry, tokenizer):
    s = build(registry, tokenizer, "repo_vt", 4096)[0]          # sized for RULER's 30 tokens, generates 50
    assert s.metadata["truncated_from_tokens"] > 4096 - 50 >= s.token_count
    assert s.prompt.endswith("they are:") and not s.prompt.startswith("Memorize")
    s = build(registry, tokenizer, "repo_niah_single_1", 4096)[0]   # sized for 128, generates 50: no cut
    assert "truncated_from_tokens" not in s.metadata and s.token_count <= 4096 - 128
    assert s.prompt.startswith("A special magic number is hidden") and "provided text?\nThe special" in s.prompt


@pytest.mark.parametrize("task, length, message", [
    ("niah_single_1", 128, "length 128 leaves no room"),
    ("niah_single_1", 300, "length 300 is too small"),
    ("niah_single_2", 600, "length 600 is too small"),
    ("vt", 512, "length 512 is too small"),
    ("fwe", 200, "length 200 is too small"),
])
def test_too_small_length_is_a_clear_error(registry, tokenizer, task, length, message):
    with pytest.raises(TaskError, match=f"task {task}: {message}"):
        build(registry, tokenizer, task, length)


def test_missing_essays_or_punkt_data_name_the_folder(registry, tokenizer, tmp_path):
    from posbench.tasks import MissingData
    spec = registry.get("niah_single_2")
    with pytest.raises(MissingData, match=f"task niah_single_2: essay haystack not found: {tmp_path}"):
        build_samples(spec, tokenizer, length=2048, num_samples=1, data_paths={"data": str(tmp_path)})
    (tmp_path / "haystack" / "pg_essays").mkdir(parents=True)
    (tmp_path / "haystack" / "pg_essays" / "a.txt").write_text("An essay. " * 50)
    with pytest.raises(MissingData, match="punkt_tab data not found.*`python eval.py data download punkt_tab`"):
        build_samples(spec, tokenizer, length=2048, num_samples=1, data_paths={"data": str(tmp_path)})
