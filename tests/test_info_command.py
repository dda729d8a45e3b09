"""`eval.py info` on a Sakana-format checkpoint, and bad input as one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_checkpoints import sakana_checkpoint

from posbench.harness.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sakana(tmp_path_factory):
    return sakana_checkpoint(tmp_path_factory.mktemp("info") / "sakana")[0]


def info_json(capsys, *args):
    assert main(["info", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_json_detects_repo_from_layer_5(capsys, sakana):
    info = info_json(capsys, sakana)
    assert info["architecture"] == "olmo2" and info["num_layers"] == 16
    assert info["layer_schemes"] == ["rope"] * 5 + ["repo"] * 11
    assert info["num_parameters"] > info["position_parameters"] > 0
    assert info["max_position_embeddings"] == 64 and info["stored_dtype"] == "float32"


def test_info_json_with_forced_nope(capsys, sakana):
    with pytest.warns(UserWarning, match="ignoring the RePo weights of layers 5-15"):
        info = info_json(capsys, sakana, "--scheme", "nope")
    assert info["layer_schemes"] == ["nope"] * 16
    assert info["position_parameters"] == 0 and info["detected_scheme"] is None


def test_info_text_through_eval_py(sakana):
    out = subprocess.run([sys.executable, "eval.py", "info", str(sakana)], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "layers 0-4 rope, 5-15 repo" in out
    assert "position layers add" in out and "olmo2 (Olmo2ForCausalLM)" in out


@pytest.mark.parametrize("args, message", [
    (["/no/such/dir"], "error: /no/such/dir: no such directory"),
    (["{sakana}", "--scheme", "alibi"], "error: unknown scheme 'alibi' (valid: rope, nope, hybrid, repo)"),
    (["{sakana}", "--scheme", "repo,start=3"], "error: scheme repo: unknown parameter 'start'"),
])
def test_bad_input_is_one_line_without_traceback(capsys, sakana, args, message):
    assert main(["info", *(a.format(sakana=sakana) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
