"""Missing data never aborts a sweep: each task without its data is skipped, with the reason, in the log, the
manifest and the report, and the other tasks run. Data-free: a tiny model on the reference models' tokenizer."""
import json
from pathlib import Path

import yaml
from tiny_models import build_tiny_model

from posbench.harness.cli import main

REFERENCE_TOKENIZER = Path(__file__).resolve().parents[1] / "models" / "reference" / "rope" / "tokenizer.json"


def test_a_sweep_skips_tasks_without_data_and_runs_the_rest(tmp_path, capsys):
    model = build_tiny_model(tmp_path / "tiny", REFERENCE_TOKENIZER, "rope", seed=1, hidden=32, layers=2)
    empty = tmp_path / "no-data"
    empty.mkdir()
    sweep = {"name": "missing-data", "models": [{"label": "tiny", "path": str(model)}],
             "tasks": ["niah_single_1", "nlgraph_connectivity_easy", "qa_1", "niah_single_2", "hybridqa"],
             "lengths": [512], "samples": 1, "seed": 3, "device": "cpu", "batch_size": 1, "data_root": str(empty)}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "run"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    log = capsys.readouterr().out
    expected = {"nlgraph_connectivity_easy": "nlgraph", "qa_1": "squad", "niah_single_2": "essays",
                "hybridqa": "hybridqa"}
    for task, data in expected.items():
        assert f"skipping {task}: " in log and f"eval.py data download {data}`" in log, task
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = {t["task"]: t["reason"] for t in manifest["skipped_tasks"]}
    assert set(skipped) == set(expected)
    assert all(f"eval.py data download {data}`" in skipped[t] for t, data in expected.items())
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and ",niah_single_1," in summary[1]

    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "Tasks skipped by the run:" in report
    for task, data in expected.items():
        assert f"`{task}`" in report and f"eval.py data download {data}" in report
