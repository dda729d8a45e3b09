"""Fixtures shared by the tests: the task registry, the data root and the OLMo-2 tokenizer.

Tests read outside data from $POSBENCH_DATA, else ../shared/data beside the repository (where the project's machines
keep a copy), else posbench's own default. The choice is made here, before any test module is imported, and put in
$POSBENCH_DATA so that test modules, posbench and the subprocesses tests start all agree. A test that needs data it
cannot find is skipped, naming the data set and the `eval.py data download` command (tests/data_testing.py).
"""
import os
from pathlib import Path

import pytest

BESIDE_REPO = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("POSBENCH_DATA") and BESIDE_REPO.is_dir():
    os.environ["POSBENCH_DATA"] = str(BESIDE_REPO)


@pytest.fixture(scope="session")
def registry():
    from posbench.tasks import TaskRegistry
    return TaskRegistry()


@pytest.fixture(scope="session")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    from tests.data_testing import TOKENIZER_FILE, require_data
    require_data("tokenizer")
    return load_tokenizer(TOKENIZER_FILE)
