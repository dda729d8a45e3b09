"""posbench's model core as an lm-evaluation-harness model: `--model posbench`.

    python -m posbench.harness.integrations.lm_eval_cli --model posbench --model_args
    pretrained=DIR,scheme=repo,max_length=4096 \\
        --batch_size 8 --tasks posbench_arc_easy --include_path posbench/tasks/general

Importing this module registers the name "posbench" (lm-eval 0.4.13 has no plugin entry point for models, and it
builds the model before it imports task files: `posbench.harness.integrations.lm_eval_cli` imports this module and
then hands its
arguments to lm-eval's own CLI, and the start-up hook of `posbench.harness.integrations.lm_eval_hook` imports it in
`lm_eval` runs).
From Python: `import posbench.harness.integrations.lm_eval_model` before `lm_eval.simple_evaluate(model="posbench",
...)`, or pass a
`PosbenchLM` instance.

`max_length` is required: posbench never guesses the evaluation length from the checkpoint (lm-eval's HF model
silently truncates to `max_position_embeddings` or 2048 otherwise). Over-long inputs are cut on the left, as lm-eval
does. No BOS token is added unless `add_bos_token=true` (the RePo authors evaluated without BOS). Decoding is greedy.
"""
import importlib
import logging
import os

# posbench never downloads: any hub access by lm-eval or `datasets` fails fast. Set before they are imported.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from lm_eval.api.model import TemplateLM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

eval_logger = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_loader(path, scheme=None, dtype=torch.float32, device="cpu"):
    from posbench.harness.core.checkpoint import load_model  # the model core; imported only when a model is built
    return load_model(path, scheme=scheme, dtype=dtype, device=device)


def resolve_loader(loader):
    """A callable, or "module:function" (how the CLI and tests name a stand-in loader), or None for the default."""
    if loader is None:
        return default_loader
    if callable(loader):
        return loader
    module, _, name = str(loader).partition(":")
    if not name:
        raise ValueError(f"posbench: loader must be 'module:function', got {loader!r}")
    return getattr(importlib.import_module(module), name)


@torch.no_grad()
def greedy_generate(model, ids: list, max_new_tokens: int, stop_ids=(), device="cpu", done=None) -> list:
    """Greedy decoding by full forward passes (no KV cache): the one function an inference engine will replace.
    Returns the new token ids; stops after a token in `stop_ids` (kept) or once `done(new_ids)` is true."""
    out = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids + out], device=device))
        out.append(int(logits[0, -1].argmax()))
        if out[-1] in stop_ids or (done is not None and done(out)):
            break
    return out


@register_model("posbench")
class PosbenchLM(TemplateLM):
    def __init__(self, pretrained, scheme=None, max_length=None, batch_size=1, max_gen_toks=256, dtype="float32",
                 device="cpu", add_bos_token=False, tokenizer=None, loader=None, max_batch_size=None, **kwargs):
        super().__init__()
        if kwargs:
            raise ValueError(f"posbench: unknown model_args {sorted(kwargs)}; accepted: pretrained, scheme, "
                             "max_length, max_gen_toks, dtype, device, add_bos_token, tokenizer, loader "
                             "(batch size: lm-eval's --batch_size)")
        if max_length is None:
            raise ValueError("posbench: pass max_length=N in --model_args (the context length to evaluate at); "
                             "posbench does not guess it from the checkpoint")
        if str(batch_size).startswith("auto") or int(batch_size) < 1:
            raise ValueError(f"posbench: batch_size must be a positive integer, got {batch_size!r}")
        if dtype not in DTYPES:
            raise ValueError(f"posbench: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            # lm-eval's CLI passes --device cuda by default; on a CPU machine run on the CPU, and say so.
            eval_logger.warning("posbench: CUDA is not available; running on cpu instead of %s", device)
            device = "cpu"
        self.max_gen_toks, self.add_bos_token, self._device = int(max_gen_toks), bool(add_bos_token), str(device)
        self.model, self.tokenizer, self.info = resolve_loader(loader)(
            pretrained, scheme=scheme or None, dtype=DTYPES[dtype], device=self._device)
        if tokenizer is not None:
            from posbench.harness.core.checkpoint import load_tokenizer
            self.tokenizer = load_tokenizer(tokenizer)
        if self.tokenizer is None:
            raise ValueError(f"posbench: {pretrained} has no tokenizer files; pass tokenizer=PATH in --model_args")
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"posbench: the tokenizer of {pretrained} has no EOS token (needed to end generation "
                             "and as the empty-context prefix)")

    # ---- tokenization ----------------------------------------------------------------------------------------

    @property
    def eot_token_id(self):
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self):
        return self.tokenizer.bos_token_id if self.add_bos_token else self.eot_token_id

    def tok_encode(self, string, add_special_tokens=None, **kwargs):
        ids = self.tokenizer.encode(string, add_special_tokens=False)
        if self.add_bos_token and add_special_tokens is not False:
            ids = [self.tokenizer.bos_token_id] + ids
        return ids

    def tok_decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---- scoring -----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _score(self, batch):
        """[(token sequence, continuation length)] -> [(sum log-prob of the continuation, is greedy)] in one padded
        forward over each sequence minus its last token. Right padding is safe: a causal model never looks ahead."""
        width = max(len(seq) - 1 for seq, _ in batch)
        tensor = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (seq, _) in enumerate(batch):
            tensor[row, :len(seq) - 1] = torch.tensor(seq[:-1])
        logits = self.model(tensor.to(self.device)).float()
        out = []
        for row, (seq, n_cont) in enumerate(batch):
            end = len(seq) - 1          # the logits at positions end-n_cont .. end-1 predict the last n_cont tokens
            logprobs = F.log_softmax(logits[row, end - n_cont:end], dim=-1)
            target = torch.tensor(seq[-n_cont:], device=logprobs.device)
            out.append((float(logprobs.gather(1, target[:, None]).sum()),
                        bool((logprobs.argmax(-1) == target).all())))
        return out

    def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
        seqs = []
        for _, context_enc, continuation_enc in requests:
            # lm-eval's rule: keep the last max_length + 1 tokens; the model sees all but the final one.
            whole = (context_enc + continuation_enc)[-(self.max_length + 1):]
            seqs.append((whole, min(len(continuation_enc), len(whole) - 1)))
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))  # similar lengths share a batch
        results = [None] * len(seqs)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, res in zip(chunk, self._score([seqs[i] for i in chunk]), strict=True):
                results[i] = res
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        """Whole-document log-likelihood over disjoint windows of max_length tokens (lm-eval's HF rule)."""
        out = []
        for (text,) in (req.args for req in requests):
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(text, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1)]
            scores = self._loglikelihood_tokens([(None, ctx, cont) for ctx, cont in windows])
            out.append(sum(score for score, _ in scores))
        return out

    # ---- generation --------------------------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for context, gen_kwargs in (req.args for req in requests):
            kwargs = dict(gen_kwargs)
            if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0.0) not in (0, 0.0, None):
                raise ValueError("posbench: only greedy decoding is supported (do_sample=false, temperature=0)")
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            ids = self.tok_encode(context)[-max(self.max_length - max_new, 1):]
            done = (lambda new, until=until: any(s in self.tok_decode(new) for s in until)) if until else None
            text = self.tok_decode(greedy_generate(self.model, ids, max_new, {self.eot_token_id}, self.device, done))
            for stop in until:
                text = text.split(stop)[0]
            out.append(text)
        return out
