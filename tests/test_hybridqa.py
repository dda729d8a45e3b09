"""HybridQA: the loader on the staged dev subset (skips counted, never scored), the linearisation, bad input, and the
synthetic generator (length filling, determinism, and that every question needs exactly one row-passage join)."""
import json
import re
import shutil

import pytest

from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import MissingData, TaskError, build_samples, score_sample
from posbench.tasks.hybridqa.loader import linearise
from tests.data_testing import require_data  # noqa: E402

SHARED = default_data_root()
HQA = SHARED / "hybridqa"


@pytest.fixture(scope="module")
def dev_samples(registry, tokenizer):
    require_data("hybridqa")
    return build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(SHARED)})


def test_staged_questions_load_and_the_rest_are_skipped_with_the_file_named(dev_samples):
    assert len(dev_samples) == 3466
    ready = [s for s in dev_samples if s.skip_reason is None]
    # The catalogue's 12 tables (for 12 of the first 40 questions) also serve 3 other dev questions.
    assert len(ready) == 15 and sum(s.index < 40 for s in ready) == 12
    skipped = [s for s in dev_samples if s.skip_reason]
    assert all(re.search(r"tables_tok/.+\.json not found", s.skip_reason) for s in skipped)
    reference = json.loads((HQA / "dev_reference.json").read_text())
    for s in ready:
        assert s.answers == [reference["reference"][s.metadata["question_id"]]]
    first = next(s for s in ready if s.metadata["question_id"] == "006f88e5b2adf06c")
    assert first.answers == ["sixth"] and first.metadata["answer_source"] == "passage"
    assert "6 | Ricardo Serrano | Spain | 2:13.32" in first.prompt
    assert first.prompt.endswith("Question: What place was achieved by the person who finished the Berlin marathon "
                                 "in 2:13.32 in 2011 the first time he competed in a marathon ?\nAnswer:")


def test_linearise_table_then_passages_in_link_order():
    table = {"title": "T", "section_title": "S", "header": [["Name", []], ["Home", []]],
             "data": [[["Ann", ["/wiki/Ann_B"]], ["Oslo", ["/wiki/Oslo"]]],
                      [["Bo", ["/wiki/Bo"]], ["Oslo", ["/wiki/Oslo"]]]]}
    passages = {"/wiki/Oslo": "Oslo is a city .", "/wiki/Bo": "Bo is a cat .", "/wiki/Ann_B": "Ann B is a poet ."}
    assert linearise(table, passages) == ("Table: T -- S\nName | Home\nAnn | Oslo\nBo | Oslo\n\nPassages:\n"
                                          "Ann B: Ann B is a poet .\nOslo: Oslo is a city .\nBo: Bo is a cat .")


def test_over_length_questions_are_cut_in_the_middle(registry, tokenizer):
    require_data("hybridqa")
    spec = registry.get("hybridqa")
    longest = build_samples(spec, tokenizer, length=4096, data_paths={"data": str(SHARED)}, indices=[36])[0]
    assert longest.metadata["question_id"] == "03516021b9a02cfc" and longest.token_count <= 4096 - 32
    assert longest.prompt.startswith("Write a high-quality answer") and longest.prompt.endswith("?\nAnswer:")


def test_official_scoring_through_the_task(registry, dev_samples):
    spec = registry.get("hybridqa")
    s = next(s for s in dev_samples if s.metadata["question_id"] == "006f88e5b2adf06c")
    assert score_sample(spec, s, " Sixth.") == {"hybridqa_em": 1.0, "hybridqa_f1": 1.0, "hybridqa_substring": 1.0}
    # [he, came, sixth] vs [sixth]: P = 1/3, R = 1 -> F1 = 2*(1/3)/(4/3) = 0.5; the gold is a substring
    assert score_sample(spec, s, "He came sixth") == {"hybridqa_em": 0.0, "hybridqa_f1": 0.5,
                                                       "hybridqa_substring": 1.0}


def copy_subset(tmp_path, tables=True):
    require_data("hybridqa")
    root = tmp_path / "hybridqa"
    root.mkdir()
    for name in ("dev.json", "dev_reference.json"):
        shutil.copy(HQA / name, root / name)
    (root / "WikiTables-WithLinks" / "tables_tok").mkdir(parents=True)
    (root / "WikiTables-WithLinks" / "request_tok").mkdir(parents=True)
    if tables:
        for sub in ("tables_tok", "request_tok"):
            shutil.copy(HQA / "WikiTables-WithLinks" / sub / "2011_Berlin_Marathon_0.json",
                        root / "WikiTables-WithLinks" / sub)
    return root


def test_no_table_files_at_all_is_missing_data(registry, tokenizer, tmp_path):
    copy_subset(tmp_path, tables=False)
    with pytest.raises(MissingData, match="none of the 3466 HybridQA questions"):
        build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(tmp_path)})
    (tmp_path / "hybridqa" / "dev.json").unlink()
    with pytest.raises(MissingData, match="dev.json not found"):
        build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(tmp_path)})


def test_missing_passage_file_is_a_counted_skip(registry, tokenizer, tmp_path):
    root = copy_subset(tmp_path)
    samples = build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(tmp_path)})
    assert sum(s.skip_reason is None for s in samples) == 1
    (root / "WikiTables-WithLinks" / "request_tok" / "2011_Berlin_Marathon_0.json").unlink()
    (root / "WikiTables-WithLinks" / "request_tok" / "x.json").write_text("{}")
    with pytest.raises(MissingData):
        build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(tmp_path)})


def test_bad_question_records(registry, tokenizer, tmp_path):
    root = copy_subset(tmp_path)
    dev = json.loads((root / "dev.json").read_text())
    (root / "dev.json").write_text(json.dumps([{k: v for k, v in dev[4].items() if k != "table_id"}]))
    with pytest.raises(TaskError, match="question 0 has no field 'table_id'"):
        build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(tmp_path)})
    (root / "dev.json").write_text(json.dumps([dev[4] | {"question_id": "ffff"}]))
    with pytest.raises(TaskError, match="no reference answer for question_id 'ffff'"):
        build_samples(registry.get("hybridqa"), tokenizer, data_paths={"data": str(tmp_path)})


# ---- the generator --------------------------------------------------------------------------------------------------

def parse_generated(prompt):
    """Rows {name: (country, year, field)} and bios {name: (birth city, university, birth year)} from the prompt."""
    table, passages = prompt.split("\n\nPassages:\n")
    rows = {}
    for line in table.split("\n")[4:]:             # instruction, blank, title, header
        name, country, year, field = line.split(" | ")
        rows[name] = (country, year, field)
    bios = {}
    for line in passages.split("\n\nQuestion:")[0].split("\n"):
        m = re.match(r"(.+?): .+? \( born \d+ \w+ (\d+) in (.+?) \) .+ studied at the (.+?) \.$", line)
        bios[m.group(1)] = (m.group(3), m.group(4), m.group(2))
    return rows, bios


def solve(question, rows, bios):
    """Answer a generated question by the join it describes; asserts exactly one row qualifies."""
    m = re.search(r"born in (.+?) and studied at the (.+?) (join|a member)", question)
    if m:
        names = [n for n, (city, uni, _) in bios.items() if (city, uni) == (m.group(1), m.group(2))]
        assert len(names) == 1, question
        country, year, field = rows[names[0]]
        return year if m.group(3) == "join" else field
    conds = re.search(r"the member (.+?) (born|attend) \?$", question).group(1)
    country = re.search(r"from (\w+)", conds)
    year = re.search(r"joined in (\d+)", conds)
    field = re.search(r" in ([a-z]+)$|^in ([a-z]+) ", conds)
    names = [n for n, (c, y, f) in rows.items()
             if (not country or c == country.group(1)) and (not year or y == year.group(1))
             and (not field or f.lower() == (field.group(1) or field.group(2)))]
    assert len(names) == 1, question
    city, uni, born = bios[names[0]]
    asked = next(k for k in ("In which city", "Which university", "In which year") if question.startswith(k))
    return {"In which city": city, "Which university": uni, "In which year": born}[asked]


@pytest.mark.parametrize("length", [4096, 8192, 16384])
def test_generator_fills_the_length_and_needs_one_join(registry, tokenizer, length):
    spec = registry.get("hybridqa_gen")
    samples = build_samples(spec, tokenizer, length=length, num_samples=5)
    for s in samples:
        budget = length - s.max_new_tokens
        assert 0.97 * budget <= s.token_count <= budget
        rows, bios = parse_generated(s.prompt)
        assert len(rows) == len(bios) == s.metadata["rows"]
        question = s.prompt.rsplit("Question: ", 1)[1].removesuffix("\nAnswer:")
        assert solve(question, rows, bios) == s.answers[0], question
    again = build_samples(spec, tokenizer, length=length, num_samples=5)
    assert [s.to_json() for s in again] == [s.to_json() for s in samples]


def test_generator_asks_both_join_directions(registry, tokenizer):
    samples = build_samples(registry.get("hybridqa_gen"), tokenizer, length=4096, num_samples=12)
    assert {s.metadata["answer_source"] for s in samples} == {"table", "passage"}
    assert len({s.metadata["question_kind"] for s in samples}) >= 4


def test_generator_same_question_at_every_length(registry, tokenizer):
    spec = registry.get("hybridqa_gen")
    short, long = (build_samples(spec, tokenizer, length=n, indices=[3])[0] for n in (4096, 16384))
    assert short.metadata["question_kind"] == long.metadata["question_kind"]
    assert long.metadata["rows"] > 3 * short.metadata["rows"]
    with pytest.raises(TaskError, match="length-controlled"):
        build_samples(spec, tokenizer)
