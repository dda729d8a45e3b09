"""ARC, BoolQ and MMLU as posbench multiple-choice tasks from the shipped Arrow stream files: lm-eval's 0-shot prompts,
gold indices, acc/acc_norm, bad input, and an end-to-end run on a tiny stand-in model (no lm-eval involved).

Also home of a tiny Hugging Face stand-in (`make_tiny_model`, `hf_loader`) for the end-to-end run."""
from pathlib import Path

import pytest
import torch

from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import MissingData, TaskError, TaskRegistry, aggregate, build_samples, score_sample
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer", "arc", "boolq", "mmlu")

SHARED = default_data_root()
TOKENIZER_FILE = SHARED / "tokenizers" / "olmo2_dolma2_tokenizer.json"


# ---- a tiny stand-in for posbench's model core -----------------------------------------------------------------------

class Logits(torch.nn.Module):
    """`model(ids) -> [B, N, V] logits`, the model core's interface, over a Hugging Face model."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf

    def forward(self, ids):
        return self.hf(ids).logits


def hf_loader(path, scheme=None, dtype=torch.float32, device="cpu"):
    """Stand-in for posbench.harness.core.checkpoint.load_model: (model, tokenizer, info)."""
    from transformers import AutoTokenizer, LlamaForCausalLM
    hf = LlamaForCausalLM.from_pretrained(path, dtype=dtype).eval().to(device)
    return Logits(hf), AutoTokenizer.from_pretrained(path), {"scheme": scheme}


def make_tiny_model(folder: Path) -> Path:
    """A 2-layer Llama with the OLMo-2 tokenizer, saved like a checkpoint folder."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100352, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024)
    LlamaForCausalLM(config).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER_FILE), eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


# ---- posbench's multiple-choice tasks --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry():
    return TaskRegistry()


@pytest.fixture(scope="module")
def tokenizer():
    from posbench.harness.core.checkpoint import load_tokenizer
    return load_tokenizer(TOKENIZER_FILE)


def build(registry, tokenizer, name, **kw):
    return build_samples(registry.get(name), tokenizer, data_paths={"data": str(SHARED)}, **kw)


def test_arc_prompts_choices_and_gold(registry, tokenizer):
    easy = build(registry, tokenizer, "general_arc_easy")
    assert len(easy) == 570
    assert easy[0].prompt == "Question: Which technology was developed most recently?\nAnswer:"
    assert easy[0].choices == [" cellular telephone", " television", " refrigerator", " airplane"]
    assert easy[0].gold_index == 0
    challenge = build(registry, tokenizer, "general_arc_challenge")
    assert len(challenge) == 299 and challenge[0].gold_index == 3          # answerKey 'D'
    assert all(0 <= s.gold_index < len(s.choices) for s in easy + challenge)


def test_boolq_and_mmlu_prompts(registry, tokenizer):
    from posbench.tasks.registry import LOADERS
    boolq = LOADERS["boolq"](None, path=str(SHARED / "general/boolq/none/validation"))
    spec = registry.get("general_boolq")
    first = boolq[0]                                                       # the file's first row
    assert spec.template.format(**first.fields).endswith(
        "\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    assert first.choices == [" no", " yes"] and first.gold_index == 0      # answer False
    mmlu = LOADERS["mmlu"](None, root=str(SHARED / "general/hails/mmlu_no_train"))
    assert len(mmlu) == 14042 and len({d.metadata["subject"] for d in mmlu}) == 57
    q = mmlu[0]                                                            # abstract_algebra comes first
    assert registry.get("general_mmlu").template.format(**q.fields) == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:")
    assert q.choices == [" A", " B", " C", " D"] and q.gold_index == 1
    assert len(build(registry, tokenizer, "general_boolq", num_samples=3)) == 3


def test_shuffled_subsets_are_seeded_and_mixed(registry, tokenizer):
    a = build(registry, tokenizer, "general_mmlu", num_samples=50)
    assert [s.prompt for s in a] == [s.prompt for s in build(registry, tokenizer, "general_mmlu", num_samples=50)]
    assert len({s.metadata["subject"] for s in a}) > 20                   # not just the first subject


def test_acc_and_acc_norm(registry, tokenizer):
    spec = registry.get("general_arc_easy")
    s = build(registry, tokenizer, "general_arc_easy", indices=[0])[0]   # gold 0: ' cellular telephone' (18 chars)
    # summed log-likelihoods: choice 1 (' television', 10 chars) wins acc; per character -18/18 = -1.0 beats -12/10
    lls = [-18.0, -12.0, -30.0, -40.0]
    assert score_sample(spec, s, lls) == {"acc": 0.0, "acc_norm": 1.0}
    assert aggregate(spec, [{"acc": 0.0, "acc_norm": 1.0}, {"acc": 1.0, "acc_norm": 1.0}]) == \
        {"acc": 50.0, "acc_norm": 100.0}


def test_missing_and_bad_arrow_files(registry, tokenizer, tmp_path):
    with pytest.raises(MissingData, match="no Arrow shards"):
        build_samples(registry.get("general_arc_easy"), tokenizer, data_paths={"data": str(tmp_path)})
    folder = tmp_path / "general" / "ai2_arc" / "ARC-Easy" / "validation"
    folder.mkdir(parents=True)
    (folder / "data-00000-of-00001.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(TaskError, match="not an Arrow IPC stream"):
        build_samples(registry.get("general_arc_easy"), tokenizer, data_paths={"data": str(tmp_path)})


def choice_loglikelihoods(model, tokenizer, sample):
    """Summed log-probabilities of each continuation after the prompt (lm-eval's loglikelihood, batch of one)."""
    out = []
    n_context = len(tokenizer.encode(sample.prompt, add_special_tokens=False))
    for choice in sample.choices:
        whole = tokenizer.encode(sample.prompt + choice, add_special_tokens=False)
        with torch.no_grad():
            logits = model(torch.tensor([whole[:-1]]))[0, n_context - 1:]   # the positions that predict the choice
        logprobs = torch.log_softmax(logits, -1)
        out.append(sum(float(logprobs[i, t]) for i, t in enumerate(whole[n_context:])))
    return out


def test_end_to_end_on_a_tiny_model_without_lm_eval(registry, tokenizer, tiny_model):
    model, tok, _ = hf_loader(tiny_model)
    for name in ("general_arc_easy", "general_arc_challenge", "general_boolq", "general_mmlu"):
        spec = registry.get(name)
        samples = build(registry, tokenizer, name, num_samples=4)
        scores = [score_sample(spec, s, choice_loglikelihoods(model, tok, s)) for s in samples]
        result = aggregate(spec, scores)
        assert set(result) == set(spec.metrics) and all(0 <= v <= 100 for v in result.values()), name
