"""`eval.py train`: every scheme learns, checkpoints, resumes onto the same trajectory and loads in `eval.py info`;
RoPE -> RePo conversion; DDP equals gradient accumulation; bad input fails before training."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_toy
import yaml

from posbench.harness.cli import main
from posbench.harness.core.checkpoint import checkpoint_tensors, load_model, position_weight_layers
from posbench.harness.training.config import load_train_config
from posbench.harness.training.train import build_model, train
from tests.data_testing import DATA_ROOT, needs_data

ROOT = Path(__file__).resolve().parents[1]
C4 = str(DATA_ROOT / "text" / "c4-sample.01.json.gz")
SCHEMES = {"rope": ["rope"] * 4, "nope": ["nope"] * 4, "hybrid,pattern=RRRN": ["rope"] * 3 + ["nope"],
           "repo,start_layer=1": ["rope"] + ["repo"] * 3}

pytestmark = needs_data("c4_sample")


@pytest.fixture(autouse=True)
def one_thread():
    """Two threads on a busy two-core machine spin-wait for each other; the tiny models need one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    train_toy.write_task(root / "tasks")
    return root


def config(workdir: Path, name: str, scheme="rope", tokenizer=None, model=None, **train_keys) -> Path:
    """A tiny training file: 4-layer OLMo-2 (hidden 32), C4 text and toy retrieval samples, 64-token rows."""
    raw = {
        "scheme": scheme,
        "model": model or {"init": "scratch", "config": {
            "model_type": "olmo2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
            "num_attention_heads": 4, "max_position_embeddings": 128, "tie_word_embeddings": True}},
        "tokenizer": tokenizer or {"train": {"vocab_size": 400, "synthetic_samples": 2}},
        "data": {"task_paths": [str(workdir / "tasks")], "task_modules": ["train_toy"], "sources": [
            {"files": C4, "weight": 0.3, "name": "c4"},
            {"task": "toy_kv", "weight": 0.7, "samples": 32, "lengths": [64]}]},
        "train": {"seq_len": 64, "batch_size": 4, "steps": 8, "lr": 1e-2, "warmup": 1, "checkpoint_every": 4,
                  "num_workers": 0, "log_every": 100, **train_keys},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def losses(out: Path) -> list:
    rows = (out / "loss.csv").read_text().splitlines()[1:]
    return [float(r.split(",")[2]) for r in rows]


def info_json(capsys, path) -> dict:
    capsys.readouterr()  # drop the training logs
    assert main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def tokenizer(workdir):
    """A BPE trained once (through a scratch run's `tokenizer: {train: ...}`) and shared by the other runs."""
    cfg = load_train_config(config(workdir, "tok", steps=2, checkpoint_every=2), {"out": str(workdir / "tok")})
    torch.set_num_threads(1)
    train(cfg, cfg.out, progress=False)
    return str(workdir / "tok" / "final")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_learns_checkpoints_resumes_and_loads(workdir, tokenizer, capsys, scheme):
    name = scheme.split(",")[0]
    path = config(workdir, name, scheme, tokenizer=tokenizer)
    whole, parts = workdir / f"{name}-whole", workdir / f"{name}-parts"
    train(load_train_config(path), whole, progress=False)
    train(load_train_config(path), parts, progress=False, stop_at=5)     # interrupted after step 5 ...
    with open(parts / "loss.csv", "a") as f:                             # ... after logging step 6 already
        f.write("6,0.01,9.9,9.9,,,1.0,384,1.0,1\n")
    train(load_train_config(path), parts, progress=False, resume=True)

    curve = losses(whole)
    assert len(curve) == 8 and curve[-1] < curve[0] - 0.5, curve
    assert losses(parts) == pytest.approx(curve, abs=1e-6)
    assert sorted(p.name for p in whole.glob("step_*")) == ["step_00004", "step_00008"]
    info = info_json(capsys, whole / "final")
    assert info["layer_schemes"] == SCHEMES[scheme]
    assert (info["position_parameters"] > 0) == (name == "repo")
    card = (whole / "final" / "README.md").read_text()
    assert f"`{scheme}`" in card and "8 x 4 rows = 2,048 tokens seen" in card
    manifest = json.loads((whole / "train_manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["tokens_seen"] == 2048
    assert (whole / "loss.png").stat().st_size > 0


def test_trained_tokenizer_is_saved_with_the_weights(workdir, tokenizer):
    _, tok, _ = load_model(tokenizer)
    config_json = json.loads((Path(tokenizer) / "config.json").read_text())
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert config_json["eos_token_id"] == tok.eos_token_id and config_json["pad_token_id"] == tok.pad_token_id
    assert config_json["vocab_size"] % 64 == 0 and config_json["vocab_size"] >= len(tok)
    assert tok.tokenize(" 4719") == ["Ġ", "4", "7", "1", "9"]              # one token per digit
    text = "Ünïcode, tabs\tand 12345 survive."
    assert tok.decode(tok(text)["input_ids"]) == text                      # byte-level: nothing is lost


def test_rope_checkpoint_converts_to_repo_with_fresh_maps_that_learn(workdir, tokenizer, capsys):
    model = {"init": "checkpoint", "path": tokenizer}  # the fixture's final/ is a RoPE checkpoint
    path = config(workdir, "convert", "repo,start_layer=2", model=model, steps=3, checkpoint_every=3, lr=3e-3)
    cfg = load_train_config(path)
    start, _ = build_model(cfg, load_model(tokenizer)[1])   # the weights training starts from (same seed)
    maps = {k: v.clone() for k, v in checkpoint_tensors(start).items() if k in position_weight_layers(start)}
    assert len(maps) == 6 and all(0 < v.std() < 0.03 for v in maps.values())   # fresh, std 0.02

    train(cfg, workdir / "convert", progress=False)
    info = info_json(capsys, workdir / "convert" / "final")
    assert info["layer_schemes"] == ["rope"] * 2 + ["repo"] * 2 and info["fresh_position_layers"] == []
    trained = checkpoint_tensors(load_model(workdir / "convert" / "final")[0])
    assert all(not torch.equal(trained[k], maps[k]) for k in maps)               # every RePo map was updated
    rope = checkpoint_tensors(load_model(tokenizer)[0])
    up = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(trained[up], rope[up])


def test_schemes_start_from_the_same_shared_weights(workdir, tokenizer):
    tok = load_model(tokenizer)[1]
    models = {s: checkpoint_tensors(build_model(load_train_config(config(workdir, "init", s, tokenizer=tokenizer)),
                                                tok)[0]) for s in SCHEMES}
    rope = models["rope"]
    for scheme, weights in models.items():
        assert set(rope) <= set(weights) and all(torch.equal(rope[k], weights[k]) for k in rope), scheme


def test_gradients_reach_the_repo_position_maps(workdir, tokenizer):
    from posbench.harness.training.data import KIND_TEXT
    from posbench.harness.training.train import batch_loss

    cfg = load_train_config(config(workdir, "grad", "repo,start_layer=1", tokenizer=tokenizer))
    model, _ = build_model(cfg, load_model(tokenizer)[1])
    ids = torch.randint(0, 300, (2, 33))
    objective, _ = batch_loss(model(ids[:, :-1]), ids[:, 1:], torch.full((2, 32), KIND_TEXT), 1.0, 1e-5)
    objective.backward()
    grads = {}  # per position weight, its gradient (rows of the fused q/k/v weight's for RePo's input maps)
    for layer in model.layers[1:]:
        attn = layer.self_attn
        for name in attn.position.input_maps:
            grads[(layer, name)] = attn.qkv_proj.weight.grad[attn.qkv_proj.rows(name)]
        grads[(layer, "final_map")] = attn.position.final_map.weight.grad
    assert len(grads) == 9 and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_ddp_over_two_processes_equals_gradient_accumulation(workdir, tokenizer):
    accum = config(workdir, "accum", tokenizer=tokenizer, batch_size=2, grad_accum=2, steps=4, checkpoint_every=4)
    ddp = config(workdir, "ddp", tokenizer=tokenizer, batch_size=2, steps=4, checkpoint_every=4)
    train(load_train_config(accum), workdir / "accum", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "eval.py", "train", str(ddp), "--out", str(workdir / "ddp"), "--no-progress",
                    "--import-task-modules"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    assert losses(workdir / "ddp") == pytest.approx(losses(workdir / "accum"), abs=1e-6)
    manifest = json.loads((workdir / "ddp" / "train_manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["global_batch_rows"] == 4


# ---- bad input: one clear error before any training -------------------------------------------------------------

def bad(capsys, workdir, path, *args) -> str:
    out = workdir / "bad-out"
    capsys.readouterr()
    assert main(["train", str(path), "--out", str(out), "--no-progress", "--import-task-modules", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (out / "loss.csv").exists() and not (out / "train_state.pt").exists()
    return err


def edited(workdir, name, change, **kw) -> Path:
    path = config(workdir, name, **kw)
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(optimiser="adam"), "unknown key 'optimiser'"),
    (lambda r: r["train"].update(learning_rate=1), "unknown key 'train.learning_rate'"),
    (lambda r: r["data"]["sources"][1].update(weigth=1), "unknown key 'data.sources[1].weigth'"),
    (lambda r: r["train"].update(steps="many"), "key 'train.steps' must be an integer, got 'many'"),
    (lambda r: r["data"]["sources"][0].update(files="/no/such/file.txt"), "matches no file"),
    (lambda r: r["train"].update(seq_len=256), "train.seq_len 256 is above the model's 128 positions"),
    (lambda r: r["data"].update(seed=42), "data.seed 42 is the evaluation seed"),
    (lambda r: r["data"]["sources"][1].update(task="no_such_task"), "unknown task 'no_such_task'"),
    (lambda r: r["data"]["sources"][1].update(lengths=[128]), "length 128 is above train.seq_len 64"),
    (lambda r: r.update(scheme="repo,start_layer=9"), "start_layer 9 leaves no RePo layer"),
    (lambda r: r["model"]["config"].update(hidden_act="gelu"), "model.config: hidden_act 'gelu'"),
])
def test_bad_training_file_fails_before_training(workdir, tokenizer, capsys, change, message):
    path = edited(workdir, "bad", change, tokenizer=tokenizer)
    err = bad(capsys, workdir, path)
    assert err.startswith(f"error: {path}") and message in err, err


def test_generator_that_cannot_fit_the_length_fails_before_training(workdir, tokenizer, capsys):
    path = edited(workdir, "short", lambda r: r["data"]["sources"][1].update(lengths=[8]), tokenizer=tokenizer)
    assert "data source 'toy_kv'" in bad(capsys, workdir, path)


@pytest.mark.parametrize("change, key", [
    (lambda r: r.update(scheme="nope"), "scheme"),
    (lambda r: r["model"]["config"].update(hidden_size=64), "model.hidden_size"),
    (lambda r: r["train"].update(lr=0.5), "train.lr"),
])
def test_resume_with_other_settings_names_what_differs(workdir, tokenizer, capsys, change, key):
    run = workdir / "resume-src"
    if not (run / "train_state.pt").is_file():
        train(load_train_config(config(workdir, "resume-src", tokenizer=tokenizer, steps=4)), run, progress=False,
              stop_at=2)
    before = (run / "loss.csv").read_text()
    capsys.readouterr()
    path = edited(workdir, "resume-bad", change, tokenizer=tokenizer, steps=4)
    assert main(["train", str(path), "--out", str(run), "--resume", "--no-progress", "--import-task-modules"]) == 2
    err = capsys.readouterr().err
    assert f"was trained with {key} = " in err and "Traceback" not in err, err
    assert (run / "loss.csv").read_text() == before


def test_existing_run_needs_resume_and_resume_needs_a_run(workdir, tokenizer, capsys):
    path = config(workdir, "again", tokenizer=tokenizer)
    capsys.readouterr()
    allow = "--import-task-modules"
    assert main(["train", str(path), "--out", str(Path(tokenizer).parent), allow]) == 2   # the fixture's finished run
    assert "already holds a training run; pass --resume" in capsys.readouterr().err
    assert main(["train", str(path), "--out", str(workdir / "empty"), "--resume", allow]) == 2
    assert "has no train_state.pt to resume from" in capsys.readouterr().err
