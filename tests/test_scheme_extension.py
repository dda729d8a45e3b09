"""A scheme with a new kind of layer, defined entirely here: nothing outside position_schemes' interface is touched.

The toy kind rotates by the integer position plus a learned shift per KV head, read from the attention input through
an input map (fused into the q/k/v product) and offset by an own parameter. It trains one step, saves, comes back
under its own name with identical logits, reports its parameters, and evaluates through the engine. A hybrid
subclass also comes back as itself (it used to come back as "hybrid")."""
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from posbench.harness.core.checkpoint import inspect_model, load_model, load_tokenizer, save_model
from posbench.harness.core.model import ModelConfig, Transformer
from posbench.harness.evaluation.engine import TorchEngine
from posbench.harness.training.train import init_weights
from posbench.position_schemes import POSITION_LAYERS, SCHEMES, HybridScheme, PositionLayer, Scheme, get_scheme

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "reference" / "rope"  # its tokenizer ships in the repo


@pytest.fixture
def toy_offset():
    """Define the kind and the scheme (subclassing registers them); forget them afterwards."""

    class ShiftedRotary(PositionLayer):
        kind, title, weight_names = "shifted", "shift", ("shift_map", "offset")

        def __init__(self, shape, scale):
            super().__init__(shape)
            self.input_maps = {"shift_map": shape.num_kv_heads}
            self.offset = nn.Parameter(torch.zeros(shape.num_kv_heads))
            self.scale = scale

        def positions(self, maps, position_ids):
            (shift,) = maps
            return position_ids.float()[..., None] + self.offset.float() + self.scale * torch.tanh(shift.float())

        @torch.no_grad()
        def reset_parameters(self, maps):
            maps["shift_map"].normal_(0.0, 0.02)
            self.offset.zero_()

    class ShiftedScheme(Scheme):
        name = "toy_shifted"
        summary = "integer RoPE, shifted by a learned amount in odd layers (a test scheme)"
        param_types = {"scale": (float, 4.0), "fresh_init": (bool, False)}
        creation_params = ("fresh_init",)

        def layer_kinds(self, num_layers):
            return ["shifted" if i % 2 else "rope" for i in range(num_layers)]

        def position_layer(self, kind, shape):
            if kind == "shifted":
                return ShiftedRotary(shape, self.params["scale"])
            return super().position_layer(kind, shape)

    yield ShiftedScheme
    del SCHEMES["toy_shifted"], POSITION_LAYERS["shifted"]


def small_config(vocab_size, layers=4) -> ModelConfig:
    return ModelConfig.from_hf({"model_type": "llama", "vocab_size": vocab_size, "hidden_size": 64,
                                "intermediate_size": 128, "num_hidden_layers": layers, "num_attention_heads": 4,
                                "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
                                "tie_word_embeddings": True, "hidden_act": "silu"})


def test_new_kind_trains_saves_reloads_and_evaluates(toy_offset, tmp_path):
    tokenizer = load_tokenizer(REFERENCE)
    torch.manual_seed(0)
    model = Transformer(small_config(len(tokenizer)), get_scheme("toy_shifted", scale=2.0))
    init_weights(model, std=0.1)
    assert model.layer_kinds == ["rope", "shifted"] * 2
    # its weights: an input map of 64 -> 2 inside q/k/v, and the offsets; 2 layers
    assert model.parameter_counts()["position"] == 2 * (64 * 2 + 2)

    ids = torch.randint(0, len(tokenizer), (2, 24))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    torch.nn.functional.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten()).backward()
    optimizer.step()
    offset = model.layers[1].self_attn.position.offset
    assert offset.abs().min() > 0, "the own parameter learned"
    model.eval()

    path = save_model(model, tmp_path / "toy", tokenizer)
    with safe_open(path / "model.safetensors", framework="pt") as f:
        names = set(f.keys())
    assert {"model.layers.1.self_attn.shift_map.weight", "model.layers.1.self_attn.offset",
            "model.layers.1.self_attn.q_proj.weight"} <= names
    config = json.loads((path / "config.json").read_text())
    assert config["posbench_scheme"] == "toy_shifted,scale=2.0" and "pe_config" not in config

    loaded, _, info = load_model(path)
    assert info["scheme"] == {"name": "toy_shifted", "params": {"scale": 2.0, "fresh_init": False}}
    assert info["layer_schemes"] == ["rope", "shifted"] * 2 and info["position_parameters"] == 2 * (64 * 2 + 2)
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))
        _, positions = loaded(ids, return_positions=True)
    assert positions[1].shape == (2, 24, 2) and not torch.equal(positions[1][..., 0], positions[0].float())

    engine = TorchEngine(loaded, tokenizer, info, "cpu", torch.float32)
    prompts = ["The grass is green. The sky is", "One two three"]
    together = engine.generate(prompts, max_new_tokens=6)
    alone = [engine.generate([p], max_new_tokens=6)[0] for p in prompts]
    assert [g.text for g in together] == [g.text for g in alone]      # cached decode == the batch's padded decode
    (ll, _), = engine.loglikelihood([("The grass is", " green")])
    context, continuation = engine.split_request("The grass is", " green")
    with torch.no_grad():
        logits = loaded(torch.tensor([context + continuation])).log_softmax(-1)[0]
    direct = sum(logits[len(context) - 1 + i, t] for i, t in enumerate(continuation))
    assert ll == pytest.approx(float(direct), abs=1e-5)


def test_missing_weights_of_the_new_kind_name_it(toy_offset, tmp_path):
    tokenizer = load_tokenizer(REFERENCE)
    rope = Transformer(small_config(len(tokenizer)), get_scheme("rope"))
    path = save_model(rope, tmp_path / "rope")
    with pytest.raises(ValueError, match=r"needs shift weights \(model.layers.\{i\}.self_attn.offset, shift_map\) "
                                         r"in layers 1, 3, which the checkpoint lacks"):
        inspect_model(path, scheme="toy_shifted")
    info = inspect_model(path, scheme="toy_shifted,fresh_init=true")
    assert info["fresh_position_layers"] == [1, 3]


def test_hybrid_subclass_comes_back_as_itself(tmp_path):
    class EveryThirdNope(HybridScheme):
        name = "every_third_nope"
        summary = "NoPE in layers 2, 5, 8, ... (a test scheme)"
        param_types = {}

        def __init__(self):
            Scheme.__init__(self)

        def layer_kinds(self, num_layers):
            return ["nope" if i % 3 == 2 else "rope" for i in range(num_layers)]

    try:
        model = Transformer(small_config(64, layers=6), get_scheme("every_third_nope"))
        path = save_model(model, tmp_path / "third")
        info = inspect_model(path)
        assert info["scheme_spec"] == "every_third_nope" and info["layer_schemes"] == model.layer_kinds
        # Sakana's code still reads the same layer kinds from pe_config
        pe = json.loads((path / "config.json").read_text())["pe_config"]
        assert pe["dynamic_pe_mode"] == "nope" and pe["dynmaic_pe_layer_ids"] == "2,5"
    finally:
        del SCHEMES["every_third_nope"]
