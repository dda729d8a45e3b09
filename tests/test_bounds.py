"""The floors bench compares with (posbench/harness/bounds.py), checked against direct counts on a tiny model."""
import torch

from posbench.harness import bounds
from posbench.harness.bench import build_models, tiny_config
from posbench.harness.core.model import ModelConfig


def test_weight_bytes_and_kv_bytes_count_what_a_decode_step_reads():
    models = build_models(tiny_config(), {"rope": "rope", "repo": "repo,start_layer=5"}, "cpu", torch.float32)
    for model in models.values():
        params = dict(model.named_parameters())
        expected = sum(p.numel() * 4 for name, p in params.items() if name != "embed_tokens.weight")
        assert bounds.weight_bytes(model) == expected
        assert bounds.meta_weight_bytes(model.config, model.scheme, 4) == expected   # counted without weights
    c = models["rope"].config
    assert bounds.kv_bytes_per_token(c, 2) == 2 * c.num_layers * c.num_kv_heads * c.head_dim * 2
    moved = bounds.weight_bytes(models["rope"]) + 8 * 1000 * bounds.kv_bytes_per_token(c, 4)   # fp32 cache
    assert abs(bounds.decode_floor_ms(models["rope"], 1000, 8, bandwidth_gb_s=1000.0) - moved / 1e9) < 1e-12


def test_prefill_flops_match_a_count_of_the_matrix_products():
    c = ModelConfig.from_hf(tiny_config())
    n = 300
    d, hd = c.hidden_size, c.head_dim
    q, kv = c.num_heads * hd, c.num_kv_heads * hd
    linear = n * (d * q + 2 * d * kv + q * d + 3 * d * c.intermediate_size) * 2
    scores = sum(i + 1 for i in range(n)) * hd * c.num_heads * 2 * 2   # causal q.k and p.v, query i sees i + 1 keys
    expected = c.num_layers * linear + scores * c.num_layers + 2 * d * c.vocab_size
    assert abs(bounds.prefill_flops(c, n) - expected) / expected < 0.01   # N^2/2 against the exact N(N+1)/2


def test_cell_floor_is_the_sum_of_its_steps():
    """At batch 1 the cell's decode floor is the sum of one-sequence step floors at each step's real context."""
    model = build_models(tiny_config(), {"rope": "rope"}, "cpu", torch.float32)["rope"]
    samples = [(100, 5), (250, 3)]
    bw, rate = 500.0, 10.0
    stepwise = sum(bounds.decode_floor_ms(model, p + t, 1, bw) for p, o in samples for t in range(o)) / 1e3
    prefill = sum(bounds.prefill_flops(model.config, p) for p, _ in samples) / (rate * 1e12)
    got = bounds.cell_floor_s(model.config, bounds.weight_bytes(model), 4, samples, 1, bw, rate)
    assert abs(got - (stepwise + prefill)) / got < 1e-9
    # a batch of 2 reads the weights half as often; the caches are read as before
    batched = bounds.cell_floor_s(model.config, bounds.weight_bytes(model), 4, samples, 2, bw, rate)
    assert abs((got - batched) - 4 * bounds.weight_bytes(model) / (bw * 1e9)) / got < 1e-9
