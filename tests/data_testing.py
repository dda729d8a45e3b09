"""Outside data for tests: where it is, and skips that name what is missing and how to get it."""
import pytest

from posbench.harness.evaluation.data import default_data_root, is_present

DATA_ROOT = default_data_root()        # tests/conftest.py has set $POSBENCH_DATA when ../shared/data exists
TOKENIZER_FILE = DATA_ROOT / "tokenizers" / "olmo2_dolma2_tokenizer.json"


def missing_reason(*names) -> str:
    """'' when every named catalogue data set is under DATA_ROOT, else why a test cannot run."""
    absent = [n for n in names if not is_present(DATA_ROOT, n)]
    if not absent:
        return ""
    return (f"needs the {', '.join(absent)} data, not under {DATA_ROOT}: run `python eval.py data download "
            f"{' '.join(absent)}` (or set $POSBENCH_DATA to a folder holding it)")


def needs_data(*names):
    """A mark that skips a test (or, as `pytestmark`, a module) when a data set is missing."""
    reason = missing_reason(*names)
    return pytest.mark.skipif(bool(reason), reason=reason or "data present")


def require_data(*names) -> None:
    """Skip the calling test or fixture when a data set is missing."""
    reason = missing_reason(*names)
    if reason:
        pytest.skip(reason)
