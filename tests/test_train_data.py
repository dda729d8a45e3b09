"""Training data and the pieces of the training step: rows are a function of (seed, row), the cache equals
generation, answers are marked, text files of every kind are read; the schedule, the loss and `extends`."""
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import train_toy
import yaml

from posbench.harness.training.config import TextSource, TrainConfigError, load_train_config
from posbench.harness.training.data import (
    KIND_ANSWER,
    KIND_PAD,
    KIND_PROMPT,
    KIND_TEXT,
    RowDataset,
    RowSampler,
    SyntheticSource,
    build_cache,
    load_data,
    read_documents,
    text_stream,
)
from posbench.harness.training.tokenizer import train_bpe
from posbench.harness.training.train import batch_loss, lr_at
from tests.data_testing import DATA_ROOT, needs_data

SHARED = DATA_ROOT
C4 = SHARED / "text" / "c4-sample.01.json.gz"
pytestmark = needs_data("c4_sample")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(training file, tokenizer) for toy samples at lengths 64 and 80 plus C4 text, rows of 128 tokens."""
    root = tmp_path_factory.mktemp("data")
    train_toy.write_task(root / "tasks")
    raw = {"model": {"init": "scratch", "config": {"model_type": "olmo2"}}, "tokenizer": "unused",
           "data": {"task_paths": [str(root / "tasks")], "sources": [
               {"files": str(C4), "weight": 1.0, "name": "c4"},
               {"task": "toy_kv", "weight": 2.0, "samples": 16, "lengths": [64, 80]}]},
           "train": {"seq_len": 128, "batch_size": 2, "steps": 4, "lr": 1e-3}}
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(raw))
    docs = read_documents(C4, "text")
    return load_train_config(path), train_bpe(docs, 400)


def dataset(setup, **data):
    cfg, tok = setup
    cfg.data.update(data)
    return load_data(cfg, tok, {"data": str(SHARED)}, "tok", workers=2, log=lambda *a: None)


def test_rows_depend_only_on_seed_and_index(setup):
    a, b = dataset(setup), dataset(setup)
    for r in (0, 7, 12345):
        assert all(torch.equal(x, y) for x, y in zip(a[r], b[r], strict=True))
    other = dataset(setup, seed=99)
    assert not all(torch.equal(a[r][0], other[r][0]) for r in range(4))
    assert not torch.equal(a[0][0], a[1][0])


def test_workers_do_not_change_the_batches(setup):
    data = dataset(setup)
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=RowSampler(1, 3, 2, 2), num_workers=workers)
        batches.append([b for b in loader])
    assert len(batches[0]) == 4   # 2 steps x 2 micro-batches
    for b0, b1 in zip(*batches, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(b0, b1, strict=True))


def test_sampler_splits_each_step_over_micro_batches_and_ranks():
    rows = [list(RowSampler(2, 3, batch_size=2, grad_accum=2, rank=r, world=2)) for r in (0, 1)]
    assert rows == [[16, 17, 20, 21], [18, 19, 22, 23]]   # step 2 reads rows 16..23 of the global batch
    assert list(RowSampler(2, 3, batch_size=4, grad_accum=2)) == list(range(16, 24))


def test_synthetic_rows_start_with_a_sample_and_mark_its_answer(setup):
    cfg, tok = setup
    data = dataset(setup)
    synthetic = [r for r in range(40) if data.row(r)[1][0] == KIND_PROMPT]
    assert synthetic and len(synthetic) < 40
    for r in synthetic[:5]:
        ids, kinds = data.row(r)
        start = np.flatnonzero(kinds == KIND_ANSWER)[0]
        end = start + np.flatnonzero(kinds[start:] != KIND_ANSWER)[0]
        text = tok.decode(ids[start:end - 1])
        assert ids[end - 1] == tok.eos_token_id and text[0] == " " and text[1:].isdigit() and len(text) == 5
        prompt = tok.decode(ids[:start])
        assert prompt.startswith("The") and prompt.endswith(" is") and "What is the code for" in prompt
        assert set(kinds[:start]) == {KIND_PROMPT}
        assert set(kinds[end:]) <= {KIND_PROMPT, KIND_ANSWER, KIND_TEXT}   # then another sample or text


def test_rows_without_text_are_padded_and_padding_is_not_a_target(setup):
    cfg, tok = setup
    data = dataset(setup)
    only_synthetic = RowDataset(128, 5, [], data.synthetic, tok.pad_token_id)
    ids, kinds = only_synthetic.row(3)
    assert kinds[-1] == KIND_PAD and ids[-1] == tok.pad_token_id
    x, y, k = only_synthetic[3]
    assert x.shape == y.shape == k.shape == (128,) and torch.equal(x[1:], y[:-1])


def test_cache_built_by_a_process_pool_equals_generation(setup, tmp_path):
    cfg, tok = setup
    fresh = dataset(setup, cache=None)
    source = fresh.synthetic[0]
    folder = build_cache(source, tmp_path, 64, workers=2, log=lambda *a: None)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["samples"] == 16 and meta["samples_per_s"] > 0
    cached = SyntheticSource(source.source, source.spec, tok, source.seed, source.data_paths, "tok")
    assert cached.open_cache(tmp_path) == [80]    # 64 is cached, 80 is not
    for i in (0, 5, 15):
        ids, n = cached.tokens(64, i)
        ref, n_ref = source.generate(64, i)
        assert np.array_equal(ids, ref) and n == n_ref
    through_cache = dataset(setup, cache=str(tmp_path))   # builds 80, maps both
    assert all(torch.equal(x, y) for r in range(6) for x, y in zip(through_cache[r], fresh[r], strict=True))


def test_text_files_of_each_kind(tmp_path):
    records = [{"text": "first doc"}, {"text": "second doc", "id": 2}]
    (tmp_path / "a.txt").write_text("a whole file")
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (tmp_path / "c.json").write_text(json.dumps(records))
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records))
    assert read_documents(tmp_path / "a.txt", "text") == ["a whole file"]
    for name in ("b.jsonl", "c.json", "d.jsonl.gz"):
        assert read_documents(tmp_path / name, "text") == ["first doc", "second doc"]
    with pytest.raises(TrainConfigError, match="record 0 has no string under key 'body'"):
        read_documents(tmp_path / "b.jsonl", "body")
    (tmp_path / "e.csv").write_text("x")
    with pytest.raises(TrainConfigError, match="unsupported text file type"):
        read_documents(tmp_path / "e.csv", "text")


def test_text_stream_ends_every_document_with_eos(setup):
    _, tok = setup
    stream = text_stream(tok, ["one", "two three"])
    assert list(stream).count(tok.eos_token_id) == 2 and stream[-1] == tok.eos_token_id
    assert tok.decode(stream, skip_special_tokens=True) == "onetwo three"


def test_text_source_names_default_and_duplicates_fail(setup, tmp_path):
    cfg, _ = setup
    assert isinstance(cfg.sources[0], TextSource) and cfg.sources[0].name == "c4"
    raw = yaml.safe_load(Path(cfg.path).read_text())
    raw["data"]["sources"].append({"files": str(C4), "weight": 1.0, "name": "c4"})
    (tmp_path / "dup.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(TrainConfigError, match="two data sources are named 'c4'"):
        load_train_config(tmp_path / "dup.yaml")


def test_schedule_warms_up_then_decays_to_the_floor():
    t = {"lr": 1.0, "warmup": 4, "steps": 104, "decay": "cosine", "lr_floor": 0.1}
    assert [lr_at(s, t) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, t) == 1.0 and lr_at(103, t) == pytest.approx(0.1)
    assert lr_at(54, t) == pytest.approx(0.55, abs=0.01)                 # cosine midpoint
    assert lr_at(54, {**t, "decay": "linear"}) == pytest.approx(0.1 + 0.9 * (1 - 50 / 99))
    assert lr_at(80, {**t, "decay": "constant"}) == 1.0
    cosine = [lr_at(s, t) for s in range(4, 104)]
    assert all(a >= b for a, b in zip(cosine, cosine[1:], strict=False))


def test_loss_weights_answers_skips_padding_and_adds_z_loss():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 7)
    targets = torch.tensor([[1, 2, 3, 4]])
    kinds = torch.tensor([[KIND_TEXT, KIND_PROMPT, KIND_ANSWER, KIND_PAD]])
    ce = torch.nn.functional.cross_entropy(logits[0], targets[0], reduction="none")
    lse = torch.logsumexp(logits[0], -1)
    objective, stats = batch_loss(logits, targets, kinds, answer_weight=3.0, z_loss=0.0)
    assert objective.item() == pytest.approx((ce[0] + ce[1] + 3 * ce[2]).item(), rel=1e-6)
    assert stats[:4].tolist() == pytest.approx([(ce[:3].sum()).item(), 3, ce[2].item(), 1], rel=1e-6)
    with_z, _ = batch_loss(logits, targets, kinds, answer_weight=1.0, z_loss=0.5)
    assert with_z.item() == pytest.approx((ce[:3].sum() + 0.5 * lse[:3].square().sum()).item(), rel=1e-6)
    correct = float(logits[0, 2].argmax() == 3)
    assert stats[4].item() == correct and math.isfinite(stats[5].item())


def test_extends_merges_mappings_and_replaces_lists(setup, tmp_path):
    cfg, _ = setup
    (tmp_path / "child.yaml").write_text(yaml.safe_dump({
        "extends": str(cfg.path), "scheme": "nope", "train": {"steps": 9},
        "data": {"sources": [{"files": str(C4), "weight": 1.0}]}}))
    child = load_train_config(tmp_path / "child.yaml")
    assert child.scheme == "nope" and child.train["steps"] == 9 and child.train["seq_len"] == 128
    assert len(child.sources) == 1 and child.data["task_paths"] == cfg.data["task_paths"]
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(TrainConfigError, match="extends itself"):
        load_train_config(tmp_path / "loop.yaml")
