"""LongBench's Chinese metrics against the official scorer: every pair in tests/fixtures/longbench_official/
zh_metrics.json was scored by THUDM/LongBench's metrics.py (README there); posbench must give the same score."""
import json
from pathlib import Path

import pytest

from posbench.tasks.registry import METRICS, ensure_imported
from posbench.tasks.schema import Sample

CASES = json.loads((Path(__file__).parent / "fixtures" / "longbench_official" / "zh_metrics.json")
                   .read_text(encoding="utf-8"))


def test_fixture_covers_every_chinese_metric():
    assert {c["metric"] for c in CASES} == {"qa_f1_zh_score", "rouge_zh_score", "retrieval_zh_score"}
    # The official scores are not all 0 or 1: partial credit is what the tokenisation decides.
    assert any(0 < c["official_score"] < 1 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['metric']}:{c['prediction'][:12]}")
def test_chinese_metric_matches_official_scorer(case):
    ensure_imported()
    sample = Sample(task="t", index=0, length=None, seed=0, prompt="", answer_prefix="", answers=case["answers"],
                    max_new_tokens=1, stop=[], token_count=0, metadata={})
    assert METRICS[case["metric"]](case["prediction"], sample) == pytest.approx(case["official_score"], abs=1e-12)
