"""The essay haystack: Paul Graham essays as RULER concatenates and splits them.

RULER's PaulGrahamEssays.json is the essay files concatenated with no separator (the 49 GitHub-hosted .txt files,
sorted by name, come first and already hold ~112K words, far more than a 16K-token haystack), whitespace-normalised
and split on single spaces. A haystack of N words is the first N joined by spaces, split into sentences by nltk's
punkt_tab model, read from the data folder and never downloaded.
"""
import functools
import re
from pathlib import Path

from posbench.tasks.data_catalogue import missing_data
from posbench.tasks.errors import MissingData, TaskError


@functools.lru_cache(maxsize=4)
def essay_words(essay_dir: str) -> tuple:
    folder = Path(essay_dir)
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise missing_data("essays", f"essay haystack not found: {folder} has no Paul Graham essay .txt files")
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    return tuple(re.sub(r"\s+", " ", text).split(" "))


def _punkt(nltk_data: str):
    english = Path(nltk_data) / "tokenizers" / "punkt_tab" / "english"
    if not english.is_dir():
        raise missing_data("punkt_tab", f"nltk punkt_tab data not found: {english} does not exist")
    import nltk
    if nltk_data not in nltk.data.path:
        nltk.data.path.insert(0, nltk_data)
    from nltk.tokenize import sent_tokenize
    return sent_tokenize


def require(task: str, essay_dir: str, nltk_data: str):
    """Fail early, naming the task, when an essay haystack lacks its essays or its sentence splitter."""
    for key, value in (("essay_dir", essay_dir), ("nltk_data", nltk_data)):
        if not value:
            raise TaskError(f"task {task}: an essay haystack needs source.params.{key} "
                            f"(e.g. {'${data}/haystack/pg_essays' if key == 'essay_dir' else '${data}/nltk_data'})")
    try:
        essay_words(essay_dir)
        _punkt(nltk_data)
    except MissingData as err:
        raise MissingData(f"task {task}: {err}") from None


@functools.lru_cache(maxsize=256)
def sentences(essay_dir: str, nltk_data: str, n_words: int) -> tuple:
    """Sentences of the first n_words words (the word list repeats if it is shorter). The text is the same for
    every sample, so sizes the search revisits are split once."""
    words = essay_words(essay_dir)
    picked = (words * (n_words // len(words) + 1))[:n_words] if n_words > len(words) else words[:n_words]
    return tuple(_punkt(nltk_data)(" ".join(picked).strip()))
