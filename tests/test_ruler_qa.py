"""RULER qa_1/qa_2 from small SQuAD v2.0 / HotpotQA fixtures in the official JSON formats, written here; absent
files are skipped with a message naming the file and the flag."""
import json

import pytest

from posbench.harness.cli import main
from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import MissingData, TaskError, TaskRegistry, build_samples
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer")

SHARED = default_data_root()
TOKENIZER = str(SHARED / "tokenizers" / "olmo2_dolma2_tokenizer.json")
WORDS = "river stone lantern maple harbor copper meadow violet signal canyon".split()


def build(spec, tokenizer, **kw):
    """Fill sampling: these tests check the per-sample generator (test_ruler_official.py checks official)."""
    return build_samples(spec, tokenizer, sampling="fill", **kw)


def paragraph(a, p):
    """A distinct ~40-token paragraph that names its own answer."""
    filler = " ".join(WORDS[(a * 7 + p + i) % len(WORDS)] for i in range(18))
    return f"Record {a}.{p} concerns {filler}. Its keeper is Keeper{a}x{p}."


def write_squad(path, articles=3, paragraphs=10):
    """SQuAD v2.0 layout: data[].paragraphs[].qas[] with answers and is_impossible."""
    data = []
    for a in range(articles):
        paras = []
        for p in range(paragraphs):
            ctx = paragraph(a, p)
            keeper = f"Keeper{a}x{p}"
            qas = [{"question": f"Who keeps record {a}.{p}?", "id": f"q{a}{p}", "is_impossible": False,
                    "answers": [{"text": keeper, "answer_start": ctx.index(keeper)},
                                {"text": f"keeper{a}x{p}.", "answer_start": ctx.index(keeper)}]}]
            if p == 0:   # an unanswerable question, which RULER drops
                qas.insert(0, {"question": f"Who burned record {a}.{p}?", "id": f"u{a}", "is_impossible": True,
                               "answers": [], "plausible_answers": [{"text": keeper, "answer_start": 0}]})
            paras.append({"context": ctx, "qas": qas})
        data.append({"title": f"Article_{a}", "paragraphs": paras})
    path.write_text(json.dumps({"version": "v2.0", "data": data}))
    return path


def write_hotpot(path, questions=3):
    """HotpotQA distractor layout: a list of {_id, question, answer, supporting_facts, context: [[title, sents]]}."""
    rows = []
    for q in range(questions):
        context = [[f"Title {q}-{p}", [paragraph(q, p).split(". ")[0] + ". ", f"Keeper{q}x{p} lives here."]]
                   for p in range(10)]
        rows.append({"_id": f"h{q}", "question": f"Where does Keeper{q}x3 live?", "answer": f"Title {q}-3",
                     "supporting_facts": [[f"Title {q}-3", 1]], "context": context, "type": "bridge",
                     "level": "easy"})
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(TOKENIZER)


@pytest.fixture(scope="module")
def registry():
    return TaskRegistry()


def test_squad_sample_i_asks_answerable_question_i_among_its_article(registry, tokenizer, tmp_path):
    squad = write_squad(tmp_path / "dev-v2.0.json")
    spec = registry.get("qa_1")
    samples = build(spec, tokenizer, length=1024, num_samples=3, data_paths={"squad": str(squad)})
    for i, s in enumerate(samples):
        a, p = divmod(i, 10)     # answerable questions in file order; the impossible ones are skipped
        assert s.prompt.endswith(f"\n\nQuestion: Who keeps record {a}.{p}? Answer:")
        assert s.answers == [f"Keeper{a}x{p}", f"keeper{a}x{p}."]
        docs = s.prompt.split("The following are given documents.\n\n", 1)[1].split("\n\nAnswer the question")[0]
        shown = docs.split("\n\n")
        assert [d.split(":\n")[0] for d in shown] == [f"Document {k + 1}" for k in range(len(shown))]
        assert len(shown) == s.metadata["num_docs"] and 10 < len(shown) < 30     # fitted, not everything
        (gold,) = s.metadata["gold_documents"]
        assert shown[gold - 1] == f"Document {gold}:\n{paragraph(a, p)}"
        # Its article's other paragraphs come next in line; then random others.
        texts = {d.split(":\n", 1)[1] for d in shown}
        assert {paragraph(a, q) for q in range(10)} <= texts
        assert 0.9 * 1024 <= s.token_count + 32 <= 1024


def test_hotpot_all_ten_paragraphs_are_the_questions_own(registry, tokenizer, tmp_path):
    hotpot = write_hotpot(tmp_path / "hotpot.json")
    s = build(registry.get("qa_2"), tokenizer, length=1024, num_samples=2,
                      data_paths={"hotpotqa": str(hotpot)})[1]
    assert s.answers == ["Title 1-3"] and s.prompt.endswith("Question: Where does Keeper1x3 live? Answer:")
    assert len(s.metadata["gold_documents"]) == 10
    for p in range(10):
        doc = f"Title 1-{p}\n" + paragraph(1, p).split(". ")[0] + ". " + f"Keeper1x{p} lives here."
        assert f":\n{doc}" in s.prompt
    assert s.token_count + 32 <= 1024


def test_same_question_same_documents_at_every_call(registry, tokenizer, tmp_path):
    squad = write_squad(tmp_path / "dev-v2.0.json")
    paths = {"squad": str(tmp_path)}           # a folder holding the official file name works too
    a = build(registry.get("qa_1"), tokenizer, length=1024, num_samples=2, data_paths=paths)
    b = build(registry.get("qa_1"), tokenizer, length=1024, indices=[1], data_paths=paths)
    assert a[1].to_json() == b[0].to_json() and squad.exists()


def test_missing_file_is_a_skip_with_the_flag_to_pass(registry, tokenizer, tmp_path):
    spec = registry.get("qa_1")
    with pytest.raises(MissingData, match=rf"SQuAD v2.0 dev file not found at {tmp_path}/squad.*--data squad=PATH.*"
                                          r"eval.py data download squad"):
        build(spec, tokenizer, length=1024, num_samples=1, data_paths={"data": str(tmp_path)})


def test_bad_file_and_too_many_samples_are_clear_errors(registry, tokenizer, tmp_path):
    bad = tmp_path / "dev-v2.0.json"
    bad.write_text(json.dumps({"version": "v2.0", "data": [{"title": "x", "paras": []}]}))
    message = rf"{bad}: not in the official SQuAD v2.0 dev format \(missing key 'paragraphs'\)"
    with pytest.raises(TaskError, match=message):
        build(registry.get("qa_1"), tokenizer, length=1024, num_samples=1, data_paths={"squad": str(bad)})
    squad = write_squad(tmp_path / "small.json", articles=2)
    with pytest.raises(TaskError, match="sample 20 asks question 20, but .* has only 20 answerable questions"):
        build(registry.get("qa_1"), tokenizer, length=1024, indices=[20], data_paths={"squad": str(squad)})


def test_generate_skips_qa_without_data_and_runs_with_it(tmp_path, capsys):
    assert main(["generate", "qa_1", "--tokenizer", TOKENIZER, "--length", "1024", "--data-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "skipped: task qa_1: SQuAD v2.0 dev file not found" in err and "--data squad=PATH" in err
    squad, hotpot = write_squad(tmp_path / "dev-v2.0.json"), write_hotpot(tmp_path / "hotpot.json")
    out = tmp_path / "qa.jsonl"
    assert main(["generate", "ruler_qa", "--tokenizer", TOKENIZER, "--length", "1024", "--samples", "2",
                 "--data", f"squad={squad}", "--data", f"hotpotqa={hotpot}", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task"] for r in rows] == ["qa_1", "qa_1", "qa_2", "qa_2"]
    assert all(r["token_count"] + 32 <= 1024 for r in rows)
