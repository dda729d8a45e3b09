"""harness/core/checkpoint.py: sharded loading, save/load round trips, tokenizers, and one clear error per bad input."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_checkpoints import VOCAB, edit_config, edit_weights, hf_model, sakana_checkpoint, save_hf
from transformers import Olmo2ForCausalLM

from posbench.harness.core.checkpoint import CheckpointError, inspect_model, load_model, load_tokenizer, save_model
from posbench.position_schemes import SchemeError

TOL = 1e-4


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture
def llama(tmp_path):
    return save_hf(hf_model("llama"), tmp_path / "llama")


def test_sharded_checkpoint_loads_like_a_single_file(tmp_path, llama):
    """Split model.safetensors into two shards with an index, as save_pretrained does for big models."""
    tensors = load_file(llama / "model.safetensors")
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for name in ("config.json",):
        (sharded / name).write_text((llama / name).read_text())
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, sharded / file, metadata={"format": "pt"})
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    ids = torch.randint(0, VOCAB, (1, 8))
    with torch.no_grad():
        assert torch.equal(load_model(sharded)[0](ids), load_model(llama)[0](ids))


@pytest.mark.parametrize("spec, pe_mode", [
    ("rope,scaling=yarn,factor=4,original_max_position_embeddings=16", "none"),
    ("hybrid,pattern=RRRN", "nope"),
    ("nope", "nope"),
])
@torch.no_grad()
def test_save_model_round_trips_and_transformers_reads_it(tmp_path, spec, pe_mode):
    source = save_hf(hf_model("olmo2"), tmp_path / "source")
    model, _, _ = load_model(source, scheme=spec)
    saved = save_model(model, tmp_path / "saved")
    assert json.loads((saved / "config.json").read_text())["pe_config"]["dynamic_pe_mode"] == pe_mode
    again, _, info = load_model(saved)  # detected from what save_model wrote
    assert info["layer_schemes"] == model.layer_kinds and info["rope_parameters"] == model.rope_parameters
    ids = torch.randint(0, VOCAB, (2, 12))
    assert torch.equal(again(ids), model(ids))
    if spec.startswith("rope"):  # transformers runs the saved RoPE-scaled model itself
        assert max_diff(Olmo2ForCausalLM.from_pretrained(saved).eval()(ids).logits, model(ids)) <= TOL


@torch.no_grad()
def test_save_model_keeps_repo_weights_in_sakana_format(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=8, start_layer=5)
    model, _, _ = load_model(path)
    saved = save_model(model, tmp_path / "saved")
    assert set(load_file(saved / "model.safetensors")) == set(load_file(path / "model.safetensors"))
    pe = json.loads((saved / "config.json").read_text())["pe_config"]
    assert pe["dynmaic_pe_start_layer"] == pe["dynamic_pe_start_layer"] == 5
    ids = torch.randint(0, VOCAB, (1, 8))
    assert torch.equal(load_model(saved)[0](ids), model(ids))


def test_tied_embeddings(tmp_path):
    path = save_hf(hf_model("llama", tie_word_embeddings=True), tmp_path / "tied")
    model, _, info = load_model(path)
    assert model.lm_head is None
    assert info["num_parameters"] == sum(p.numel() for p in hf_model("llama", tie_word_embeddings=True).parameters())


def write_tokenizer_json(path: Path) -> Path:
    """A word-level tokenizer.json, like the bare files under shared/data/tokenizers, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "hello": 1, "world": 2, "positions": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path))
    return path


def test_tokenizers(tmp_path, llama):
    assert load_model(llama)[1] is None, "a checkpoint without tokenizer files has no tokenizer"
    tokenizer = load_tokenizer(write_tokenizer_json(tmp_path / "tokenizer.json"))  # a bare file
    assert tokenizer("hello positions world").input_ids == [1, 3, 2]
    model, _, _ = load_model(llama)
    saved = save_model(model, tmp_path / "with-tokenizer", tokenizer=tokenizer)
    assert load_model(saved)[1]("hello positions world").input_ids == [1, 3, 2]
    with pytest.raises(CheckpointError, match="no-such.json: no such file or directory"):
        load_tokenizer(tmp_path / "no-such.json")


def test_inspect_reads_no_tensor_data(llama):
    info = inspect_model(llama)
    assert info["architecture"] == "llama" and info["num_layers"] == 4 and info["stored_dtype"] == "float32"
    assert info["num_parameters"] == sum(p.numel() for p in hf_model("llama").parameters())


# --- bad input: one clear error naming the thing ---------------------------------------------------------------------

def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'nowhere'}: no such directory"):
        load_model(tmp_path / "nowhere")


def test_missing_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty/config.json: missing"):
        load_model(tmp_path / "empty")


def test_unsupported_model_type(llama):
    edit_config(llama, model_type="gpt2")
    with pytest.raises(CheckpointError, match=r"config.json: model_type 'gpt2' is not supported \(supported: olmo2, "
                                              r"llama, mistral, qwen2\)"):
        load_model(llama)


def test_unsupported_features_are_named(llama):
    edit_config(llama, hidden_act="gelu")
    with pytest.raises(CheckpointError, match="hidden_act 'gelu' is not supported"):
        load_model(llama)


def test_sliding_window_is_refused(tmp_path):
    path = save_hf(hf_model("mistral", sliding_window=4096), tmp_path / "mistral")
    with pytest.raises(CheckpointError, match="sliding_window=4096: sliding-window attention is not implemented"):
        load_model(path)


def test_mis_shaped_weight(llama):
    edit_weights(llama, add={"model.layers.2.self_attn.k_proj.weight": torch.zeros(32, 64)})
    with pytest.raises(CheckpointError, match=r"weight model.layers.2.self_attn.k_proj.weight in model.safetensors "
                                              r"has shape \[32, 64\], expected \[64, 64\]"):
        load_model(llama)


def test_missing_weight(llama):
    edit_weights(llama, drop=["model.layers.1.mlp.up_proj.weight"])
    with pytest.raises(CheckpointError, match=r"missing weight model.layers.1.mlp.up_proj.weight "
                                              r"\(expected shape \[128, 64\]\)"):
        load_model(llama)


def test_unexpected_weight_but_recomputable_ones_are_fine(llama):
    edit_weights(llama, add={"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8)})
    load_model(llama)
    edit_weights(llama, add={"model.layers.0.mlp.extra.weight": torch.ones(3)})
    with pytest.raises(CheckpointError, match="unexpected weight model.layers.0.mlp.extra.weight in model.safetensors"):
        load_model(llama)


def test_no_weights(tmp_path, llama):
    (llama / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no \*.safetensors weights"):
        load_model(llama)


def test_detection_errors_name_the_checkpoint(tmp_path):
    path, _ = sakana_checkpoint(tmp_path / "sakana", num_layers=8, start_layer=5, repo_layers=range(6, 8))
    with pytest.raises(CheckpointError, match=r"sakana: pe_config puts RePo in layers 5-7 but .* in layers 6-7"):
        load_model(path)


def test_bad_scheme_is_a_scheme_error(llama):
    with pytest.raises(SchemeError, match="unknown scheme 'alibi'"):
        load_model(llama, scheme="alibi")
    with pytest.raises(SchemeError, match="nope_layers 9 outside"):
        load_model(llama, scheme=("hybrid", {"nope_layers": [9]}))
