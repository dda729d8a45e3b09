"""The results store: atomic appends survive a kill mid-write, whole files are replaced atomically."""
import json
import os

from posbench.harness.evaluation.results import RunDir, SampleLog, atomic_write_json, bootstrap_ci, safe_name


def test_partial_last_line_is_dropped_and_appends_continue(tmp_path):
    log = SampleLog(tmp_path / "a" / "b.jsonl")
    log.append({"index": 0, "x": "é"})
    log.append({"index": 1})
    with open(log.path, "ab") as f:        # what a kill -9 in the middle of a write leaves behind
        f.write(b'{"index": 2, "predic')
    assert [r["index"] for r in log.read()] == [0, 1]
    log.append({"index": 2})
    assert [r["index"] for r in log.read()] == [0, 1, 2]
    assert log.path.read_bytes().count(b"\n") == 3


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    atomic_write_json(tmp_path / "m.json", {"c": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"c": 3}
    assert os.listdir(tmp_path) == ["m.json"]


def test_summary_round_trip_and_paths(tmp_path):
    run = RunDir(tmp_path)
    run.write_summary([{"model": "m", "task": "t", "length": "4096", "score": 50.0, "n": 2, "unused": 1}])
    rows = run.read_summary()
    assert rows[0]["model"] == "m" and rows[0]["score"] == "50.0" and "unused" not in rows[0]
    p = run.sample_log("my model/v1", "niah_single_1", 4096).path
    assert p == tmp_path / "samples" / "my_model_v1" / "niah_single_1" / "4096.jsonl"
    assert run.sample_log("m", "t", None).path.name == "native.jsonl"
    assert safe_name("..") == "_.." and safe_name("") == "_"


def test_bootstrap_interval_brackets_the_mean_and_is_deterministic():
    values = [1.0] * 30 + [0.0] * 10
    lo, hi = bootstrap_ci(values)
    assert lo < 75.0 < hi and 55 < lo and hi < 90
    assert bootstrap_ci(values) == (lo, hi)
    assert bootstrap_ci([1.0, 1.0]) == (100.0, 100.0)
    assert bootstrap_ci([]) == (None, None)
