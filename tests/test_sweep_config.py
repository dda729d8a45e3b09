"""Sweep files fail before any compute, naming the file, key and value."""
import pytest

from posbench.harness.evaluation.sweep import SweepError, load_sweep, parse_length, parse_lengths, parse_sweep

GOOD = {"models": [{"label": "a", "path": "/m/a"}, {"label": "b", "path": "/m/b", "scheme": "repo",
                                                      "scheme_params_by_length": {"8k": {"scaling": "yarn"}}}],
        "tasks": ["ruler_niah"], "lengths": ["4k", 8192]}


def test_lengths_accept_k_suffix():
    assert parse_length("4k") == 4096 and parse_length("16K") == 16384 and parse_length(2048) == 2048
    assert parse_lengths("4k,8k") == [4096, 8192]
    with pytest.raises(SweepError, match="'four' is not a length"):
        parse_length("four")
    with pytest.raises(SweepError, match="between 1 and"):
        parse_lengths([0])


def test_good_sweep_and_per_length_scheme():
    sweep = parse_sweep(dict(GOOD), "s.yaml")
    assert sweep.lengths == [4096, 8192]
    assert sweep.models[1].scheme_for(8192) == ("repo", {"scaling": "yarn"})
    assert sweep.models[1].scheme_for(4096) == ("repo", {})


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"models": [{"label": "a", "path": "/m", "schem": "rope"}]}, r"unknown key 'models\[0\].schem'"),
    ({"models": [{"label": "a"}]}, r"missing required key 'models\[0\].path'"),
    ({"models": [{"label": "a", "path": ""}]}, r"key 'models\[0\].path': must not be empty"),
    ({"models": []}, "'models' must list at least one model"),
    ({"models": "a"}, "'models' must be a list of mappings, got 'a'"),
    ({"models": [{"label": "a", "path": "/x"}, {"label": "a", "path": "/y"}]},
     r"models 'a' \(/x\) and 'a' \(/y\) have the same label"),
    ({"models": [{"label": "a/b", "path": "/x"}, {"label": "a_b", "path": "/y"}]}, "share a folder"),
    ({"models": [{"label": "a", "path": "/x", "scheme": 3}]}, r"'models\[0\].scheme' must be a string or null"),
    ({"models": [{"label": "a", "path": "/x", "scheme_params_by_length": [1]}]}, "must be a mapping, got"),
    ({"models": [{"label": "a", "path": "/x", "scheme_params_by_length": {"lots": {}}}]}, "'lots' is not a length"),
    ({"device": "tpu"}, "'device' must be one of"),
    ({"samples": 0}, "'samples' must be >= 1, got 0"),
    ({"samples": True}, "'samples' must be an integer or null, got True"),
    ({"seed": "x"}, "'seed' must be an integer"),
    ({"batch_size": "big"}, "'batch_size' must be an integer or one of auto"),
    ({"batch_size": 0}, "'batch_size' must be >= 1"),
    ({"beyond_max_positions": "maybe"}, "beyond_max_positions"),
    ({"tasks": []}, "'tasks': must name at least one task"),
    ({"tasks": ","}, "'tasks': must name at least one task"),
    ({"tasks": [1]}, r"'tasks\[0\]' must be a string"),
    ({"lengths": "1k,1024"}, "length 1024 is given twice"),
    ({"lengths": "infk"}, "'infk' is not a length"),
    ({"lengths": [10_000_000]}, "must be between 1 and 1048576"),
    ({"lengths": {"a": 1}}, "need a list of lengths"),
    ({"include_paths": "/tmp"}, "'include_paths' must be a list of strings, got '/tmp'"),
    ({"data": ["x"]}, "'data' must be a mapping"),
    ({"data": {"x": 1}}, "'data.x' must be a string"),
    ({"data_root": 5}, "'data_root' must be a string or null, got 5"),
    ({"sampling": "exact"}, "'sampling' must be"),
])
def test_bad_sweeps_name_the_key(change, message):
    raw = dict(GOOD)
    raw.update(change)
    with pytest.raises(SweepError, match=message):
        parse_sweep(raw, "s.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SweepError, match="no such file"):
        load_sweep(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("models: [unclosed\n")
    with pytest.raises(SweepError, match="not valid YAML"):
        load_sweep(p)


def test_command_line_flags_go_through_the_same_checks_and_name_the_flag():
    raw = {"models": [{"label": "a", "path": "/m"}], "tasks": ",", "lengths": "4k"}
    flags = {"tasks": "--tasks", "lengths": "--lengths", "samples": "--samples"}
    with pytest.raises(SweepError, match="command line: --tasks: must name at least one task"):
        parse_sweep(raw, "command line", flags=flags)
    with pytest.raises(SweepError, match="command line: --samples must be >= 1, got 0"):
        parse_sweep({**raw, "tasks": "a", "samples": 0}, "command line", flags=flags)


def test_model_spec_takes_existing_folders_whole(tmp_path):
    from posbench.harness.evaluation.sweep import parse_model_spec

    odd = tmp_path / "run:3@best"
    odd.mkdir()
    assert parse_model_spec(str(odd)) == {"label": "run:3@best", "path": str(odd), "scheme": None,
                                          "scheme_params": {}}
    spec = parse_model_spec(f"{odd}:hybrid,pattern=RRRN@h")
    assert (spec["path"], spec["scheme"], spec["scheme_params"], spec["label"]) == (str(odd), "hybrid",
                                                                                     {"pattern": "RRRN"}, "h")
    assert parse_model_spec("a/rope")["label"] == parse_model_spec("b/rope")["label"] == "rope"
