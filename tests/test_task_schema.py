"""The task schema: YAML validation, sample building, determinism, truncation and scoring plumbing."""
import json
from pathlib import Path

import pytest

from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import TaskError, TaskRegistry, build_samples, register_generator, register_loader, score_sample
from posbench.tasks.schema import SampleDraft, aggregate, load_task_file, sample_rng, truncate
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer")

SHARED = default_data_root()
TOKENIZER_FILE = SHARED / "tokenizers" / "olmo2_dolma2_tokenizer.json"


@pytest.fixture(scope="module")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(TOKENIZER_FILE)


@register_generator("_test_filler")
def _filler(ctx, word: str = "grass", needle_count: int = 1):
    """Fill the budget with `word`, hide numbered needles at random depths."""
    needles = [str(ctx.rng.randint(10**6, 10**7 - 1)) for _ in range(needle_count)]
    def build(n):
        words = [word] * n
        for j, v in enumerate(needles):
            words.insert(int(n * (j + 1) / (needle_count + 1)), f"[{v}]")
        return " ".join(words)
    n = 1
    while ctx.count_tokens(ctx.render({"context": build(n * 2)})) <= ctx.budget:
        n *= 2
    return SampleDraft(fields={"context": build(n)}, answers=needles, metadata={"words": n})


@register_loader("_test_records")
def _records(ctx, path: str):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [SampleDraft(fields={"context": r["text"]}, answers=[r["gold"]]) for r in rows]


def write(tmp_path, text, name="t.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = """
task: toy
groups: [toys]
source: {generator: _test_filler, params: {word: sky, needle_count: 2}}
template: "Remember the numbers.\\n{context}\\nWhat were they?"
answer_prefix: " They were"
max_new_tokens: 16
metrics: [string_match_all_test]
context_lengths: [256, 512]
num_samples: 3
"""


@pytest.fixture(autouse=True, scope="module")
def _toy_metric():
    from posbench.tasks import register_metric
    from posbench.tasks.registry import METRICS
    if "string_match_all_test" not in METRICS:
        register_metric("string_match_all_test")(
            lambda pred, s: sum(a.lower() in pred.lower() for a in s.answers) / len(s.answers))


def test_good_file_parses_and_builds_within_budget(tmp_path, tokenizer):
    spec = load_task_file(write(tmp_path, GOOD))
    assert spec.name == "toy" and spec.groups == ("toys",) and spec.primary_metric == "string_match_all_test"
    for length in (256, 512):
        samples = build_samples(spec, tokenizer, length=length)
        assert [s.index for s in samples] == [0, 1, 2]
        for s in samples:
            assert s.token_count + s.max_new_tokens <= length, (s.token_count, length)
            assert s.prompt.endswith(" They were") and s.answer_prefix == " They were"
            assert all(f"[{a}]" in s.prompt for a in s.answers)
            assert s.token_count == len(tokenizer.encode(s.prompt, add_special_tokens=False))


def test_same_seed_is_byte_identical_and_indices_differ(tmp_path, tokenizer):
    spec = load_task_file(write(tmp_path, GOOD))
    a = [s.to_json() for s in build_samples(spec, tokenizer, length=256)]
    b = [s.to_json() for s in build_samples(spec, tokenizer, length=256)]
    assert a == b
    assert len({json.loads(x)["prompt"] for x in a}) == 3
    # The same index draws the same needles at another length and in a smaller request.
    longer = build_samples(spec, tokenizer, length=512)
    assert [s.answers for s in longer] == [json.loads(x)["answers"] for x in a]
    assert build_samples(spec, tokenizer, length=256, indices=[2])[0].to_json() == a[2]
    assert build_samples(spec, tokenizer, length=256, seed=7)[0].answers != json.loads(a[0])["answers"]


def test_sample_rng_depends_on_seed_task_and_index():
    draws = {(s, t, i): sample_rng(s, t, i).random() for s in (1, 2) for t in ("a", "b") for i in (0, 1)}
    assert len(set(draws.values())) == len(draws)
    assert sample_rng(1, "a", 0).random() == draws[(1, "a", 0)]


@pytest.mark.parametrize("mutation, message", [
    ("colour: red\n", "unknown key 'colour'"),
    ("num_samples: many\n", "key 'num_samples' must be an integer"),
    ("num_samples: true\n", "key 'num_samples' must be an integer"),
    ("output_type: essay\n", "key 'output_type' must be one of"),
    ("sampling: exact\n", "key 'sampling' must be one of official, fill"),
    # only generators with an official sampler (RULER's) have a choice of sampling
    ("sampling: official\n", "key 'sampling' needs a generator with an official sampler"),
])
def test_bad_top_level_keys_name_file_and_key(tmp_path, mutation, message):
    p = write(tmp_path, GOOD + mutation)
    with pytest.raises(TaskError) as err:
        load_task_file(p)
    assert message in str(err.value) and str(p) in str(err.value)


def test_missing_key_unknown_generator_and_parameter(tmp_path):
    p = write(tmp_path, GOOD.replace('template: "Remember the numbers.\\n{context}\\nWhat were they?"\n', ""))
    with pytest.raises(TaskError, match="missing required key 'template'"):
        load_task_file(p)
    p = write(tmp_path, GOOD.replace("_test_filler", "_nope"), "b.yaml")
    with pytest.raises(TaskError, match="unknown generator '_nope'"):
        load_task_file(p)
    p = write(tmp_path, GOOD.replace("needle_count: 2", "needle_cnt: 2"), "c.yaml")
    with pytest.raises(TaskError, match="unknown parameter 'needle_cnt'.*accepted: word, needle_count"):
        load_task_file(p)
    p = write(tmp_path, GOOD.replace("[string_match_all_test]", "[bleu9]"), "d.yaml")
    with pytest.raises(TaskError, match="unknown metric 'bleu9'"):
        load_task_file(p)
    p = write(tmp_path, "- just\n- a list\n", "e.yaml")
    with pytest.raises(TaskError, match="must be a mapping"):
        load_task_file(p)
    p = write(tmp_path, "task: [unclosed\n", "f.yaml")
    with pytest.raises(TaskError, match="not valid YAML"):
        load_task_file(p)


def test_yaml_cannot_run_code(tmp_path):
    p = write(tmp_path, "task: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(TaskError, match="not valid YAML"):
        load_task_file(p)


def test_template_field_missing_from_source(tmp_path, tokenizer):
    spec = load_task_file(write(tmp_path, GOOD.replace("{context}", "{context} {haystack}")))
    with pytest.raises(TaskError, match="template field 'haystack'"):
        build_samples(spec, tokenizer, length=256)


def test_length_too_small_is_an_error(tmp_path, tokenizer):
    spec = load_task_file(write(tmp_path, GOOD))
    with pytest.raises(TaskError, match="no room for a prompt"):
        build_samples(spec, tokenizer, length=16)
    with pytest.raises(TaskError, match="length-controlled"):
        build_samples(spec, tokenizer)


LOADED = """
task: toy_loaded
source: {{loader: _test_records, params: {{path: "${{toydata}}/rows.jsonl"}}}}
template: "{{context}}\\nAnswer:"
max_new_tokens: 4
metrics: [string_match_all_test]
context_lengths: null
truncation: {truncation}
num_samples: 3
"""


def test_loader_data_paths_selection_and_truncation(tmp_path, tokenizer):
    rows = [{"text": "alpha " * 5 + "END", "gold": "END"}, {"text": "HEAD " + "beta " * 400 + "END", "gold": "END"}]
    (tmp_path / "toydata").mkdir()
    (tmp_path / "toydata" / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    spec = load_task_file(write(tmp_path, LOADED.format(truncation="none")))
    for paths in ({"toydata": str(tmp_path / "toydata")}, {"data": str(tmp_path)}):  # explicit, or under the root
        samples = build_samples(spec, tokenizer, length=64, data_paths=paths)
        assert len(samples) == 2                              # fewer records than num_samples
        assert samples[0].skip_reason is None
        assert "over the budget of 60" in samples[1].skip_reason  # counted as skipped, never silently scored
    with pytest.raises(TaskError, match="toydata"):
        build_samples(spec, tokenizer, length=64, data_paths={})
    for how in ("middle", "left"):
        spec = load_task_file(write(tmp_path, LOADED.format(truncation=how), f"{how}.yaml"))
        s = build_samples(spec, tokenizer, length=64, data_paths={"data": str(tmp_path)})[1]
        assert s.skip_reason is None and s.token_count <= 60
        assert s.prompt.endswith("END\nAnswer:")          # the end survives both rules
        assert s.prompt.startswith("HEAD") == (how == "middle")


def test_truncate_middle_keeps_both_ends(tokenizer):
    text = "START " + " ".join(f"w{i}" for i in range(500)) + " FINISH"
    cut = truncate(tokenizer, text, 50, "middle")
    assert cut.startswith("START") and cut.endswith("FINISH")
    assert len(tokenizer.encode(cut, add_special_tokens=False)) <= 50
    assert truncate(tokenizer, "short text", 50, "middle") == "short text"


def test_scoring_and_aggregate(tmp_path, tokenizer):
    spec = load_task_file(write(tmp_path, GOOD))
    s = build_samples(spec, tokenizer, length=256, indices=[0])[0]
    full = score_sample(spec, s, " " + " and ".join(s.answers))
    half = score_sample(spec, s, s.answers[0])
    none = score_sample(spec, s, "")
    assert full == {"string_match_all_test": 1.0} and half["string_match_all_test"] == 0.5
    assert aggregate(spec, [full, half, none]) == {"string_match_all_test": 50.0}


def test_registry_finds_groups_and_include_paths(tmp_path):
    write(tmp_path, GOOD)
    reg = TaskRegistry(include_paths=[tmp_path])
    assert reg.groups()["toys"] == ["toy"]
    assert [s.name for s in reg.resolve("toys")] == ["toy"]
    with pytest.raises(TaskError, match="unknown task or group 'nonesuch'"):
        reg.resolve(["nonesuch"])
    with pytest.raises(TaskError, match="does not exist"):
        TaskRegistry(include_paths=[tmp_path / "missing"])
    write(tmp_path, GOOD, "dup.yaml")
    with pytest.raises(TaskError, match="already defined"):
        TaskRegistry(include_paths=[tmp_path])
