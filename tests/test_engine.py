"""The engine: greedy batched generation equals one-at-a-time generation for every scheme (fp32, CPU), stop strings
and EOS end generation, log-likelihoods equal a direct full-forward computation, and out-of-memory halves the batch."""

import pytest
import torch
from tiny_models import build_tiny_model

from posbench.harness.evaluation.data import default_data_root
from posbench.harness.evaluation.engine import Generation, TorchEngine, truncate_at_stop
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer")

TOKENIZER = default_data_root() / "tokenizers" / \
    "olmo2_dolma2_tokenizer.json"
SCHEMES = ["rope", "nope", "hybrid,pattern=RRRN", "repo,start_layer=1"]
PROMPTS = ["The grass is green. The sky is blue. One of the special magic numbers is 12",
           "Short prompt", "A" * 40, "Numbers: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_models")
    return {s: build_tiny_model(root / s.split(",")[0], TOKENIZER, scheme=s, seed=3) for s in SCHEMES}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batch_of_n_equals_batch_of_one(models, scheme):
    engine = TorchEngine.load(models[scheme])
    together = engine.generate(PROMPTS, max_new_tokens=12)
    alone = [engine.generate([p], max_new_tokens=12)[0] for p in PROMPTS]
    assert [g.text for g in together] == [g.text for g in alone]
    assert all(g.new_tokens == 12 and g.finish == "length" for g in alone)
    assert len({g.text for g in alone}) > 1      # the prompts really lead to different continuations


def test_stop_strings_and_eos(models):
    engine = TorchEngine.load(models["rope"])
    full = engine.generate([PROMPTS[0]], max_new_tokens=16)[0].text
    stop = full[3:6]
    cut = engine.generate([PROMPTS[0]], max_new_tokens=16, stop=[stop])[0]
    assert cut.finish == "stop" and cut.text == full[:full.find(stop)] and stop not in cut.text
    # Make the first generated token the end-of-text token: generation ends there with nothing emitted.
    first = engine.tokenizer.encode(full, add_special_tokens=False)[0]
    engine.eos_ids = {first}
    eos = engine.generate([PROMPTS[0]], max_new_tokens=16)[0]
    assert eos.finish == "eos" and eos.new_tokens == 0 and eos.text == ""
    assert truncate_at_stop("abc\n\ndef", ["\n\n", "d"]) == ("abc", True)
    assert truncate_at_stop("abc", ["x", ""]) == ("abc", False)


def test_loglikelihood_matches_direct_computation(models):
    engine = TorchEngine.load(models["repo,start_layer=1"])
    requests = [("Question: what colour is the sky?\nAnswer:", " blue"),
                ("Question: what colour is the sky?\nAnswer: ", "green grass"),   # trailing space moves over
                ("Hi", " there, how are you today?")]
    got = engine.loglikelihood(requests)
    for (context, continuation), (ll, greedy) in zip(requests, got):
        ctx_ids, cont_ids = engine.split_request(context, continuation)
        ids = torch.tensor([ctx_ids + cont_ids])
        with torch.no_grad():
            logp = engine.model(ids).float().log_softmax(-1)[0]
        expected = sum(logp[len(ctx_ids) - 1 + j, t].item() for j, t in enumerate(cont_ids))
        assert abs(ll - expected) < 1e-4, (ll, expected)
        assert greedy == all(logp[len(ctx_ids) - 1 + j].argmax().item() == t for j, t in enumerate(cont_ids))
    ctx, cont = engine.split_request("Answer: ", "yes")
    assert engine.tokenizer.decode(cont).startswith(" ")


def test_out_of_memory_halves_the_batch(models, monkeypatch):
    engine = TorchEngine.load(models["rope"], batch_size=4)
    sizes = []

    def fake(batch):
        sizes.append(len(batch))
        if len(batch) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return [Generation("x", 1, 0.0, 0.0, 1, "length") for _ in batch]
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    out = list(engine._run_batched(list(range(5)), 100, fake))
    assert [item for item, _ in out] == [0, 1, 2, 3, 4]
    assert sizes[:3] == [4, 2, 1] and set(sizes[3:]) == {1}
