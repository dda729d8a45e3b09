"""RULER `official` sampling against files NVIDIA/RULER's own prepare.py wrote (tests/fixtures/ruler_official/,
README there): for the same tokenizer (OLMo-2), base template, seed 42 and length, posbench's samples written in
RULER's record format must equal RULER's validation.jsonl byte for byte: prompt, answers and every other field.

Each fixture is RULER's first samples (its stream does not depend on how many follow). qa_1/qa_2 ran on small
synthetic files in the official SQuAD/HotpotQA layouts (qa_inputs/), since the real ones are downloads. The fixtures
need the tokenizer from the shared data, and the essay tasks its essays and punkt model: without them they skip."""
import json
import lzma
from pathlib import Path

import pytest

from posbench.harness.cli import main
from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import TaskRegistry, build_samples
from posbench.tasks.ruler.records import ruler_line

FIXTURES = Path(__file__).parent / "fixtures" / "ruler_official"
SHARED = default_data_root()
TOKENIZER = SHARED / "tokenizers" / "olmo2_dolma2_tokenizer.json"
ESSAY_TASKS = {"niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multivalue", "niah_multiquery"}
CELLS = sorted((int(p.parent.name), p.name.split(".")[0]) for p in FIXTURES.glob("[0-9]*/*.jsonl.xz"))


def ruler_file(length: int, task: str) -> str:
    return lzma.decompress((FIXTURES / str(length) / f"{task}.jsonl.xz").read_bytes()).decode("utf-8")


def need_data(task: str):
    if not TOKENIZER.is_file():
        pytest.skip(f"the OLMo-2 tokenizer is not at {TOKENIZER} (shared data; set POSBENCH_DATA)")
    if task in ESSAY_TASKS and not (SHARED / "haystack" / "pg_essays").is_dir():
        pytest.skip(f"{task} needs the Paul Graham essays under {SHARED / 'haystack' / 'pg_essays'}")


@pytest.fixture(scope="module")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(TOKENIZER) if TOKENIZER.is_file() else None


@pytest.fixture(scope="module")
def registry():
    return TaskRegistry()


@pytest.fixture(scope="module")
def data_paths(tmp_path_factory):
    """The shared data, plus the synthetic SQuAD/HotpotQA files RULER's qa generator read (README)."""
    folder = tmp_path_factory.mktemp("qa_inputs")
    paths = {"data": str(SHARED)}
    for name in ("squad", "hotpotqa"):
        path = folder / f"{name}.json"
        path.write_bytes(lzma.decompress((FIXTURES / "qa_inputs" / f"{name}.json.xz").read_bytes()))
        paths[name] = str(path)
    return paths


def test_fixtures_cover_all_13_tasks_at_two_lengths():
    tasks = {"niah_single_1", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe", "qa_1", "qa_2"} | ESSAY_TASKS
    assert {length for length, _ in CELLS} >= {4096, 8192}
    for length in (4096, 8192):
        assert {t for n, t in CELLS if n == length} == tasks


@pytest.mark.parametrize("length, task", CELLS, ids=[f"{t}@{n}" for n, t in CELLS])
def test_official_samples_equal_rulers_files(registry, tokenizer, data_paths, length, task):
    need_data(task)
    expected = ruler_file(length, task).splitlines(keepends=True)
    samples = build_samples(registry.get(task), tokenizer, length=length, num_samples=len(expected),
                            data_paths=data_paths)
    for sample, line in zip(samples, expected):
        assert sample.metadata["sampling"] == "official"
        for needle in sample.metadata.get("needles", []):       # niah: what the report's depth heatmap reads
            assert f"for {needle['key']} is: {needle['value']}." in sample.prompt and 0 <= needle["depth"] <= 100
        mine = ruler_line(sample)
        if mine != line:      # name the first field that differs, not a 40K-character diff
            got, want = json.loads(mine), json.loads(line)
            field = next((k for k in want if got.get(k) != want[k]), "key order or encoding")
            pytest.fail(f"{task}@{length} sample {sample.index}: field {field!r} differs from RULER's")
    assert len(samples) == len(expected)


def test_generate_format_ruler_writes_rulers_file(tmp_path, capsys):
    need_data("fwe")
    out = tmp_path / "validation.jsonl"
    expected = ruler_file(4096, "fwe")
    n = len(expected.splitlines())
    assert main(["generate", "fwe", "--tokenizer", str(TOKENIZER), "--length", "4096", "--samples", str(n),
                 "--format", "ruler", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == expected
    assert "official sampling" in capsys.readouterr().err


def test_fill_sampling_is_a_named_mode_and_recorded(registry, tokenizer):
    """fill fills every sample to the budget; official keeps RULER's one searched size (shorter prompts)."""
    need_data("fwe")
    spec = registry.get("fwe")
    fill = build_samples(spec, tokenizer, length=4096, num_samples=2, sampling="fill")
    official = build_samples(spec, tokenizer, length=4096, num_samples=2)
    assert [s.metadata["sampling"] for s in fill + official] == ["fill"] * 2 + ["official"] * 2
    assert [s.prompt for s in fill] != [s.prompt for s in official]
    assert json.loads(ruler_line(fill[1]))["index"] == 1


def test_too_small_length_is_a_clear_error(registry, tokenizer):
    need_data("niah_single_1")
    from posbench.tasks import TaskError
    with pytest.raises(TaskError, match="niah_single_1: length 160 is too small"):
        build_samples(registry.get("niah_single_1"), tokenizer, length=160, num_samples=1)


def test_format_ruler_refuses_tasks_that_are_not_rulers(capsys):
    assert main(["generate", "longbench_dureader", "--tokenizer", str(TOKENIZER), "--format", "ruler"]) == 2
    err = capsys.readouterr().err
    assert "error: --format ruler: RULER records need RULER tasks; not RULER: longbench_dureader" in err
