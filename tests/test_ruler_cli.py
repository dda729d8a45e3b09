"""`eval.py generate` end to end, its one-line errors, `list tasks`, and a new RULER task written as YAML only."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from posbench.harness.cli import main
from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import TaskRegistry, build_samples, score_sample
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer", "essays", "punkt_tab")

REPO = Path(__file__).resolve().parents[1]
SHARED = default_data_root()
TOKENIZER = str(SHARED / "tokenizers" / "olmo2_dolma2_tokenizer.json")

UUID_PAIR = """
task: niah_uuid_pair
groups: [my_ruler]
description: a word key with two uuid values in noise, written as YAML only
source:
  generator: ruler_niah
  params: {type_haystack: noise, type_needle_k: words, type_needle_v: uuids, num_needle_v: 2}
template: "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\\n{context}\\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
answer_prefix: " The special magic {type_needle_v} for {query} mentioned in the provided text are"
max_new_tokens: 96
postprocess: [ruler_postprocess]
metrics: [string_match_all]
num_samples: 3
context_lengths: [2048]
"""


def generate(*args):
    return main(["generate", *args, "--tokenizer", TOKENIZER])


def test_generate_writes_one_json_line_per_sample(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    assert generate("niah_single_1", "--length", "2048", "--samples", "3", "--out", str(out)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2] and {r["length"] for r in rows} == {2048}
    for r in rows:
        assert r["prompt"].endswith(r["answer_prefix"]) and r["answers"][0] in r["prompt"]
        assert r["token_count"] + r["max_new_tokens"] <= 2048 and r["metadata"]["needles"][0]["depth"] >= 0
    err = capsys.readouterr().err
    assert "niah_single_1 length=2048: 3 samples, prompt tokens min/mean/max" in err and "fill 0.9" in err
    # Same request, same bytes; stdout gets the same lines.
    again = tmp_path / "again.jsonl"
    generate("niah_single_1", "--length", "2048", "--samples", "3", "--out", str(again))
    assert again.read_bytes() == out.read_bytes()
    generate("niah_single_1", "--length", "2048", "--samples", "3")
    assert capsys.readouterr().out == out.read_text()


def test_groups_and_several_lengths(tmp_path):
    out = tmp_path / "g.jsonl"
    assert generate("ruler_aggregation", "--length", "2048", "--length", "4096", "--samples", "1",
                    "--out", str(out)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["task"], r["length"]) for r in rows] == [("cwe", 2048), ("cwe", 4096), ("fwe", 2048), ("fwe", 4096)]


@pytest.mark.parametrize("args, message", [
    (["vt", "--length", "128"], "error: task vt: length 128 is too small"),
    (["niah_single_1", "--length", "128"], "error: task niah_single_1: length 128 leaves no room"),
    (["nonesuch", "--length", "2048"], "error: unknown task or group 'nonesuch'"),
    (["vt", "--length", "2048", "--data", "squad"], "error: --data expects NAME=PATH"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, capsys, args, message):
    out = tmp_path / "never.jsonl"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert generate(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err == err.splitlines()[0] and err.startswith(message.replace("{tmp}", str(tmp_path)))
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_missing_data_is_a_skip_naming_the_download(tmp_path, capsys):
    out = tmp_path / "none.jsonl"
    assert generate("niah_single_2", "--length", "2048", "--data-root", str(tmp_path), "--out", str(out)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"skipped: task niah_single_2: essay haystack not found: {tmp_path}/haystack/pg_essays")
    assert "run `python eval.py data download essays`" in err.splitlines()[0]
    assert err.splitlines()[1:] == ["error: nothing was generated (every task was skipped)"]


def test_unknown_generator_parameter_names_file_and_key(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(UUID_PAIR.replace("num_needle_v: 2", "num_needles: 2"))
    assert generate("niah_uuid_pair", "--length", "2048", "--include-path", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/bad.yaml: source.params: unknown parameter 'num_needles' for niah" in err
    assert "Traceback" not in err


def test_a_yaml_only_task_runs_without_code_changes(tmp_path, capsys):
    (tmp_path / "uuid_pair.yaml").write_text(UUID_PAIR)
    registry = TaskRegistry(include_paths=[tmp_path])
    spec = registry.resolve("my_ruler")[0]
    samples = build_samples(spec, _tokenizer(), length=2048, data_paths={"data": str(SHARED)})
    for s in samples:
        assert len(s.answers) == 2 and all(len(a) == 36 and a in s.prompt for a in s.answers)
        assert s.prompt.startswith("Some special magic uuids are hidden")
        assert 0.9 * 2048 <= s.token_count + 96 <= 2048
        assert score_sample(spec, s, f" {s.answers[1]} and {s.answers[0]}") == {"string_match_all": 1.0}
        assert score_sample(spec, s, f" {s.answers[1]}") == {"string_match_all": 0.5}
    out = tmp_path / "u.jsonl"
    assert generate("niah_uuid_pair", "--include-path", str(tmp_path), "--out", str(out)) == 0   # its own lengths
    assert [json.loads(x)["prompt"] for x in out.read_text().splitlines()] == [s.prompt for s in samples]


def _tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(TOKENIZER)


def test_list_tasks_shows_ruler_and_repo_variants(capsys):
    assert main(["list", "tasks"]) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    ruler = {"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
             "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"}
    assert ruler | {f"repo_{t}" for t in ruler} <= names
    assert main(["list", "groups"]) == 0
    groups = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert " 13 tasks" in groups["ruler"] and " 8 tasks" in groups["ruler_niah"] and " 13 tasks" in groups["ruler_repo"]
    assert groups["ruler_multi_hop_tracing"].endswith(": vt") and groups["ruler_aggregation"].endswith("cwe, fwe")


def test_eval_py_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "eval.py", "generate", "fwe", "--tokenizer", TOKENIZER, "--length", "2048",
                           "--samples", "1"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["task"] == "fwe" and len(row["answers"]) == 3 and "fwe length=2048: 1 samples" in proc.stderr
