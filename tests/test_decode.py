"""Continuous batching over the static slot cache (posbench/harness/evaluation/decode.py) gives exactly the eager
path's greedy tokens, finish reasons and texts (fp32, CPU) for every scheme, while slots are freed and refilled with
prompts of other lengths and limits; the slot cache writes each slot's key at its own device-side length; and
out-of-memory halves the slots. The CUDA-graph capture itself is exercised on a GPU (scripts/gpu_engine_check.py)."""
from types import SimpleNamespace

import pytest
import torch
from tiny_models import build_tiny_model

from posbench.harness.evaluation import decode
from posbench.harness.evaluation.data import default_data_root
from posbench.harness.evaluation.engine import TorchEngine

TOKENIZER = default_data_root() / "tokenizers" / "olmo2_dolma2_tokenizer.json"
needs_tokenizer = pytest.mark.skipif(not TOKENIZER.exists(), reason=f"needs the OLMo-2 tokenizer at {TOKENIZER}")
SCHEMES = ["rope", "nope", "hybrid,pattern=RRRN", "repo,start_layer=1"]
PROMPTS = ["The grass is green. The sky is blue. One of the special magic numbers is 12",
           "Short prompt", "A" * 40, "Numbers: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
           "Once upon a time, in a land far away, there lived", "x y z"]


def sample(prompt, max_new, stop=()):
    return SimpleNamespace(prompt=prompt, max_new_tokens=max_new, stop=list(stop), token_count=len(prompt))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode_models")
    paths = {s: build_tiny_model(root / s.split(",")[0], TOKENIZER, scheme=s, seed=5) for s in SCHEMES}
    paths["gqa"] = build_tiny_model(root / "gqa", TOKENIZER, arch="llama", kv_heads=2, seed=6)
    return paths


def eager(engine, s):
    return engine.generate([s.prompt], s.max_new_tokens, s.stop)[0]


@needs_tokenizer
@pytest.mark.parametrize("scheme", SCHEMES + ["gqa"])
def test_continuous_batching_equals_the_eager_path(models, scheme):
    engine = TorchEngine.load(models[scheme], batch_size=2)   # 2 slots for 6 prompts: slots are refilled
    samples = [sample(p, n) for p, n in zip(PROMPTS, [9, 3, 14, 1, 6, 11])]
    got = dict((id(s), g) for s, g in engine.generate_samples(samples))
    assert len(got) == len(samples) and {g.batch_size for g in got.values()} == {2}
    for s in samples:
        ref = eager(engine, s)
        assert (got[id(s)].text, got[id(s)].new_tokens, got[id(s)].finish) == (ref.text, ref.new_tokens, ref.finish)
    assert len({g.text for g in got.values()}) > 3   # the prompts really lead to different continuations


@needs_tokenizer
def test_stop_strings_and_eos_as_in_the_eager_path(models):
    engine = TorchEngine.load(models["rope"], batch_size=2)
    full = eager(engine, sample(PROMPTS[0], 16)).text
    stop = full[5:8]
    samples = [sample(PROMPTS[0], 16, [stop]), sample(PROMPTS[1], 16, ["\n\n"]), sample(PROMPTS[2], 5, [stop])]
    got = dict((id(s), g) for s, g in engine.generate_samples(samples))
    assert got[id(samples[0])].finish == "stop" and got[id(samples[0])].text == full[:full.find(stop)]
    for s in samples:
        ref = eager(engine, s)
        assert (got[id(s)].text, got[id(s)].new_tokens, got[id(s)].finish) == (ref.text, ref.new_tokens, ref.finish)
    # The first generated token as end-of-text: the sequence ends there with nothing emitted, as eagerly.
    engine.eos_ids = {engine.tokenizer.encode(full, add_special_tokens=False)[0]}
    engine._decoder = None   # its device state holds the old EOS set
    (s, g), = engine.generate_samples([sample(PROMPTS[0], 16)])
    assert (g.finish, g.new_tokens, g.text) == ("eos", 0, "")


def test_first_stop_replays_the_per_token_check():
    text = {1: "a", 2: "b", 3: "\n", 4: "\n", 5: "c"}
    def dec(ids):
        return "".join(text[i] for i in ids)
    assert decode.first_stop([1, 2, 3, 4, 5], 0, ["\n\n"], dec) == 3
    assert decode.first_stop([1, 2, 3, 4, 5], 4, ["\n\n"], dec) == 4   # a stop straddling the checked tokens
    assert decode.first_stop([1, 2, 5], 0, ["\n\n"], dec) is None
    assert decode.first_stop([1, 2, 3, 4], 0, (), dec) is None


def test_slot_cache_writes_at_each_slots_own_length():
    k = [torch.zeros(3, 2, 8, 4)]
    v = [torch.zeros(3, 2, 8, 4)]
    cache = decode.SlotCache(k, v)
    cache.lengths.copy_(torch.tensor([3, 0, 7]))
    new_k, new_v = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
    full_k, full_v = cache.update(0, new_k, new_v)
    assert full_k.shape == (3, 2, 8, 4) and cache.offset == 7 and cache.max_len == 8
    for s, at in enumerate([3, 0, 7]):
        assert torch.equal(full_k[s, :, at], new_k[s, :, 0]) and torch.equal(full_v[s, :, at], new_v[s, :, 0])
        others = [i for i in range(8) if i != at]
        assert full_k[s][:, others].abs().sum() == 0
    view = cache.slot(1)   # a prefill through a slot's view lands in the static buffer
    view.update(0, torch.ones(1, 2, 5, 4), torch.ones(1, 2, 5, 4))
    assert k[0][1, :, :5].eq(1).all() and k[0][0, :, :3].abs().sum() == 0


@needs_tokenizer
def test_out_of_memory_halves_the_slots(models, monkeypatch):
    engine = TorchEngine.load(models["rope"], batch_size=4)
    real, sizes = decode.SlotDecoder, []

    def fake(model, slots, *args):
        sizes.append(slots)
        if slots > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, slots, *args)
    monkeypatch.setattr(decode, "SlotDecoder", fake)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    samples = [sample(p, 4) for p in PROMPTS[:5]]
    got = dict((id(s), g) for s, g in engine.generate_samples(samples))
    assert sizes == [4, 2, 1] and len(got) == 5
    assert [got[id(s)].text for s in samples] == [eager(engine, s).text for s in samples]
