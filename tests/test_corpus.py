"""The natural-text corpus recipe (posbench/harness/training/corpus.py) on fixture packages: every extractor keeps
prose and drops markup and code, repeated paragraphs are kept once, builds are byte-identical, splits are per
document and disjoint, and bad inputs fail with one error naming the file."""
import gzip
import re

import corpus_fixtures as fx
import pytest

from posbench.harness.training import corpus


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    sources = fx.write_inputs(root / "inputs")
    manifest = corpus.build(root / "inputs", root / "out", sources, min_doc_chars=100, log=lambda m: None)
    docs = {split: list(corpus.read_split(root / "out", split)) for split in manifest["files"]}
    return root, sources, manifest, docs


def all_text(docs) -> str:
    return "\n\n".join(d["text"] for split in docs.values() for d in split)


def test_extractors_keep_prose_and_drop_markup_and_code(built):
    _, _, _, docs = built
    text = all_text(docs)
    for sentence in fx.PROSE:
        assert sentence in text.replace("B<price>", "price")
    for dropped in ("x[i] = y[i]", "var x = 1", "footnote that is dropped", "dropped</p>", "Prev Next", ".. code",
                    ":ref:", "<", "strong:H1", "=head1", "----", "===="):
        assert dropped not in text, dropped
    assert fx.ADOC_ONLY in text                                 # a section underline is not a listing block
    assert "inline words stay." in text                         # inline code in HTML prose is kept
    assert "price" in text and "B<" not in text                  # POD formatting codes become their text
    assert all("\r" not in d["text"] and "\n\n\n" not in d["text"] for s in docs.values() for d in s)


def test_repeated_paragraphs_short_documents_and_excluded_members_are_dropped(built):
    _, _, manifest, docs = built
    text = all_text(docs)
    assert text.count(fx.SHARED) == 1
    ids = [d["id"] for split in docs.values() for d in split]
    assert not any("short" in i or "translations" in i for i in ids)
    assert manifest["sources"]["rstdocs"]["documents_read"] == 2    # a.rst.txt and short.rst.txt; not translations/
    assert sum(f["documents"] for f in manifest["files"].values()) == len(ids) == len(set(ids))


def test_builds_are_byte_identical_and_check_verifies_them(built, tmp_path):
    root, sources, manifest, _ = built
    again = corpus.build(root / "inputs", tmp_path / "again", sources, min_doc_chars=100, log=lambda m: None)
    assert again["files"] == manifest["files"]
    for name in ("train.jsonl.gz", "validation.jsonl.gz", "test.jsonl.gz", "manifest.json"):
        assert (tmp_path / "again" / name).read_bytes() == (root / "out" / name).read_bytes()
    assert corpus.check(tmp_path / "again")["files"] == manifest["files"]
    with gzip.open(tmp_path / "again" / "train.jsonl.gz", "ab") as f:       # tamper with a split
        f.write(b'{"id": "x", "source": "x", "text": "x"}\n')
    with pytest.raises(corpus.CorpusError, match="train.jsonl.gz sha256 differs"):
        corpus.check(tmp_path / "again")


def test_splits_are_per_document_hashes_with_the_stated_shares():
    ids = [f"src/doc{i}" for i in range(20000)]
    splits = [corpus.split_of(i) for i in ids]
    assert splits == [corpus.split_of(i) for i in ids]          # a function of the id alone
    for name, per_mille in corpus.SPLITS:
        assert splits.count(name) / len(ids) == pytest.approx(per_mille / 1000, abs=0.003)


def test_every_document_lands_in_the_split_of_its_id(built):
    _, _, _, docs = built
    for split, records in docs.items():
        assert all(corpus.split_of(d["id"]) == split for d in records)


def test_missing_or_changed_inputs_fail_before_any_work(built, tmp_path, capsys):
    root, sources, _, _ = built
    with pytest.raises(corpus.CorpusError, match=r"corpus input book: .* is missing"):
        corpus.build(tmp_path, tmp_path / "out", sources)
    bad = tmp_path / "bad"
    bad.mkdir()
    for s in sources:
        (bad / s.filename).write_bytes((root / "inputs" / s.filename).read_bytes())
    (bad / sources[2].filename).write_bytes(b"!<arch>\nchanged")
    with pytest.raises(corpus.CorpusError, match=f"corpus input htmldocs: .*{sources[2].filename} does not match"):
        corpus.build(bad, tmp_path / "out", sources)
    assert not (tmp_path / "out").exists()
    assert corpus.main(["check", "--out", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: corpus ")


def test_is_prose_keeps_sentences_and_drops_code_and_tables():
    assert corpus.is_prose(fx.PROSE[0])
    assert not corpus.is_prose(fx.CODE)
    assert not corpus.is_prose("| 1 | 2 | 3 |\n| 4 | 5 | 6 |")
    assert not corpus.is_prose("1997 2004 3.14 42 7 0.5")


def test_pinned_sources_are_complete_and_distinct():
    names = [s.name for s in corpus.SOURCES]
    assert len(names) == len(set(names)) and len({s.filename for s in corpus.SOURCES}) == len(names)
    for s in corpus.SOURCES:
        assert re.fullmatch(r"[0-9a-f]{64}", s.sha256) and s.size > 0 and s.licence and s.members
        assert s.format in ("sword", *corpus.EXTRACTORS) and s.archive_path.endswith(s.filename)
        assert s.archive_path.startswith("pool/") and s.filename.startswith(s.package + "_")
    entries = corpus.catalogue_entries()
    assert [e["sha256"] for e in entries] == [s.sha256 for s in corpus.SOURCES]
    assert all(e["url"].startswith("debian:pool/") for e in entries)


def test_token_stats_count_tokens_and_unigram_entropy(built):
    from posbench.harness.training.tokenizer import train_bpe

    root, _, _, docs = built
    tok = train_bpe([d["text"] for d in docs["train"]], 300)
    path = root / "tok.json"
    tok.backend_tokenizer.save(str(path))
    stats = corpus.token_stats(root / "out", path)
    ids = [t for d in docs["train"] for t in tok(d["text"], add_special_tokens=False)["input_ids"]]
    assert stats["tokens"] == len(ids)
    import math
    from collections import Counter
    entropy = -sum(c / len(ids) * math.log(c / len(ids)) for c in Counter(ids).values())
    assert stats["unigram_entropy_nats"] == pytest.approx(entropy, abs=1e-3)
