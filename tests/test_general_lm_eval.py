"""The lm-eval adapter (`--model posbench`) on a tiny random checkpoint of the model core: log-likelihoods and greedy
generation (run by the engine, with its KV cache and batching) against hand computations with plain full forwards,
lm-eval's truncation rules, the shipped-data tasks in process and through the CLI wrapper, and the user-data tasks
from small local files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")

from posbench.harness.evaluation.data import default_data_root
from posbench.harness.integrations.lm_eval_model import PosbenchLM  # noqa: E402
from tests.data_testing import needs_data  # noqa: E402

pytestmark = needs_data("tokenizer", "arc", "boolq", "mmlu")

REPO = Path(__file__).resolve().parents[1]
LM_EVAL_TASKS = REPO / "posbench" / "tasks" / "general" / "lm_eval"


class Req:
    """The only part of lm-eval's Instance the adapter reads."""

    def __init__(self, *args):
        self.args = args


@pytest.fixture(scope="module")
def core_model(tmp_path_factory):
    """A tiny random checkpoint of posbench's own model core with the RePo scheme (RePo from layer 5, its default)."""
    from tiny_models import build_tiny_model

    from tests.test_general import TOKENIZER_FILE
    return build_tiny_model(tmp_path_factory.mktemp("core"), TOKENIZER_FILE, scheme="repo", hidden=32, layers=6,
                            heads=2, max_positions=2048)


@pytest.fixture(scope="module")
def lm(core_model):
    return PosbenchLM(pretrained=str(core_model), scheme="repo", max_length=64, batch_size=3)


def logprob_sum(lm, ids, n_cont):
    """Hand computation: log p of the last n_cont tokens of `ids`, one unbatched forward over ids[:-1]."""
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(torch.tensor([ids[:-1]]))[0], -1)
    return sum(float(logprobs[i - 1, ids[i]]) for i in range(len(ids) - n_cont, len(ids)))


def test_loglikelihood_matches_a_hand_computation_in_any_batch(lm):
    pairs = [("Question: Is the sky blue?\nAnswer:", " yes"), ("Question: Is the sky blue?\nAnswer:", " no"),
             ("A much longer context " * 5, " that goes on"), ("Short", " x")]
    got = lm.loglikelihood([Req(*p) for p in pairs], disable_tqdm=True)
    for (context, cont), (ll, greedy) in zip(pairs, got, strict=True):
        context, cont = context.rstrip(), context[len(context.rstrip()):] + cont   # lm-eval moves trailing spaces
        ctx_ids = lm.tok_encode(context)
        whole = lm.tok_encode(context + cont)
        assert ll == pytest.approx(logprob_sum(lm, whole, len(whole) - len(ctx_ids)), abs=1e-4)
        assert isinstance(greedy, bool)
    lm.batch_size = 1
    try:
        assert [x[0] for x in lm.loglikelihood([Req(*p) for p in pairs], disable_tqdm=True)] == \
            pytest.approx([x[0] for x in got], abs=1e-4)          # right padding changes nothing
    finally:
        lm.batch_size = 3


def test_over_long_inputs_are_cut_on_the_left(lm):
    context = " ".join(f"w{i}" for i in range(200))               # far over max_length = 64
    (ll, _), = lm.loglikelihood([Req(context, " end")], disable_tqdm=True)
    whole = lm.tok_encode(context + " end")[-(64 + 1):]            # lm-eval keeps the last max_length + 1 tokens
    n_cont = len(lm.tok_encode(context + " end")) - len(lm.tok_encode(context))
    assert ll == pytest.approx(logprob_sum(lm, whole, n_cont), abs=1e-4)


def test_rolling_loglikelihood_uses_disjoint_windows(lm):
    text = " ".join(f"t{i}" for i in range(80))
    ids = lm.tok_encode(text)
    n = len(ids)
    assert 128 < n <= 192                                          # three windows
    # window 1 predicts ids[0:64] from [EOS] + ids[0:63]; window 2 ids[64:128] from ids[63:127]; the last one the
    # rest, from the 64 tokens before its last (lm-eval's get_rolling_token_windows)
    expected = (logprob_sum(lm, [lm.eot_token_id] + ids[:64], 64) + logprob_sum(lm, ids[63:128], 64)
                + logprob_sum(lm, ids[n - 65:], n - 128))
    (got,) = lm.loglikelihood_rolling([Req(text)], disable_tqdm=True)
    assert got == pytest.approx(expected, rel=1e-5)         # float noise from batching; a token is ~10


def greedy_reference(model, ids, max_new_tokens, eos):
    """Greedy decoding the plain way: a full forward over everything so far for each new token, no cache."""
    out = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids + out]))[0, -1].argmax())
            if token == eos:
                break
            out.append(token)
    return out


def test_generate_until_is_greedy_and_stops(lm):
    contexts = ["The capital of France is", "A", "One two three four five six seven eight nine ten eleven"]
    texts = [lm.tok_decode(greedy_reference(lm.model, lm.tok_encode(c), 6, lm.eot_token_id)) for c in contexts]
    got = lm.generate_until([Req(c, {"until": [], "max_gen_toks": 6}) for c in contexts], disable_tqdm=True)
    assert got == texts and len(set(texts)) > 1       # batched, cached decoding == the plain loop, in request order
    context, text = contexts[0], texts[0]
    stop = text[len(text) // 2:][:3]
    (cut,) = lm.generate_until([Req(context, {"until": [stop], "max_gen_toks": 6})], disable_tqdm=True)
    assert cut == text.split(stop)[0]
    with pytest.raises(ValueError, match="only greedy"):
        lm.generate_until([Req(context, {"do_sample": True})], disable_tqdm=True)


def test_lm_eval_and_the_engine_agree(core_model):
    """The same checkpoint through lm-eval's adapter and through posbench's engine on its own: the same numbers."""
    from posbench.harness.evaluation.engine import TorchEngine
    lm = PosbenchLM(pretrained=str(core_model), scheme="repo", max_length=128, batch_size=2)
    assert lm.info["scheme"]["name"] == "repo"
    pairs = [("Question: Is the sky blue?\nAnswer:", " yes"), ("Question: Is the sky blue?\nAnswer:", " no"),
             ("The river flows", " to the sea")]
    engine = TorchEngine(lm.model, lm.tokenizer, lm.info, "cpu", torch.float32, batch_size=2)
    ours = lm.loglikelihood([Req(*p) for p in pairs], disable_tqdm=True)
    assert [x[0] for x in ours] == pytest.approx([x[0] for x in engine.loglikelihood(pairs)], abs=1e-4)
    (text,) = lm.generate_until([Req("The river flows", {"until": ["\n"], "max_gen_toks": 5})], disable_tqdm=True)
    assert text == engine.generate(["The river flows"], 5, ["\n"])[0].text


def test_constructor_errors(core_model):
    with pytest.raises(ValueError, match="pass max_length=N"):
        PosbenchLM(pretrained=str(core_model))
    with pytest.raises(ValueError, match="unknown model_args"):
        PosbenchLM(pretrained=str(core_model), max_length=64, temperture=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer or auto"):
        PosbenchLM(pretrained=str(core_model), max_length=64, batch_size=0)
    assert PosbenchLM(pretrained=str(core_model), max_length=64, batch_size="auto").engine.batch_size == "auto"


def evaluate(lm, tasks, limit=4, **kw):
    import lm_eval
    from lm_eval.tasks import TaskManager
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=limit, log_samples=True,
                                   task_manager=TaskManager(include_path=str(LM_EVAL_TASKS)), **kw)


@pytest.mark.slow
def test_shipped_tasks_in_process_use_the_same_prompts_as_posbench(lm):
    from posbench.harness.core.checkpoint import load_tokenizer
    from posbench.tasks import TaskRegistry, build_samples
    out = evaluate(lm, ["posbench_arc_easy", "posbench_boolq", "posbench_mmlu"], limit=3)
    assert out["results"]["posbench_arc_easy"]["acc,none"] in (0, 1 / 3, 2 / 3, 1)
    shared = default_data_root()
    tokenizer = load_tokenizer(shared / "tokenizers" / "olmo2_dolma2_tokenizer.json")
    ours = build_samples(TaskRegistry().get("general_arc_easy"), tokenizer, data_paths={"data": str(shared)},
                         num_samples=3)
    theirs = out["samples"]["posbench_arc_easy"]
    for mine, logged in zip(ours, theirs, strict=True):
        contexts = {context for context, _ in logged["arguments"]}
        assert contexts == {mine.prompt} and [c for _, c in logged["arguments"]] == mine.choices
        assert logged["target"] == mine.gold_index
    mmlu = out["samples"]["posbench_mmlu"][0]["arguments"][0][0]
    assert mmlu.startswith("The following are multiple choice questions (with answers) about abstract algebra.\n\n")


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.slow
def test_user_data_tasks_from_local_files(lm, tmp_path, monkeypatch):
    endings = ["goes to the store.", "eats a sandwich [title] quickly.", "flies away.", "sleeps."]
    hellaswag = write_jsonl(tmp_path / "hellaswag.jsonl", [
        {"ind": i, "activity_label": "Eating", "ctx_a": "A man sits down.", "ctx_b": "he", "ctx": "", "endings":
         endings, "source_id": "x", "split": "val", "split_type": "indomain", "label": str(i % 4)} for i in range(2)])
    trivia = write_jsonl(tmp_path / "trivia.jsonl", [
        {"question": "Which planet is red", "question_id": "q1", "question_source": "",
         "entity_pages": {}, "search_results": {},
         "answer": {"aliases": ["Mars"], "normalized_aliases": ["mars"], "value": "Mars", "normalized_value": "mars",
                    "type": "WikipediaEntity", "matched_wiki_entity_name": "", "normalized_matched_wiki_entity_name":
                    ""}}])
    pro = tmp_path / "mmlu_pro"
    pro.mkdir()
    doc = {"question": "What is a cell?", "options": ["a unit", "a rock", "a star"], "answer": "A", "answer_index": 0,
           "cot_content": "A: Let's think step by step. Cells are units. The answer is (A).", "category": "biology",
           "src": "x"}
    write_jsonl(pro / "test.jsonl", [doc | {"question_id": 1}])
    write_jsonl(pro / "validation.jsonl", [doc | {"question_id": 10 + i} for i in range(5)])
    monkeypatch.setenv("POSBENCH_DATA_HELLASWAG", str(hellaswag))
    monkeypatch.setenv("POSBENCH_DATA_TRIVIAQA", str(trivia))
    monkeypatch.setenv("POSBENCH_DATA_MMLU_PRO", str(pro))
    out = evaluate(lm, ["posbench_hellaswag", "posbench_triviaqa", "posbench_mmlu_pro_biology"], limit=2,
                   gen_kwargs="max_gen_toks=4")
    hs = out["samples"]["posbench_hellaswag"][0]["arguments"]
    assert hs[0][0] == "Eating: A man sits down. He" and hs[1][1] == " eats a sandwich. quickly."   # lm-eval preprocess
    assert out["samples"]["posbench_triviaqa"][0]["arguments"][0][0] == "Question: Which planet is red?\nAnswer:"
    pro_prompt = out["samples"]["posbench_mmlu_pro_biology"][0]["arguments"][0][0]
    assert pro_prompt.count("Question:\n") == 6 and pro_prompt.endswith("Answer: Let's think step by step.")
    assert set(out["results"]) >= {"posbench_hellaswag", "posbench_triviaqa", "posbench_mmlu_pro_biology"}


def test_user_data_missing_is_a_clear_error(monkeypatch, tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("posbench_lm_eval_utils", LM_EVAL_TASKS / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    monkeypatch.delenv("POSBENCH_DATA_HELLASWAG", raising=False)
    with pytest.raises(FileNotFoundError, match="POSBENCH_DATA_HELLASWAG=PATH"):
        utils.hellaswag(data_root=str(tmp_path))
    with pytest.raises(ValueError, match="needs several splits"):
        utils.mmlu_pro(mmlu_pro=str(write_jsonl(tmp_path / "one.jsonl", [{}])))


@pytest.mark.slow
def test_lm_eval_cli_wrapper_end_to_end(core_model, tmp_path):
    """What a user types, on a tiny RePo checkpoint of the model core (no stand-in loader)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "posbench.harness.integrations.lm_eval_cli", "--model", "posbench", "--model_args",
           f"pretrained={core_model},scheme=repo,max_length=512",
           "--tasks", "posbench_arc_easy,posbench_arc_challenge,posbench_boolq,posbench_mmlu",
           "--include_path", "posbench/tasks/general", "--limit", "4", "--batch_size", "4", "--device", "cpu",
           "--output_path", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    for task in ("posbench_arc_easy", "posbench_arc_challenge", "posbench_boolq", "posbench_mmlu"):
        assert 0.0 <= results["results"][task]["acc,none"] <= 1.0
        assert results["n-samples"][task]["effective"] == 4


@pytest.mark.slow
def test_include_path_keeps_lm_evals_own_tasks():
    """posbench's schema YAMLs in posbench/tasks/general are named general_*, so `--include_path
    posbench/tasks/general` adds the
    posbench_* lm-eval tasks without shadowing lm-eval's arc_easy, boolq or mmlu."""
    from lm_eval.tasks import TaskManager
    index = TaskManager(include_path=str(REPO / "posbench" / "tasks" / "general")).task_index
    for name in ("arc_easy", "arc_challenge", "boolq", "mmlu"):
        assert "site-packages" in str(index[name].yaml_path) or "lm_eval/tasks" in str(index[name].yaml_path)
    assert Path(index["posbench_mmlu"].yaml_path).parent == LM_EVAL_TASKS
