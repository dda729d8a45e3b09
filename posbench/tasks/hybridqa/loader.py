"""Load HybridQA questions with their table and linked passages (WikiTables-WithLinks `tables_tok/` + `request_tok/`).

Neither the official code nor the RePo authors' released code fixes a text serialisation, so this one is ours
(`linearise`): the page and section title, the table as ` | `-separated rows under its header, then one paragraph per
linked passage in order of first appearance in the table (header, then rows), titled by the link's page name.

A question whose table or passage file is missing becomes a skipped sample naming the file (counted, never scored);
if no question has its files, loading fails with MissingData.
"""
import json
from pathlib import Path
from urllib.parse import unquote

from posbench.tasks.data_catalogue import missing_data
from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_loader
from posbench.tasks.schema import SampleDraft


def link_title(link: str) -> str:
    """'/wiki/Patrick_Makau_Musyoki' -> 'Patrick Makau Musyoki'."""
    return unquote(link.rsplit("/", 1)[-1]).replace("_", " ")


def linearise(table: dict, passages: dict, link_order: bool = True) -> str:
    """Table then passages as plain text (see the module docstring). `link_order=False` keeps the passages in the
    dict's order instead (the generator shuffles them)."""
    title = table.get("title", "")
    if table.get("section_title"):
        title += f" -- {table['section_title']}"
    lines = [f"Table: {title}", " | ".join(cell[0] for cell in table["header"])]
    lines += [" | ".join(cell[0] for cell in row) for row in table["data"]]
    links = []
    for cell in table["header"] + [c for row in table["data"] for c in row]:
        links += [link for link in cell[1] if link not in links]
    if not link_order:
        links = [link for link in passages if link in set(links)]
    text = "\n".join(lines)
    paragraphs = [f"{link_title(link)}: {passages[link]}" for link in links if link in passages]
    return text + ("\n\nPassages:\n" + "\n".join(paragraphs) if paragraphs else "")


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path}: {what} is not valid JSON: {err}") from None


@register_loader("hybridqa")
def load_hybridqa(ctx, *, questions: str, reference: str, tables: str):
    """`questions`: dev.json; `reference`: dev_reference.json (the gold the official scorer uses);
    `tables`: the WikiTables-WithLinks folder holding tables_tok/ and request_tok/."""
    qpath, rpath, tdir = Path(questions), Path(reference), Path(tables)
    for p in (qpath, rpath):
        if not p.is_file():
            raise missing_data("hybridqa", f"HybridQA file {p} not found")
    records, ref = _read_json(qpath, "the question file"), _read_json(rpath, "the reference file")
    if not isinstance(records, list) or not isinstance(ref, dict) or "reference" not in ref:
        raise TaskError(f"{qpath} must be a list of questions and {rpath} a dict with 'reference'")
    source = {q: "table" for q in ref.get("table", [])} | {q: "passage" for q in ref.get("passage", [])}
    drafts, loaded = [], 0
    for i, rec in enumerate(records):
        for field in ("question_id", "question", "table_id"):
            if field not in rec:
                raise TaskError(f"{qpath}: question {i} has no field {field!r}")
        qid, table_id = rec["question_id"], rec["table_id"]
        if qid not in ref["reference"]:
            raise TaskError(f"{rpath}: no reference answer for question_id {qid!r} ({qpath} question {i})")
        meta = {"question_id": qid, "table_id": table_id, "answer_source": source.get(qid, "none")}
        table_file, passage_file = tdir / "tables_tok" / f"{table_id}.json", tdir / "request_tok" / f"{table_id}.json"
        missing = next((p for p in (table_file, passage_file) if not p.is_file()), None)
        fields = {"question": rec["question"], "context": ""}
        if missing is None:
            fields["context"] = linearise(_read_json(table_file, "the table"), _read_json(passage_file, "passages"))
            loaded += 1
        drafts.append(SampleDraft(fields=fields, answers=[ref["reference"][qid]], metadata=meta,
                                  skip_reason=None if missing is None else f"HybridQA file {missing} not found"))
    if not loaded:
        raise missing_data("hybridqa", f"none of the {len(records)} HybridQA questions in {qpath} has its table and "
                           f"passages under {tdir}/tables_tok and request_tok")
    return drafts
