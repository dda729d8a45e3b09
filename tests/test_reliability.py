"""Issue 13's hostile-user battery: one writer per run directory, unique labels, no code from data, bad values
refused before compute, one `error:` line (exit 2) for every user mistake, atomic and shareable outputs.

Runs use the shipped reference RoPE model (models/reference/rope, 7M parameters, its own tokenizer) on
niah_single_1 (noise haystack: no data files needed), so nothing here needs ../shared/data.
"""
import contextlib
import csv
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from posbench.harness.cli import BUG_LINE, main
from posbench.harness.evaluation.results import RunDir, SampleLog
from posbench.harness.files import OutputError, RunLock, publish_folder

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "models" / "reference" / "rope"
RUN = ["--tasks", "niah_single_1", "--lengths", "512", "--samples", "2", "--device", "cpu", "--no-progress"]


def cli(*argv) -> tuple:
    """(exit code, stdout, stderr) of `eval.py ARGV` in this process; argparse's own errors exit via SystemExit."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


def refused(*argv) -> str:
    """The one `error:` line a bad command gives (exit 2, no traceback)."""
    code, _, err = cli(*argv)
    assert code == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The reference model in a folder whose name has ':' and '@' (the --model syntax's separators)."""
    path = tmp_path_factory.mktemp("models") / "ref:rope@1"
    shutil.copytree(REFERENCE, path)
    return path


@pytest.fixture(scope="module")
def single_run(model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    old = os.umask(0o022)
    try:
        code, _, err = cli("run", "--model", model_dir, "--out", out, *RUN)
    finally:
        os.umask(old)
    assert code == 0, err
    return out


# ---- 1. one writer per run directory -----------------------------------------------------------------------------

def test_two_identical_runs_started_together_one_runs_the_other_refuses(model_dir, single_run, tmp_path):
    """The second run starts while the first holds the lock. To make the overlap certain on a loaded machine, the
    first is paused (SIGSTOP: it keeps its lock) from the moment its record is in .lock until the second has ended."""
    out = tmp_path / "shared-run"
    cmd = [sys.executable, "eval.py", "run", "--model", str(model_dir), "--out", str(out), *RUN]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while f'"pid": {first.pid}' not in ((out / ".lock").read_text() if (out / ".lock").exists() else ""):
        assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.02)
    first.send_signal(signal.SIGSTOP)
    try:
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    assert second.returncode == 2, second.stderr
    message = second.stderr
    assert message.startswith(f"error: run directory {out} is in use by pid {first.pid} ") and message.count("\n") == 1
    assert (out / "summary.csv").read_text() == (single_run / "summary.csv").read_text()
    indices = [json.loads(line)["index"] for line in next(out.glob("samples/*/*/*.jsonl")).read_text().splitlines()]
    assert indices == [0, 1]


def test_a_lock_left_by_a_killed_process_is_stale_and_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from posbench.harness.files import RunLock\n"
                               f"with RunLock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(OutputError, match=f"is in use by pid {holder.pid} on "):
        RunLock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert str(holder.pid) in (tmp_path / ".lock").read_text()     # the dead holder's record is still there ...
    with RunLock(tmp_path):                                         # ... but its lock died with it
        assert str(os.getpid()) in (tmp_path / ".lock").read_text()


def test_samples_logged_twice_count_once(tmp_path):
    log = SampleLog(tmp_path / "x.jsonl")
    for index, score in [(0, 1.0), (1, 0.0), (0, 0.0)]:
        log.append({"index": index, "scores": {"m": score}})
    assert [(r["index"], r["scores"]["m"]) for r in log.read()] == [(0, 1.0), (1, 0.0)]


# ---- 2. unique labels ---------------------------------------------------------------------------------------------

def test_models_with_the_same_folder_name_need_labels(tmp_path):
    err = refused("run", "--model", tmp_path / "a" / "rope", "--model", tmp_path / "b" / "rope", "--out",
                  tmp_path / "out", *RUN)
    assert f"({tmp_path / 'a' / 'rope'})" in err and f"({tmp_path / 'b' / 'rope'})" in err
    assert not (tmp_path / "out").exists()


# ---- 3. no code from data -----------------------------------------------------------------------------------------

class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_train_state_does_not_run_code(tmp_path):
    from posbench.harness.training.config import TrainConfigError
    from posbench.harness.training.train import load_train_state

    exploit = Exploit()
    exploit.marker = tmp_path / "pwned"
    torch.save({"format": 2, "step": 1, "payload": exploit}, tmp_path / "train_state.pt")
    with pytest.raises(TrainConfigError, match="cannot be read safely"):
        load_train_state(tmp_path / "train_state.pt")
    assert not exploit.marker.exists()
    (tmp_path / "cut.pt").write_bytes((tmp_path / "train_state.pt").read_bytes()[:100])
    with pytest.raises(TrainConfigError, match="cut.pt cannot be read safely"):
        load_train_state(tmp_path / "cut.pt")


TRAIN_FILE = """\
model: {init: scratch, config: {model_type: olmo2, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
                                num_attention_heads: 4, max_position_embeddings: 64}}
tokenizer: tok.json
data: {task_modules: [os], sources: [{files: x.txt, weight: 1}]}
train: {seq_len: 32, batch_size: 2, steps: 2, lr: 0.01}
"""


def test_task_modules_need_an_explicit_option(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(TRAIN_FILE)
    err = refused("train", path, "--out", tmp_path / "out")
    assert "data.task_modules lists Python modules to import (os)" in err and "--import-task-modules" in err


# ---- 4. validate before compute -----------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (["--model", f"{REFERENCE}:rope,scaling=yarn,factor=0"], "factor must be a positive finite number, got 0"),
    (["--model", f"{REFERENCE}:rope,scaling=yarn,factor=-2"], "factor must be a positive finite number, got -2"),
    (["--model", f"{REFERENCE}:rope,scaling=yarn,factor=nan"], "factor must be a positive finite number, got nan"),
    (["--samples", "0"], "--samples must be >= 1, got 0"),
    (["--tasks", ","], "--tasks: must name at least one task"),
    (["--lengths", "1k,1024"], "--lengths: length 1024 is given twice"),
    (["--lengths", "infk"], "--lengths: 'infk' is not a length"),
    (["--lengths", "10000000"], "must be between 1 and 1048576 tokens"),
    (["--lengths", "4k"], "length 4096 is beyond its 1024 positions"),
    (["--batch-size", "abc"], "--batch-size must be an integer or one of auto, got 'abc'"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--data", "novalue"], "--data 'novalue': need NAME=PATH"),
])
def test_bad_run_values_are_refused_before_compute(tmp_path, change, message):
    args = dict(zip(["--model", *RUN[::2]], [str(REFERENCE), *RUN[1::2]]))
    args.update(dict(zip(change[::2], change[1::2])))
    err = refused("run", *[x for kv in args.items() for x in kv], "--out", tmp_path / "out", "--no-progress")
    assert message in err, err
    assert not (tmp_path / "out").exists()


def test_extrapolation_runs_when_asked_for(tmp_path, model_dir):
    from posbench.harness.evaluation.runner import plan
    from posbench.harness.evaluation.sweep import parse_sweep

    sweep = parse_sweep({"models": [{"label": "r", "path": str(model_dir)}], "tasks": ["niah_single_1"],
                         "lengths": [2048], "beyond_max_positions": "extrapolate"}, "s.yaml")
    _, _, warnings = plan(sweep)
    assert warnings == ["model r: length 2048 is beyond its 1024 positions and no scaling is set"]


def tiny_checkpoint(tmp_path) -> Path:
    from tiny_checkpoints import hf_model, save_hf

    return save_hf(hf_model("llama"), tmp_path / "tiny")


@pytest.mark.parametrize("config, message", [
    ([1, 2], "must be a JSON object of config keys, got list"),
    ({"pe_config": "x"}, "key 'pe_config' must be an object"),
    ({"num_attention_heads": -4}, "key 'num_attention_heads' must be a positive integer, got -4"),
    ({"max_position_embeddings": -5}, "key 'max_position_embeddings' must be a positive integer, got -5"),
])
def test_bad_config_json_is_one_error_line(tmp_path, config, message):
    path = tiny_checkpoint(tmp_path)
    config_file = path / "config.json"
    if isinstance(config, dict):
        config = {**json.loads(config_file.read_text()), **config}
    config_file.write_text(json.dumps(config))
    err = refused("info", path)
    assert str(config_file) in err and message in err, err


def test_non_finite_weights_are_refused_at_load(tmp_path):
    from posbench.harness.core.checkpoint import CheckpointError, load_model

    path = tiny_checkpoint(tmp_path)
    weights = load_file(path / "model.safetensors")
    weights["model.layers.1.mlp.up_proj.weight"][3, 5] = float("nan")
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="weight model.layers.1.mlp.up_proj.weight holds NaN"):
        load_model(path)


def test_non_finite_logits_stop_a_run():
    from posbench.harness.evaluation.engine import NonFiniteLogits, TorchEngine

    engine = TorchEngine.load(REFERENCE, device="cpu", batch_size=1)
    assert all(map(lambda r: r[0] < 0, engine.loglikelihood([("The sky is", " blue")])))
    with torch.no_grad():
        engine.model.embed_tokens.weight.fill_(float("inf"))   # what an fp16/bf16 overflow would leave
    with pytest.raises(NonFiniteLogits, match="non-finite logits"):
        engine.loglikelihood([("The sky is", " blue")])


# ---- 5. one error path --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, text", [(errno.ENOSPC, "No space left on device"),
                                        (errno.EROFS, "Read-only file system")])
def test_full_or_read_only_disk_is_one_error_line(tmp_path, monkeypatch, code, text):
    import posbench.harness.files as files

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "out" / ".lock"))
    monkeypatch.setattr(files.os, "open", fail)
    err = refused("run", "--model", REFERENCE, "--out", tmp_path / "out", *RUN)
    assert err == f"error: {tmp_path / 'out' / '.lock'}: {text}\n"


def test_damaged_sample_line_and_manifest_name_file_and_line(single_run, tmp_path):
    run = tmp_path / "damaged"
    shutil.copytree(single_run, run)
    log = next(run.glob("samples/*/*/*.jsonl"))
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0][:40] + "\n" + "".join(lines[1:]))
    with pytest.raises(OutputError, match=f"{log}:1: not a JSON line"):
        SampleLog(log).read()
    (run / "manifest.json").write_text((single_run / "manifest.json").read_text()[:200])
    with pytest.raises(OutputError, match="manifest.json:[0-9]+: not valid JSON"):
        RunDir(run).read_manifest()
    (run / "summary.csv").write_text((single_run / "summary.csv").read_text() + "rope,rope\n")
    with pytest.raises(OutputError, match="summary.csv:3: 2 fields where the header has 12"):
        RunDir(run).read_summary()


def test_damaged_manifest_on_resume_is_one_error_line(model_dir, single_run, tmp_path):
    run = tmp_path / "resume"
    shutil.copytree(single_run, run)
    (run / "manifest.json").write_text((single_run / "manifest.json").read_text()[:200])
    err = refused("run", "--model", model_dir, "--out", run, *RUN)
    assert f"error: {run / 'manifest.json'}:" in err and "not valid JSON" in err


def test_report_out_naming_a_file_is_refused(single_run, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "--out" in refused("report", single_run, "--out", tmp_path / "file", "--no-plots")


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(monkeypatch):
    import posbench.harness.commands.list as list_command

    monkeypatch.setattr(list_command, "run", lambda args: {}["missing"])
    code, _, err = cli("list", "tasks")
    assert code == 1 and "Traceback" in err and "KeyError" in err and err.rstrip().endswith(BUG_LINE)


# ---- 6. atomic and shareable outputs ------------------------------------------------------------------------------

def test_results_are_readable_by_the_team(single_run):
    files = [single_run / "manifest.json", single_run / "summary.csv", *single_run.glob("samples/*/*/*.jsonl")]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}


def test_summary_grows_as_each_cell_finishes(model_dir, tmp_path):
    from posbench.harness.evaluation.runner import run_sweep
    from posbench.harness.evaluation.sweep import parse_sweep

    sweep = parse_sweep({"models": [{"label": "r", "path": str(model_dir)}], "tasks": ["niah_single_1"],
                         "lengths": [512, 768], "samples": 1, "device": "cpu"}, "s.yaml")
    seen = []
    run_sweep(sweep, tmp_path / "run", progress=False,
              echo=lambda line: seen.append(len(RunDir(tmp_path / "run").read_summary())))
    assert seen == [1, 2]


def test_final_folder_appears_whole_or_not_at_all(tmp_path):
    def crash(folder):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        publish_folder(crash, tmp_path / "final")
    assert not (tmp_path / "final").exists()

    def whole(folder):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"all")
    publish_folder(whole, tmp_path / "final")
    assert (tmp_path / "final" / "model.safetensors").read_bytes() == b"all"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_exported_weights_are_readable_by_the_team(tmp_path):
    from posbench.harness.core.checkpoint import load_model
    from posbench.harness.training.outputs import export

    model, _, _ = load_model(tiny_checkpoint(tmp_path))
    old = os.umask(0o022)
    try:
        path = export(model, tmp_path / "step_00001", None, "float32")
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in path.iterdir()} == {"0o644"}


def test_a_cut_off_loss_row_does_not_survive_a_resume(tmp_path):
    from posbench.harness.training.config import TrainConfigError
    from posbench.harness.training.outputs import LOSS_COLUMNS, append_csv, read_csv, truncate_csv

    path = tmp_path / "loss.csv"
    truncate_csv(path, LOSS_COLUMNS, 0)
    for step in (1, 2, 3):
        append_csv(path, LOSS_COLUMNS, {"step": step, "lr": 0.1, "loss": 2.5 - step / 10})
    with open(path, "a") as f:
        f.write("4,0.1,2.")                    # a crash mid-row
    truncate_csv(path, LOSS_COLUMNS, 2)         # resuming from the step-2 state
    assert [r["step"] for r in read_csv(path)] == ["1", "2"] and path.read_text().endswith("\n")
    with open(path, "a") as f:
        f.write("x,y\n3,0.1\n")
    with pytest.raises(TrainConfigError, match="loss.csv:4: not a complete row"):
        read_csv(path)
    assert list(csv.reader(io.StringIO(path.read_text())))[0] == LOSS_COLUMNS


def test_a_held_lock_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with RunLock(tmp_path):
            raise RuntimeError
    with RunLock(tmp_path):
        pass
    assert (tmp_path / ".lock").read_text() == ""


def test_a_damaged_training_text_line_names_file_and_line(tmp_path):
    from posbench.harness.training.config import TrainConfigError
    from posbench.harness.training.data import read_documents

    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "one"}\n{"text": "tw\n{"text": "three"}\n')
    with pytest.raises(TrainConfigError, match=f"{path}:2: not a JSON line"):
        read_documents(path, "text")


def test_generate_refuses_an_absurd_length(tmp_path):
    err = refused("generate", "niah_single_1", "--tokenizer", REFERENCE, "--length", "10000000")
    assert "--length must be at most 1048576 tokens" in err


def test_a_reader_that_stops_early_is_not_an_error():
    """`eval.py data list | head -1`: a reader that has gone away ends the command quietly (exit 0, no traceback).
    The pipe's read end is closed before the command writes, so every write meets a closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "eval.py", "data", "list"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_help_imports_no_heavy_package():
    """Building the parser (`eval.py --help`, `eval.py data list`) must not import torch, pandas or matplotlib."""
    code = ("import sys; from posbench.harness.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
