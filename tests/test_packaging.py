"""posbench as an installed package: it shadows nothing (transformers' model code imports beside it, with Hugging
Face's `kernels` package installed), and the user-facing commands work from any directory without PYTHONPATH."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_TOKENIZER = REPO / "models" / "reference" / "rope" / "tokenizer.json"


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    return env | extra


def test_transformers_model_classes_import_from_the_repository_root():
    """The old top-level kernels/ folder shadowed HF's `kernels`, which transformers 5.25 imports: from the repository
    root (the current directory comes first on sys.path) every architecture posbench loads must still import."""
    code = ("import importlib.util, json; "
            "from transformers import Olmo2ForCausalLM, LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM; "
            "import posbench.kernels; spec = importlib.util.find_spec('kernels'); "
            "print(json.dumps({'kernels': spec and spec.origin, 'ours': posbench.kernels.__file__}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["ours"]).is_relative_to(REPO / "posbench" / "kernels")
    if importlib.util.find_spec("kernels") is not None:    # transformers >= 5.25 pulls it in; older ones need not
        assert Path(found["kernels"]).parent.parent.name in ("site-packages", "dist-packages"), \
            f"HF kernels shadowed by {found['kernels']}"


def installed_console_script() -> Path:
    """The `posbench` command of this interpreter's environment, when it runs this checkout (else skip)."""
    script = Path(sys.executable).parent / "posbench"
    if not script.is_file():
        pytest.skip(f"no `posbench` command beside {sys.executable}: pip install -e . in this checkout")
    where = subprocess.run([sys.executable, "-c", "import posbench; print(posbench.__file__)"], cwd="/",
                           env=clean_env(), capture_output=True, text=True, timeout=120)
    if where.returncode != 0 or not Path(where.stdout.strip()).is_relative_to(REPO):
        pytest.skip(f"the installed posbench is another checkout ({where.stdout.strip() or where.stderr[-200:]}); "
                    "pip install -e . here to test this one")
    return script


def write_arc_split(folder: Path, rows: list):
    """An ARC validation split as `datasets.save_to_disk` writes it (one Arrow stream file)."""
    import pyarrow as pa
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)


@pytest.mark.slow
def test_lm_eval_command_from_another_directory(tmp_path):
    """What an lm-eval user types, in a directory that is not the repository, with no PYTHONPATH and no start-up hook:
    `posbench lm-eval --model posbench ...` on a tiny checkpoint of the model core and a 4-question ARC split."""
    pytest.importorskip("lm_eval")
    script = installed_console_script()
    from tiny_models import build_tiny_model
    model = build_tiny_model(tmp_path / "tiny", REFERENCE_TOKENIZER, "repo,start_layer=1", seed=2, hidden=32,
                             layers=2, heads=2, max_positions=512)
    rows = [{"id": f"q{i}", "question": f"Which number comes after {i}?",
             "choices": {"text": [str(i + 1), str(i + 5), "blue", "never"], "label": ["A", "B", "C", "D"]},
             "answerKey": "A"} for i in range(4)]
    write_arc_split(tmp_path / "data" / "general" / "ai2_arc" / "ARC-Easy" / "validation", rows)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cmd = [str(script), "lm-eval", "--model", "posbench", "--model_args", f"pretrained={model},max_length=256",
           "--tasks", "posbench_arc_easy", "--limit", "4", "--batch_size", "4", "--device", "cpu",
           "--output_path", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=elsewhere, env=clean_env(POSBENCH_DATA=str(tmp_path / "data")),
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    assert results["n-samples"]["posbench_arc_easy"]["effective"] == 4
    assert 0.0 <= results["results"]["posbench_arc_easy"]["acc,none"] <= 1.0
