"""RePo's scaling_target (the paper's ablation): RoPE scaling on the integer layers only, the learned layers only,
or both (the default). Checked on a tiny Sakana-format checkpoint by comparing what each layer rotates with against
the unscaled and the fully scaled model: exact equality, since the same code runs with the same frequencies."""
import pytest
import torch
from tiny_checkpoints import VOCAB, sakana_checkpoint

from posbench.harness.core.checkpoint import load_model
from posbench.position_schemes import RotaryConfig, SchemeError, get_scheme, parse_scheme_spec

YARN = "scaling=yarn,factor=4,original_max_position_embeddings=8"


class RotatedQ:
    """A probe that changes nothing and keeps every layer's rotated queries."""

    def __init__(self):
        self.q = {}

    def positions(self, layer, kind, positions, step):
        return positions

    def attention(self, layer, q, k):
        self.q[layer] = q.clone()


def load(path, spec):
    return load_model(path, scheme=parse_scheme_spec(spec))[0]


def test_frequencies_per_layer_kind():
    rotary = RotaryConfig(head_dim=16, rope_theta=10_000.0, max_position_embeddings=8)
    plain = get_scheme("repo").frequencies(rotary)[0]
    yarn, mscale = get_scheme("repo", scaling="yarn", factor=4.0).frequencies(rotary)
    assert not torch.allclose(plain, yarn) and mscale > 1
    for target, scaled_kinds in (("both", {"rope", "repo"}), ("integer", {"rope"}), ("learned", {"repo"})):
        scheme = get_scheme("repo", scaling="yarn", factor=4.0, scaling_target=target)
        for kind in ("rope", "repo"):
            inv_freq, scaling = scheme.frequencies(rotary, layer_kind=kind)
            want, want_scaling = (yarn, mscale) if kind in scaled_kinds else (plain, 1.0)
            assert torch.equal(inv_freq, want) and scaling == want_scaling, (target, kind)
    assert "scaling_target" not in get_scheme("repo").describe()["params"]
    assert get_scheme("repo", scaling_target="learned").describe()["params"]["scaling_target"] == "learned"


def test_bad_scaling_target_names_the_choices():
    with pytest.raises(SchemeError, match="scaling_target must be one of both, integer, learned, got 'all'"):
        get_scheme("repo", scaling_target="all")


@torch.no_grad()
def test_all_learned_layers_follow_the_target(tmp_path):
    """Every layer learned (start_layer=0): targeting the integer layers leaves the model unscaled, targeting the
    learned ones scales it all."""
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=3, start_layer=0)
    ids = torch.randint(0, VOCAB, (2, 12))
    none, both = load(path, "repo,start_layer=0")(ids), load(path, f"repo,start_layer=0,{YARN}")(ids)
    assert (none - both).abs().max() > 1e-3, "YaRN should change the logits (else the test cannot tell)"
    assert torch.equal(load(path, f"repo,start_layer=0,scaling_target=integer,{YARN}")(ids), none)
    assert torch.equal(load(path, f"repo,start_layer=0,scaling_target=learned,{YARN}")(ids), both)


@torch.no_grad()
def test_integer_layers_follow_the_target(tmp_path):
    """Layer 0 integer, layers 1-2 learned: layer 0's rotated queries are the scaled ones exactly when the integer
    layers are targeted; the learned layers then differ from both references (the other kind is scaled)."""
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=3, start_layer=1)
    ids = torch.randint(0, VOCAB, (1, 12))
    seen = {}
    for name, spec in (("none", "repo,start_layer=1"), ("both", f"repo,start_layer=1,{YARN}"),
                       ("integer", f"repo,start_layer=1,scaling_target=integer,{YARN}"),
                       ("learned", f"repo,start_layer=1,scaling_target=learned,{YARN}")):
        probe = RotatedQ()
        seen[name] = (load(path, spec)(ids, probe=probe), probe.q)
    assert torch.equal(seen["integer"][1][0], seen["both"][1][0])
    assert torch.equal(seen["learned"][1][0], seen["none"][1][0])
    assert not torch.equal(seen["none"][1][0], seen["both"][1][0])
    for target in ("integer", "learned"):
        for other in ("none", "both"):
            assert (seen[target][0] - seen[other][0]).abs().max() > 1e-4, (target, other)
