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
    with pytest.raises(SweepError, match="positive"):
        parse_lengths([0])


def test_good_sweep_and_per_length_scheme():
    sweep = parse_sweep(dict(GOOD), "s.yaml")
    assert sweep.lengths == [4096, 8192]
    assert sweep.models[1].scheme_for(8192) == ("repo", {"scaling": "yarn"})
    assert sweep.models[1].scheme_for(4096) == ("repo", {})


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"models": [{"label": "a", "path": "/m", "schem": "rope"}]}, r"models\[0\]: unknown key 'schem'"),
    ({"models": [{"label": "a"}]}, "missing or empty key 'path'"),
    ({"models": [{"label": "a", "path": "/x"}, {"label": "a", "path": "/y"}]}, "labels must be unique"),
    ({"device": "tpu"}, "'device' must be one of"),
    ({"samples": 0}, "'samples' must be a positive int"),
    ({"batch_size": "big"}, "'batch_size' must be 'auto'"),
    ({"beyond_max_positions": "maybe"}, "beyond_max_positions"),
    ({"tasks": []}, "'tasks' must be a non-empty list"),
    ({"sampling": "exact"}, "'sampling' must be official or fill"),
])
def test_bad_sweeps_name_the_key(change, message):
    raw = dict(GOOD)
    raw.update(change)
    with pytest.raises(SweepError, match=message):
        parse_sweep(raw, "s.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SweepError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("models: [unclosed\n")
    with pytest.raises(SweepError, match="not valid YAML"):
        load_sweep(p)
