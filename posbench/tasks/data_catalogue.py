"""The catalogue of outside data: every file a task family reads, where it comes from, its licence, size and sha256.

`eval.py data list|download|check` works from this list, and every "data missing" message names an entry, so a user
always learns where a file comes from and how to get it (`eval.py data download NAME`). Entries are registered with
`register_data`; another module (e.g. a training corpus) adds its own the same way. The file lists live beside this
module in data_files/NAME.tsv (path under the data root, size, sha256, url, and the member when the url is an archive);
"-" for size or sha256 means not pinned: the first download records what it got (see harness/evaluation/data.py).
"""
import dataclasses
import os
from pathlib import Path

from posbench.tasks.errors import MissingData, TaskError

FILE_LISTS = Path(__file__).with_name("data_files")


def default_data_root() -> Path:
    """$POSBENCH_DATA if set (e.g. a copy carried to another machine), else the per-user data folder
    ${XDG_DATA_HOME:-~/.local/share}/posbench/data (where `eval.py data download` writes by default)."""
    if os.environ.get("POSBENCH_DATA"):
        return Path(os.environ["POSBENCH_DATA"])
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "posbench" / "data"


@dataclasses.dataclass(frozen=True)
class DataFile:
    path: str                 # where the loaders read it, relative to the data root
    url: str                  # what download fetches: the file itself, or an archive holding `member`
    size: int | None = None   # None: not pinned
    sha256: str | None = None
    member: str | None = None


@dataclasses.dataclass(frozen=True)
class DataEntry:
    name: str                 # `eval.py data download NAME`
    used_by: str              # the task families (or other users) that read it
    source: str               # official repository, site or Hugging Face dataset id, as a person would look it up
    licence: str
    files: tuple

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def pinned(self) -> bool:
        return all(f.size is not None and f.sha256 is not None for f in self.files)


CATALOGUE: dict = {}


def register_data(entry: DataEntry) -> DataEntry:
    if entry.name in CATALOGUE and CATALOGUE[entry.name] != entry:
        raise TaskError(f"data entry {entry.name!r} is registered twice with different files")
    if not entry.files:
        raise TaskError(f"data entry {entry.name!r} lists no files")
    CATALOGUE[entry.name] = entry
    return entry


def read_file_list(path) -> tuple:
    """DataFiles from a tab-separated list: path, size, sha256, url[, member]; '#' lines are comments."""
    files = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) not in (4, 5):
            raise TaskError(f"{path}:{lineno}: expected path, size, sha256, url[, member]; got {len(cols)} columns")
        rel, size, sha, url = cols[:4]
        files.append(DataFile(path=rel, url=url, size=None if size == "-" else int(size),
                              sha256=None if sha == "-" else sha, member=cols[4] if len(cols) == 5 else None))
    return tuple(files)


def missing_data(name: str, what: str) -> MissingData:
    """The MissingData error for a file of catalogue entry `name`: what is missing, where it comes from, what to run."""
    entry = CATALOGUE[name]
    return MissingData(f"{what}; it is the {name!r} data ({entry.source}, {entry.licence}): run "
                       f"`python eval.py data download {name}`, or pass --data-root DIR holding it "
                       f"(`python eval.py data list` shows every data set)")


def _builtin(name, used_by, source, licence):
    register_data(DataEntry(name, used_by, source, licence, read_file_list(FILE_LISTS / f"{name}.tsv")))


_builtin("tokenizer", "RULER, NLGraph, HybridQA, general tasks' tests; tiny test models",
         "OLMo-2 dolma2 tokenizer, github.com/SakanaAI/repo @1508a73 (OLMo/olmo_data/tokenizers)", "Apache-2.0")
_builtin("essays", "RULER niah_* with the essay haystack (niah_single_2/3, niah_multikey_1, niah_multivalue, ...)",
         "Paul Graham essays, github.com/gkamradt/LLMTest_NeedleInAHaystack @7b90d28",
         "MIT (repository); essay texts by Paul Graham")
_builtin("punkt_tab", "RULER essay haystack (sentence splitting)",
         "nltk punkt_tab, github.com/nltk/nltk_data (packages/tokenizers/punkt_tab.zip)", "NLTK data licence")
_builtin("squad", "RULER qa_1", "SQuAD v2.0 dev, rajpurkar.github.io/SQuAD-explorer", "CC BY-SA 4.0")
_builtin("hotpotqa", "RULER qa_2", "HotpotQA dev distractor, hotpotqa.github.io", "CC BY-SA 4.0")
_builtin("nlgraph", "NLGraph (official and RePo variants)", "github.com/Arthur-Heng/NLGraph @a369f32", "MIT")
_builtin("hybridqa", "HybridQA (12 dev questions with their tables and passages)",
         "github.com/wenhuchen/HybridQA @db22fda and github.com/wenhuchen/WikiTables-WithLinks",
         "MIT; tables and passages are Wikipedia text (CC BY-SA)")
_builtin("longbench", "LongBench and LongBench-E", "Hugging Face dataset THUDM/LongBench (data.zip)",
         "MIT (LongBench); each source data set keeps its own licence")
_builtin("arc", "general: arc_easy, arc_challenge", "AI2 ARC validation (allenai/ai2_arc) as saved in "
         "github.com/SakanaAI/repo @1508a73 (OLMo/olmo_data/hf_datasets)", "CC BY-SA 4.0")
_builtin("boolq", "general: boolq", "BoolQ validation (google/boolq) as saved in github.com/SakanaAI/repo @1508a73",
         "CC BY-SA 3.0")
_builtin("c4_sample", "training tests (tests/test_train*.py)", "C4 en samples, OLMo's test fixtures in "
         "github.com/SakanaAI/repo @1508a73 (OLMo/test_fixtures)", "ODC-BY (C4)")
_builtin("mmlu", "general: mmlu", "MMLU test (hails/mmlu_no_train) as saved in github.com/SakanaAI/repo @1508a73",
         "MIT")
