"""Read LongBench v1 jsonl files (the official `data.zip` layout: `<dataset>.jsonl`, `<dataset>_e.jsonl`).

Every record becomes one sample in file order. Template fields are the record's `context` and `input`; metadata keeps
what scoring and reports need: `all_classes` (trec/lsht), the record's `length` and its LongBench-E bucket.
"""
import json
from pathlib import Path

from posbench.tasks.data_catalogue import missing_data
from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_loader
from posbench.tasks.schema import SampleDraft

# Field -> accepted types. `length` is words (English, code) or characters (Chinese), not tokens.
_FIELDS = {"input": str, "context": str, "answers": list, "length": int, "all_classes": (list, type(None)),
           "dataset": str, "language": str, "_id": str}


def length_bucket(length: int) -> str:
    """LongBench-E's `scorer_e` buckets, on the record's `length` field."""
    return "0-4k" if length < 4000 else "4-8k" if length < 8000 else "8k+"


def read_records(path: Path) -> list:
    if not path.is_file():
        raise missing_data("longbench", f"LongBench file {path} not found (or pass --data longbench=DIR holding the "
                           f"official jsonl files)")
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise TaskError(f"{path}:{lineno}: not valid JSON: {err}") from None
            for field, types in _FIELDS.items():
                if field not in rec:
                    raise TaskError(f"{path}:{lineno}: record has no field {field!r}")
                if not isinstance(rec[field], types) or isinstance(rec[field], bool):
                    raise TaskError(f"{path}:{lineno}: field {field!r} has the wrong type: {rec[field]!r:.80}")
            if not all(isinstance(a, str) for a in rec["answers"]):
                raise TaskError(f"{path}:{lineno}: field 'answers' must be a list of strings")
            records.append(rec)
    return records


@register_loader("longbench")
def load_longbench(ctx, *, path: str, classes_required: bool = False):
    """`path`: one official jsonl file. `classes_required`: trec/lsht records must carry `all_classes`."""
    path = Path(path)
    drafts = []
    for lineno, rec in enumerate(read_records(path), 1):
        if classes_required and not rec["all_classes"]:
            raise TaskError(f"{path}: record {lineno} ({rec['_id']}) has no 'all_classes'; "
                            f"classification_score needs them")
        drafts.append(SampleDraft(
            fields={"context": rec["context"], "input": rec["input"]},
            answers=list(rec["answers"]),
            metadata={"_id": rec["_id"], "dataset": rec["dataset"], "language": rec["language"],
                      "length": rec["length"], "bucket": length_bucket(rec["length"]),
                      "all_classes": rec["all_classes"]}))
    return drafts
