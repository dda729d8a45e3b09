"""Fixtures shared by the task tests: the task registry and the OLMo-2 tokenizer from the shared data."""
import pytest

from posbench.harness.evaluation.data import default_data_root


@pytest.fixture(scope="session")
def registry():
    from posbench.tasks import TaskRegistry
    return TaskRegistry()


@pytest.fixture(scope="session")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(default_data_root() / "tokenizers" / "olmo2_dolma2_tokenizer.json")
