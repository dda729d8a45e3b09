"""Property-based fuzzing (hypothesis) of everything a user types: sweep, training and task YAML, config.json and
`eval.py run` flags. Every outcome must be a success or one `error:` line with exit 2 (never a traceback), and no
result file may be left torn. Example counts are fixed and the database is off, so a CI run is deterministic and
takes about a minute."""
import contextlib
import copy
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posbench.harness.cli import main
from posbench.harness.evaluation.sweep import SweepError, parse_sweep
from posbench.harness.training.config import TrainConfigError, parse_train_config
from posbench.tasks import TaskError
from posbench.tasks.schema import parse_task

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "models" / "reference" / "rope"
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))

# Values of every YAML type, including the ones that used to slip through: NaN, inf, 0, negatives, bools as ints,
# strings where lists belong, nested junk.
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**7, 10**7), st.floats(allow_nan=True),
                    st.sampled_from(["", ",", "4k", "1k,1024", "infk", "auto", "rope", "/tmp", "${data}", "nan",
                                     "-1", "cuda", "float32", "yarn"]), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6) | st.integers(0, 9999),
                                                                       inner, max_size=3)), max_leaves=6)


def mutations(base: dict):
    """A valid mapping with some keys (at any depth) replaced by junk, deleted, or joined by unknown keys."""
    paths = []

    def walk(node, prefix):
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            paths.append((*prefix, key))
            if isinstance(value, (dict, list)):
                walk(value, (*prefix, key))
    walk(base, ())
    edit = st.tuples(st.sampled_from(paths), st.sampled_from(["replace", "delete", "add"]), VALUES)
    return st.lists(edit, min_size=1, max_size=3).map(lambda edits: apply(base, edits))


def apply(base: dict, edits) -> dict:
    raw = copy.deepcopy(base)
    for path, action, value in edits:
        node = raw
        try:
            for key in path[:-1]:
                node = node[key]
            if action == "replace":
                node[path[-1]] = value
            elif action == "delete" and isinstance(node, dict):
                node.pop(path[-1], None)
            elif isinstance(node, dict):
                node["unknown_" + str(path[-1])] = value
        except (KeyError, IndexError, TypeError):
            pass   # an earlier edit removed or replaced this path
    return raw


SWEEP = {"name": "s", "models": [{"label": "a", "path": "/m/a", "scheme": "rope",
                                  "scheme_params_by_length": {"8k": {"scaling": "yarn", "factor": 2}}},
                                 {"label": "b", "path": "/m/b"}],
         "tasks": ["niah_single_1"], "lengths": [4096, "8k"], "samples": 3, "seed": 1, "batch_size": "auto",
         "device": "cpu", "dtype": "auto", "beyond_max_positions": "refuse", "include_paths": [], "data_root": None,
         "data": {"x": "/tmp"}}

TRAIN = {"out": "o", "scheme": "rope",
         "model": {"init": "scratch", "config": {"model_type": "olmo2", "hidden_size": 32}, "init_std": 0.02},
         "tokenizer": {"train": {"vocab_size": 400, "synthetic_samples": 2}},
         "data": {"seed": 7, "task_paths": [], "task_modules": [],
                  "sources": [{"files": "a.txt", "weight": 0.5, "name": "t"},
                              {"task": "niah_single_1", "weight": 0.5, "samples": 10, "lengths": [64]}]},
         "train": {"seq_len": 64, "batch_size": 2, "steps": 4, "lr": 0.01, "warmup": 1, "betas": [0.9, 0.95],
                   "eval": {"tasks": ["niah_single_1"], "length": 64}}}

TASK = {"task": "t", "groups": ["g"], "source": {"generator": "ruler_niah", "params": {"type_haystack": "noise"}},
        "template": "{context}", "answer_prefix": " A:", "max_new_tokens": {"4096": 3, "default": 5},
        "stop": ["\n"], "metrics": ["string_match_all"], "num_samples": 5, "seed": 1,
        "context_lengths": [1024, 2048], "truncation": "none", "selection": "first"}


@settings(FUZZ, max_examples=300)
@given(mutations(SWEEP))
def test_sweep_files_parse_or_name_the_problem(raw):
    try:
        sweep = parse_sweep(raw, "s.yaml")
    except SweepError as err:
        assert str(err).startswith("s.yaml: ") and "\n" not in str(err)
        return
    assert sweep.models and sweep.tasks and len(set(sweep.lengths)) == len(sweep.lengths)
    assert all(isinstance(x, int) and 0 < x <= 1 << 20 for x in sweep.lengths)
    assert sweep.samples is None or (isinstance(sweep.samples, int) and sweep.samples >= 1)


@settings(FUZZ, max_examples=300)
@given(mutations(TRAIN))
def test_training_files_parse_or_name_the_problem(raw):
    try:
        cfg = parse_train_config(raw, "t.yaml")
    except TrainConfigError as err:
        assert str(err).startswith("t.yaml: ") and "\n" not in str(err)
        return
    t = cfg.train
    assert t["steps"] > t["warmup"] >= 0 and t["lr"] > 0 and t["batch_size"] >= 1 and cfg.sources


@settings(FUZZ, max_examples=300)
@given(mutations(TASK))
def test_task_files_parse_or_name_the_problem(raw):
    try:
        spec = parse_task(raw, "task.yaml")
    except TaskError as err:
        assert str(err).startswith("task.yaml") and "\n" not in str(err)
        return
    assert spec.num_samples >= 1 and spec.metrics


def run_cli(*argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:   # argparse's own usage errors
            code = stop.code
    return code, err.getvalue()


def assert_success_or_one_error(code, err):
    assert "Traceback" not in err, err
    if code == 0:
        return
    errors = [line for line in err.splitlines() if line.startswith("error: ") or ": error: " in line]
    assert code == 2 and len(errors) == 1, err


def assert_not_torn(folder: Path):
    for path in folder.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            assert path.read_text().endswith("\n")
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(path.read_text())))
            assert len({len(r) for r in rows}) == 1
        assert not path.name.endswith(".tmp"), path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_checkpoints import hf_model, save_hf

    return save_hf(hf_model("llama"), tmp_path_factory.mktemp("fuzz") / "tiny")


CONFIG_VALUES = st.one_of(VALUES, st.sampled_from([0, -5, 1, 2**40, "x", [], {}, None, True, 1.5]))
CONFIG_KEYS = st.sampled_from(["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                               "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
                               "rope_theta", "rope_scaling", "rope_parameters", "pe_config", "hidden_act",
                               "tie_word_embeddings", "rms_norm_eps", "sliding_window", "attention_bias"])


@settings(FUZZ, max_examples=40)
@given(st.one_of(st.dictionaries(CONFIG_KEYS, CONFIG_VALUES, min_size=1, max_size=3), VALUES))
def test_config_json_variants_load_or_give_one_error(tiny, changes):
    original = (tiny / "config.json").read_text()
    try:
        config = json.loads(original)
        config = {**config, **changes} if isinstance(changes, dict) else changes
        (tiny / "config.json").write_text(json.dumps(config, allow_nan=True))
        assert_success_or_one_error(*run_cli("info", tiny))
    finally:
        (tiny / "config.json").write_text(original)


MODELS = [str(REFERENCE), f"{REFERENCE}@ref", f"{REFERENCE}:rope,scaling=yarn,factor=nan", f"{REFERENCE}:nope",
          "/no/such/model", f"{REFERENCE}:rope,scaling=yarn,factor=-1"]
FLAGS = {"--tasks": ["niah_single_1", ",", "no_such_task", ""],
         "--lengths": ["512", "0", "infk", "1k,1024", "abc", "", "10000000", "4k", "-512"],
         "--samples": ["1", "0", "-1", "x"], "--batch-size": ["auto", "0", "abc", "1"], "--seed": ["1", "x"],
         "--dtype": ["auto", "float16"], "--data": ["a=/tmp", "novalue"], "--beyond-max-positions": ["refuse", "x"]}


@settings(FUZZ, max_examples=30)
@given(st.lists(st.sampled_from(MODELS), min_size=1, max_size=2),
       st.fixed_dictionaries({flag: st.sampled_from(values) for flag, values in FLAGS.items()}))
def test_run_flags_succeed_or_give_one_error_and_leave_nothing_torn(tmp_path_factory, models, flags):
    out = tmp_path_factory.mktemp("fuzz-run") / "run"
    argv = ["run", *[x for m in models for x in ("--model", m)], *[x for kv in flags.items() for x in kv],
            "--device", "cpu", "--out", out, "--no-progress"]
    assert_success_or_one_error(*run_cli(*argv))
    if out.exists():
        assert_not_torn(out)
