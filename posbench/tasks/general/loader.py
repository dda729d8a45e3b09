"""ARC, BoolQ and MMLU as posbench multiple-choice tasks, read straight from Hugging Face `save_to_disk` folders (Arrow
IPC *stream* files) with pyarrow, so sweeps can include them without lm-eval or `datasets`.

Prompts, continuations and gold indices are lm-evaluation-harness's 0-shot defaults (tasks `arc_easy`,
`arc_challenge`, `boolq`, `mmlu`); each continuation carries lm-eval's target delimiter " ".
"""
from pathlib import Path

from posbench.tasks.data_catalogue import missing_data
from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_loader
from posbench.tasks.schema import SampleDraft


def read_arrow_split(folder, data_name: str) -> list:
    """Rows of every `*.arrow` shard in a save_to_disk split folder, shard by shard, as dicts."""
    import pyarrow as pa

    folder = Path(folder)
    shards = sorted(folder.glob("*.arrow")) if folder.is_dir() else []
    if not shards:
        raise missing_data(data_name, f"no Arrow shards (*.arrow) in {folder} (a datasets save_to_disk split folder)")
    rows = []
    for shard in shards:
        try:
            rows += pa.ipc.open_stream(pa.memory_map(str(shard))).read_all().to_pylist()
        except pa.ArrowInvalid as err:
            raise TaskError(f"{shard}: not an Arrow IPC stream ({err})") from None
    return rows


def _need(row, fields, where):
    for f in fields:
        if f not in row:
            raise TaskError(f"{where}: row has no field {f!r} (fields: {', '.join(row)})")


@register_loader("arc")
def load_arc(ctx, *, path: str):
    drafts = []
    for i, row in enumerate(read_arrow_split(path, "arc")):
        _need(row, ("question", "choices", "answerKey"), f"{path} row {i}")
        labels = row["choices"]["label"]
        if row["answerKey"] not in labels:
            raise TaskError(f"{path} row {i}: answerKey {row['answerKey']!r} is not one of the labels {labels}")
        drafts.append(SampleDraft(fields={"question": row["question"]}, answers=[row["answerKey"]],
                                  choices=[" " + t for t in row["choices"]["text"]],
                                  gold_index=labels.index(row["answerKey"]), metadata={"id": row.get("id")}))
    return drafts


@register_loader("boolq")
def load_boolq(ctx, *, path: str):
    drafts = []
    for i, row in enumerate(read_arrow_split(path, "boolq")):
        _need(row, ("question", "passage", "answer"), f"{path} row {i}")
        drafts.append(SampleDraft(fields={"passage": row["passage"], "question": row["question"]},
                                  answers=["yes" if row["answer"] else "no"], choices=[" no", " yes"],
                                  gold_index=int(bool(row["answer"]))))
    return drafts


@register_loader("mmlu")
def load_mmlu(ctx, *, root: str, split: str = "test"):
    """Every subject folder under `root` (`<subject>/<split>/`), subjects in alphabetical order."""
    subjects = sorted(p.name for p in Path(root).iterdir() if (p / split).is_dir()) if Path(root).is_dir() else []
    if not subjects:
        raise missing_data("mmlu", f"no MMLU subject folders with a {split!r} split under {root}")
    drafts = []
    for subject in subjects:
        for i, row in enumerate(read_arrow_split(Path(root) / subject / split, "mmlu")):
            _need(row, ("question", "choices", "answer"), f"{root}/{subject} row {i}")
            if len(row["choices"]) != 4 or not 0 <= row["answer"] < 4:
                raise TaskError(f"{root}/{subject} row {i}: MMLU needs 4 choices and an answer in 0-3")
            a, b, c, d = row["choices"]
            drafts.append(SampleDraft(
                fields={"subject": subject.replace("_", " "), "question": row["question"].strip(),
                        "a": a, "b": b, "c": c, "d": d},
                answers=["ABCD"[row["answer"]]], choices=[" A", " B", " C", " D"], gold_index=row["answer"],
                metadata={"subject": subject}))
    return drafts
