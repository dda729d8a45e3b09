"""scripts/train_protocol.py --tiny on a fixture corpus: every stage (base, the six continued schemes with three
seeds for rope and repo, sweep, report) runs on a CPU and leaves its checkpoint or report; a second run skips
what is finished."""
import csv
import importlib.util
import json
from pathlib import Path

import corpus_fixtures as fx
import torch
import yaml

from posbench.harness.training import corpus

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("train_protocol", ROOT / "scripts" / "train_protocol.py")
protocol = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(protocol)

MODELS = ["rope", "rope_seed1", "rope_seed2", "nope", "r2n1", "n2r1", "nope_from_start", "repo", "repo_seed1",
          "repo_seed2"]


def test_schemes_follow_the_paper_for_any_depth():
    assert protocol.schemes(12) == {
        "rope": "rope", "nope": "nope", "r2n1": "hybrid,pattern=RRN", "n2r1": "hybrid,pattern=NNR",
        "nope_from_start": "hybrid,nope_layers=[4,5,6,7,8,9,10,11]", "repo": "repo,start_layer=4"}
    assert protocol.schemes(6)["repo"] == "repo,start_layer=2"


def test_tiny_protocol_writes_every_checkpoint_and_a_report(tmp_path, capsys):
    data = tmp_path / "data"
    sources = fx.write_inputs(tmp_path / "inputs")
    corpus.build(tmp_path / "inputs", data / "corpus" / "natural_v1", sources, min_doc_chars=100, log=lambda m: None)
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert protocol.main(["--run", str(run), "--tiny", "--data-root", str(data)]) == 0
    finally:
        torch.set_num_threads(threads)
    layers = {"rope": ["rope"] * 6, "nope": ["nope"] * 6, "r2n1": ["rope", "rope", "nope"] * 2,
              "n2r1": ["nope", "nope", "rope"] * 2, "nope_from_start": ["rope"] * 2 + ["nope"] * 4,
              "repo": ["rope"] * 2 + ["repo"] * 4}
    from posbench.harness.cli import main as eval_main
    for name in ["base", *MODELS]:
        final = run / name / "final"
        assert (final / "model.safetensors").is_file() and (final / "README.md").is_file(), name
        capsys.readouterr()
        assert eval_main(["info", str(final), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["layer_schemes"] == layers["rope" if name == "base" else name.split("_seed")[0]], name
    manifest = json.loads((run / "repo" / "train_manifest.json").read_text())
    assert manifest["config"]["train"]["seq_len"] == 256 and manifest["config"]["model"]["init"] == "checkpoint"
    labels = MODELS + [f"{m}_yarn" for m in MODELS if m.split("_seed")[0] in protocol.ROTATING]
    with open(run / "sweep" / "summary.csv") as f:
        cells = {(row["model"], row["length"]) for row in csv.DictReader(f)}
    assert cells == {(label, length) for label in labels for length in ("1024", "2048")}
    report = (run / "report" / "report.md").read_text()
    assert all(f"`{label}`" in report for label in labels)

    capsys.readouterr()
    assert protocol.main(["--run", str(run), "--tiny", "--data-root", str(data), "--stages", "base,continue"]) == 0
    assert capsys.readouterr().out.count("finished before, skipped") == 11


def test_full_size_stage_files_pass_the_strict_config_check(tmp_path):
    from posbench.harness.training.config import load_train_config

    assert protocol.main(["--run", str(tmp_path), "--stages", ""]) == 0
    base = load_train_config(tmp_path / "configs" / "base.yaml")
    assert base.train["seq_len"] == 2048 and base.model["config"]["num_hidden_layers"] == 12
    runs = {name: load_train_config(tmp_path / "configs" / f"{name}.yaml") for name in MODELS}
    assert runs["repo"].scheme == "repo,start_layer=4"
    same = [{k: v for k, v in r.train.items() if k != "seed"} for r in runs.values()]
    assert all(t == same[0] for t in same) and same[0]["seq_len"] == 4096       # identical steps and schedule
    assert len({(r.data["seed"], r.train["seed"]) for r in runs.values()}) == 3  # seeds 0, 1, 2
    assert {r.data["seed"] for name, r in runs.items() if "_seed" not in name} == {2345}
    sweep = yaml.safe_load((tmp_path / "configs" / "sweep.yaml").read_text())
    assert sweep["lengths"] == [4096, 8192, 16384] and sweep["samples"] == 100
    assert {m["label"] for m in sweep["models"]} >= {"rope", "repo_seed2", "repo_seed2_yarn", "nope"}
    assert "nope_yarn" not in {m["label"] for m in sweep["models"]}
