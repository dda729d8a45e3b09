"""A sweep of 2 tiny models x 2 RULER tasks x 2 lengths x 3 samples, killed with SIGKILL mid-way, resumes without
recomputing finished samples and ends with the same summary as an uninterrupted run; `report` then writes the
markdown and the plots. Bad sweeps fail before any compute."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_models import build_tiny_model

from posbench.harness.cli import main
from posbench.harness.evaluation.data import default_data_root
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer")

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = default_data_root() / "tokenizers" / "olmo2_dolma2_tokenizer.json"


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    models = [{"label": "rope", "path": str(build_tiny_model(root / "rope", TOKENIZER, "rope", seed=1, hidden=32))},
              {"label": "repo", "path": str(build_tiny_model(root / "repo", TOKENIZER, "repo,start_layer=2", seed=1,
                                                             hidden=32))}]
    sweep = {"name": "resume-test", "models": models, "tasks": ["niah_single_1", "niah_multikey_2"],
             "lengths": [512, 768], "samples": 3, "seed": 5, "device": "cpu", "batch_size": 1}
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def sample_records(run: Path) -> list:
    return [json.loads(line) for p in sorted(run.glob("samples/*/*/*.jsonl")) for line in p.read_text().splitlines()]


def test_killed_sweep_resumes_to_the_uninterrupted_summary(sweep_file, tmp_path, capsys):
    straight = tmp_path / "straight"
    assert main(["sweep", str(sweep_file), "--out", str(straight), "--no-progress"]) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "eval.py", "sweep", str(sweep_file), "--out", str(killed),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(sample_records(killed)) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = len(sample_records(killed))
    assert 0 < finished_before < 24, "the kill must land mid-way for this test to mean anything"
    before = {(r["index"], r["prompt_hash"]): r["prediction"] for r in sample_records(killed)}

    assert main(["sweep", str(sweep_file), "--out", str(killed), "--no-progress"]) == 0
    records = sample_records(killed)
    assert len(records) == 24                                   # 2 models x 2 tasks x 2 lengths x 3 samples
    per_file = [[json.loads(x)["index"] for x in p.read_text().splitlines()] for p in killed.glob("samples/*/*/*")]
    assert all(sorted(ix) == [0, 1, 2] for ix in per_file)     # nothing duplicated, nothing lost
    after = {(r["index"], r["prompt_hash"]): r["prediction"] for r in records}
    assert all(after[k] == v for k, v in before.items())        # finished samples were kept, not recomputed
    assert (killed / "summary.csv").read_text() == (straight / "summary.csv").read_text()
    manifest = json.loads((killed / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1 and manifest["finished"]
    # Which RULER sampling ran: per task in the manifest, per sample in the records (RULER's default: official).
    assert [(t["name"], t["sampling"]) for t in manifest["tasks"]] == [("niah_single_1", "official"),
                                                                       ("niah_multikey_2", "official")]
    assert {r["metadata"]["sampling"] for r in records} == {"official"}
    # Resuming with the other sampling would mix two kinds of samples in one run: refused.
    capsys.readouterr()
    assert main(["sweep", str(sweep_file), "--out", str(killed), "--no-progress", "--sampling", "fill"]) == 2
    assert "holds task niah_single_1 drawn with official sampling" in capsys.readouterr().err
    # A run written before sampling was recorded drew RULER with fill: the new default (official) must not resume it.
    old = json.loads((straight / "manifest.json").read_text())
    for task in old["tasks"]:
        del task["sampling"]
    (straight / "manifest.json").write_text(json.dumps(old))
    assert main(["sweep", str(sweep_file), "--out", str(straight), "--no-progress"]) == 2
    assert "drawn with fill sampling, this run would draw official; pass --sampling fill" in capsys.readouterr().err
    assert [m["layer_schemes"] for m in manifest["models"]] == [["rope"] * 4, ["rope", "rope", "repo", "repo"]]

    # Every scheme saw the same prompts at every length.
    hashes = {}
    for p in killed.glob("samples/*/*/*.jsonl"):
        model, task, length = p.parts[-3], p.parts[-2], p.stem
        lines = p.read_text().splitlines()
        hashes.setdefault((task, length), {})[model] = [json.loads(x)["prompt_hash"] for x in lines]
    assert all(len({tuple(v) for v in by_model.values()}) == 1 for by_model in hashes.values())

    assert main(["report", str(killed)]) == 0
    report = (killed / "report.md").read_text()
    assert "niah_single_1" in report and "rope" in report and "repo" in report
    plots = list((killed / "plots").glob("*.png"))
    assert plots and all(p.stat().st_size > 2000 for p in plots)


def test_bad_sweeps_fail_before_compute(sweep_file, tmp_path, capsys):
    raw = yaml.safe_load(sweep_file.read_text())
    cases = {
        "missing_model": ({"models": [{"label": "x", "path": str(tmp_path / "absent")}]}, "absent"),
        "unknown_task": ({"tasks": ["niah_single_9"]}, "unknown task or group 'niah_single_9'"),
        "unknown_key": ({"colour": "red"}, "unknown key 'colour'"),
        "bad_scheme": ({"models": [dict(raw["models"][0], scheme="rope", scheme_params={"factr": 2})]},
                       "unknown parameter 'factr'"),
        "too_long": ({"lengths": [100000], "beyond_max_positions": "refuse"}, "beyond its 32768 positions"),
        "too_short": ({"lengths": [200]}, "too small"),
        "bad_sampling": ({"sampling": "exact"}, "'sampling' must be one of official, fill or null"),
    }
    for name, (change, message) in cases.items():
        bad = dict(raw, **change)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(bad))
        out = tmp_path / f"out_{name}"
        assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2, name
        assert message in capsys.readouterr().err, name
        assert not list(out.glob("samples/*/*/*.jsonl")), f"{name}: nothing may be computed"


@pytest.mark.slow
def test_sweep_sharded_over_two_processes_merges_into_one_run(sweep_file, tmp_path):
    """--gpus 2 with --device cpu: two gloo ranks split the cells, one manifest and the one-process summary come out;
    a resume after losing one cell's log recomputes only that cell."""
    small = yaml.safe_load(sweep_file.read_text())
    small.update(tasks=["niah_single_1"], lengths=[512], samples=2)
    small_file = tmp_path / "small.yaml"
    small_file.write_text(yaml.safe_dump(small))
    straight, sharded = tmp_path / "straight", tmp_path / "sharded"
    assert main(["sweep", str(small_file), "--out", str(straight), "--no-progress"]) == 0

    def run_sharded():
        return subprocess.run([sys.executable, "eval.py", "sweep", str(small_file), "--out", str(sharded),
                               "--no-progress", "--gpus", "2", "--device", "cpu"], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
    done = run_sharded()
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["shards"]["world"] == 2 and [r["rank"] for r in manifest["shards"]["ranks"]] == [0, 1]
    assert sorted(manifest["cells"]) == ["repo/niah_single_1/512", "rope/niah_single_1/512"]
    assert manifest["finished"] and not (sharded / "shards").exists()
    assert [m["label"] for m in manifest["models"]] == ["rope", "repo"]
    assert (sharded / "summary.csv").read_text() == (straight / "summary.csv").read_text()

    lost = sharded / "samples" / "repo" / "niah_single_1" / "512.jsonl"
    kept = sharded / "samples" / "rope" / "niah_single_1" / "512.jsonl"
    before = kept.read_text()
    lost.unlink()
    done = run_sharded()
    assert done.returncode == 0, done.stderr[-2000:]
    assert kept.read_text() == before and lost.exists()   # the finished cell was not redone
    assert (sharded / "summary.csv").read_text() == (straight / "summary.csv").read_text()
    assert len(json.loads((sharded / "manifest.json").read_text())["resumed"]) == 1
