"""position_schemes on its own: spec parsing, the registry, layer layouts, frequencies, detection from pe_config."""
import math

import pytest
import torch
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from posbench.position_schemes import (
    POSITION_LAYERS,
    RotaryConfig,
    SchemeError,
    detect_scheme,
    format_layer_kinds,
    get_scheme,
    list_schemes,
    parse_scheme_spec,
    sakana_pe_config,
)


def scheme(spec):
    name, params = parse_scheme_spec(spec)
    return get_scheme(name, **params)


def test_spec_values_are_typed():
    name, params = parse_scheme_spec("rope, scaling=yarn,factor=4,original_max_position_embeddings=4096,beta_fast=32.5")
    assert name == "rope"
    assert params == {"scaling": "yarn", "factor": 4, "original_max_position_embeddings": 4096, "beta_fast": 32.5}
    assert parse_scheme_spec("repo,start_layer=5,fresh_init=TRUE") == ("repo", {"start_layer": 5, "fresh_init": True})
    assert parse_scheme_spec("hybrid,nope_layers=[3,7]") == ("hybrid", {"nope_layers": [3, 7]})
    assert parse_scheme_spec("Hybrid,pattern=RRRN") == ("hybrid", {"pattern": "RRRN"})


@pytest.mark.parametrize("spec, words", [
    ("", ["missing the scheme name", "rope, nope, hybrid, repo"]),
    ("rope,factor", ["expected key=value", "'factor'"]),
    ("rope,factor=2,factor=3", ["factor given twice"]),
    ("alibi", ["unknown scheme 'alibi'", "rope, nope, hybrid, repo"]),
    ("rope,fator=2", ["unknown parameter 'fator'", "factor"]),
    ("nope,start_layer=2", ["unknown parameter 'start_layer'", "valid: none"]),
    ("repo,start_layer=five", ["start_layer must be an integer", "'five'"]),
    ("repo,fresh_init=1", ["fresh_init must be true or false"]),
    ("hybrid", ["exactly one of pattern", "nope_layers"]),
    ("hybrid,pattern=RRXN", ["pattern must be letters R (RoPE) and N (NoPE)", "'RRXN'"]),
    ("hybrid,nope_layers=[a,b]", ["nope_layers must be layer numbers"]),
])
def test_bad_specs_name_the_problem(spec, words):
    with pytest.raises(SchemeError) as err:
        scheme(spec)
    for word in words:
        assert word in str(err.value)


def test_list_schemes_has_one_line_each():
    schemes = list_schemes()
    assert list(schemes) == ["rope", "nope", "hybrid", "repo"]
    assert all(text and "\n" not in text for text in schemes.values())


def test_layer_kinds():
    assert scheme("rope").layer_kinds(3) == ["rope"] * 3
    assert scheme("nope").layer_kinds(3) == ["nope"] * 3
    # RRRN: N = NoPE, so layers 3, 7, 11, ... skip rotation and 0, 1, 2, 4, 5, 6, ... rotate.
    kinds = scheme("hybrid,pattern=RRRN").layer_kinds(12)
    assert [i for i, k in enumerate(kinds) if k == "rope"] == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert scheme("hybrid,nope_layers=[3,7]").layer_kinds(8) == kinds[:8]
    assert get_scheme("hybrid", nope_layers="3,7").layer_kinds(8) == kinds[:8]
    assert scheme("repo").layer_kinds(16) == ["rope"] * 5 + ["repo"] * 11
    assert set(scheme("repo,start_layer=0").layer_kinds(4)) <= set(POSITION_LAYERS)
    assert format_layer_kinds(scheme("repo").layer_kinds(16)) == "layers 0-4 rope, 5-15 repo"
    with pytest.raises(SchemeError, match="nope_layers 9 outside the model's layers 0-7"):
        scheme("hybrid,nope_layers=[3,9]").layer_kinds(8)
    with pytest.raises(SchemeError, match="start_layer 16 leaves no RePo layer"):
        scheme("repo,start_layer=16").layer_kinds(16)


def _transformers_frequencies(rope_type, params, head_dim=16, max_pos=64):
    """The same frequencies straight from transformers, through a real LlamaConfig (not our stand-in)."""
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4, max_position_embeddings=max_pos,
                         rope_parameters={"rope_type": rope_type, "rope_theta": 10000.0, **params})
    return ROPE_INIT_FUNCTIONS[rope_type](config)


@pytest.mark.parametrize("rope_type, params", [
    ("linear", {"factor": 2.0}),
    ("dynamic", {"factor": 2.0}),
    ("yarn", {"factor": 4.0, "original_max_position_embeddings": 16}),
    ("llama3", {"factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16}),
])
def test_scaled_frequencies_match_transformers(rope_type, params):
    rotary = RotaryConfig(head_dim=16, max_position_embeddings=64)
    inv_freq, scaling = get_scheme("rope", scaling=rope_type, **params).frequencies(rotary)
    ref_inv_freq, ref_scaling = _transformers_frequencies(rope_type, params)
    assert torch.allclose(inv_freq, ref_inv_freq.float(), rtol=1e-6, atol=0), "inv_freq differs (rtol 1e-6)"
    assert scaling == pytest.approx(ref_scaling)


def test_default_and_scaling_from_the_checkpoint():
    rotary = RotaryConfig(head_dim=128, rope_theta=500000.0, max_position_embeddings=4096)
    inv_freq, scaling = scheme("rope").frequencies(rotary)
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (64,) and scaling == 1.0
    assert inv_freq[1].item() == pytest.approx(500000.0 ** (-2 / 128), rel=1e-6)
    # Sakana's 8K setting: YaRN factor 2 over 4096; mscale 0.1 ln 2 + 1 (repo-model.md section 4).
    _, mscale = scheme("repo,scaling=yarn,factor=2,original_max_position_embeddings=4096").frequencies(rotary)
    assert mscale == pytest.approx(0.1 * math.log(2) + 1)
    # A checkpoint that says linear is linear unless the user says otherwise.
    linear = RotaryConfig(head_dim=16, rope_parameters={"rope_type": "linear", "factor": 4.0})
    assert torch.allclose(scheme("rope").frequencies(linear)[0], scheme("rope,scaling=none").frequencies(linear)[0] / 4)
    assert torch.allclose(scheme("rope,factor=2").frequencies(linear)[0], scheme("rope").frequencies(linear)[0] * 2)


def test_dynamic_depends_on_length_like_transformers():
    rotary = RotaryConfig(head_dim=16, max_position_embeddings=8)
    dynamic = scheme("rope,scaling=dynamic,factor=2")
    assert dynamic.length_dependent(rotary) and not scheme("rope,scaling=yarn,factor=2").length_dependent(rotary)
    short, _ = dynamic.frequencies(rotary, seq_len=8)
    long, _ = dynamic.frequencies(rotary, seq_len=20)
    assert torch.equal(short, scheme("rope").frequencies(rotary)[0]), "no rescaling up to max_position_embeddings"
    assert (long[1:] < short[1:]).all(), "a longer context lowers the frequencies (larger NTK base)"


@pytest.mark.parametrize("spec, words", [
    ("rope,scaling=yarn", ["scaling=yarn needs factor"]),
    ("rope,scaling=llama3,factor=8", ["needs low_freq_factor"]),
    ("rope,scaling=linear,factor=2,beta_fast=16", ["beta_fast does not apply to scaling=linear"]),
    ("rope,scaling=ntk,factor=2", ["'ntk' is not supported", "linear, dynamic, yarn"]),
    ("repo,scaling=dynamic,factor=2", ["'dynamic' is not supported", "none, linear, yarn, llama3"]),
])
def test_bad_scaling_is_a_scheme_error(spec, words):
    with pytest.raises(SchemeError) as err:
        scheme(spec).frequencies(RotaryConfig(head_dim=16))
    for word in words:
        assert word in str(err.value)


# --- detection ------------------------------------------------------------------------------------------------------

def repo_names(layers):
    return [f"model.layers.{i}.self_attn.{m}.weight" for i in layers for m in ("gate_map", "content_map", "final_map")]


BASE_NAMES = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"]


def config(pe_config=None, layers=16):
    return {"model_type": "olmo2", "num_hidden_layers": layers} | ({"pe_config": pe_config} if pe_config else {})


def test_detects_sakana_repo_with_both_spellings():
    pe = sakana_pe_config(["rope"] * 5 + ["repo"] * 11)
    assert pe == {"dynamic_pe_mode": "swigluex_multihead", "dynmaic_pe_start_layer": 5, "dynamic_pe_start_layer": 5,
                  "dynamic_pe_layer_ids": "", "dynmaic_pe_layer_ids": ""}
    assert detect_scheme(config(pe), BASE_NAMES + repo_names(range(5, 16))) == ("repo", {"start_layer": 5})


def test_detects_repo_from_the_correct_spelling_alone():
    pe = {"dynamic_pe_mode": "swigluex_multihead", "dynamic_pe_start_layer": 5, "dynamic_pe_layer_ids": ""}
    assert detect_scheme(config(pe), repo_names(range(5, 16))) == ("repo", {"start_layer": 5})


def test_disagreeing_spellings_follow_the_misspelled_key_and_warn():
    pe = {"dynamic_pe_mode": "swigluex_multihead", "dynmaic_pe_start_layer": 5, "dynamic_pe_start_layer": 3}
    with pytest.warns(UserWarning, match="dynmaic_pe_start_layer=5 and dynamic_pe_start_layer=3 disagree"):
        assert detect_scheme(config(pe), repo_names(range(5, 16))) == ("repo", {"start_layer": 5})
    # Followed even when the weights then disagree: the mismatch is reported, naming both layer sets.
    pe = {"dynamic_pe_mode": "swigluex_multihead", "dynmaic_pe_start_layer": 3, "dynamic_pe_start_layer": 5}
    with pytest.warns(UserWarning), pytest.raises(SchemeError, match="RePo in layers 3-15 .* in layers 5-15"):
        detect_scheme(config(pe), repo_names(range(5, 16)))


def test_config_and_weights_must_agree():
    pe = sakana_pe_config(["rope"] * 5 + ["repo"] * 11)
    with pytest.raises(SchemeError, match="RePo in layers 5-15 but .* RePo weights .* in layers 6-15"):
        detect_scheme(config(pe), repo_names(range(6, 16)))
    with pytest.raises(SchemeError, match="RePo weights in layers 5-15 but pe_config dynamic_pe_mode is 'none'"):
        detect_scheme(config(), repo_names(range(5, 16)))
    with pytest.raises(SchemeError, match="layer 7 has only part of RePo's weights: missing "
                                          "model.layers.7.self_attn.final_map.weight"):
        names = repo_names(range(5, 16))
        names.remove("model.layers.7.self_attn.final_map.weight")
        detect_scheme(config(pe), names)


def test_detects_rope_nope_and_hybrid():
    assert detect_scheme(config(), BASE_NAMES) == ("rope", {})
    assert detect_scheme(config({"dynamic_pe_mode": "none"}), BASE_NAMES) == ("rope", {})
    assert detect_scheme(config({"dynamic_pe_mode": "nope", "dynmaic_pe_start_layer": 0}), []) == ("nope", {})
    nope_ids = {"dynamic_pe_mode": "nope", "dynmaic_pe_layer_ids": "3,7", "dynamic_pe_layer_ids": "3,7"}
    assert detect_scheme(config(nope_ids, layers=8), []) == ("hybrid", {"nope_layers": [3, 7]})
    nope_from_5 = {"dynamic_pe_mode": "nope", "dynmaic_pe_start_layer": 5}
    assert detect_scheme(config(nope_from_5, layers=8), []) == ("hybrid", {"nope_layers": [5, 6, 7]})
    # sakana_pe_config writes what detect_scheme reads back.
    kinds = scheme("hybrid,pattern=RRRN").layer_kinds(8)
    assert detect_scheme(config(sakana_pe_config(kinds), layers=8), []) == ("hybrid", {"nope_layers": [3, 7]})


def test_unsupported_pe_mode():
    with pytest.raises(SchemeError, match="dynamic_pe_mode 'cope' is not supported .*swigluex_multihead"):
        detect_scheme(config({"dynamic_pe_mode": "cope"}), [])
