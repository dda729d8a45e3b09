"""posbench's model core as an lm-evaluation-harness model: `--model posbench`.

    python -m posbench.harness.integrations.lm_eval_cli --model posbench --model_args
    pretrained=DIR,scheme=repo,max_length=4096 \\
        --batch_size 8 --tasks posbench_arc_easy --include_path posbench/tasks/general

Importing this module registers the name "posbench" (lm-eval 0.4.13 has no plugin entry point for models, and it
builds the model before it imports task files: `posbench.harness.integrations.lm_eval_cli` imports this module and
then hands its arguments to lm-eval's own CLI). From Python: `import posbench.harness.integrations.lm_eval_model`
before `lm_eval.simple_evaluate(model="posbench", ...)`, or pass a `PosbenchLM` instance.

This class only adapts lm-eval's requests: tokenization, lm-eval's truncation rules, rolling windows, generation
arguments. Generation and log-likelihoods run in posbench's engine (posbench/harness/evaluation/engine.py: KV cache,
batching longest first, out-of-memory back-off), the same path as `eval.py run`.

`max_length` is required: posbench never guesses the evaluation length from the checkpoint (lm-eval's HF model
silently truncates to `max_position_embeddings` or 2048 otherwise). Over-long inputs are cut on the left, as lm-eval
does. No BOS token is added unless `add_bos_token=true` (the RePo authors evaluated without BOS). Decoding is greedy.
`batch_size` is a number or `auto` (the engine sizes batches from free memory and halves them on out-of-memory).
"""
import logging
import os

# posbench never downloads: any hub access by lm-eval or `datasets` fails fast. Set before they are imported.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from lm_eval.api.model import TemplateLM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

eval_logger = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@register_model("posbench")
class PosbenchLM(TemplateLM):
    def __init__(self, pretrained, scheme=None, max_length=None, batch_size=1, max_gen_toks=256, dtype="float32",
                 device="cpu", add_bos_token=False, tokenizer=None, max_batch_size=None, **kwargs):
        super().__init__()
        from posbench.harness.core.checkpoint import load_model, load_tokenizer  # the model core, when one is built
        from posbench.harness.evaluation.engine import TorchEngine

        if kwargs:
            raise ValueError(f"posbench: unknown model_args {sorted(kwargs)}; accepted: pretrained, scheme, "
                             "max_length, max_gen_toks, dtype, device, add_bos_token, tokenizer "
                             "(batch size: lm-eval's --batch_size)")
        if max_length is None:
            raise ValueError("posbench: pass max_length=N in --model_args (the context length to evaluate at); "
                             "posbench does not guess it from the checkpoint")
        if str(batch_size).startswith("auto"):
            batch_size = "auto"
        elif not str(batch_size).isdigit() or int(batch_size) < 1:
            raise ValueError(f"posbench: batch_size must be a positive integer or auto, got {batch_size!r}")
        if dtype not in DTYPES:
            raise ValueError(f"posbench: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.max_length = int(max_length)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            # lm-eval's CLI passes --device cuda by default; on a CPU machine run on the CPU, and say so.
            eval_logger.warning("posbench: CUDA is not available; running on cpu instead of %s", device)
            device = "cpu"
        self.max_gen_toks, self.add_bos_token, self._device = int(max_gen_toks), bool(add_bos_token), str(device)
        self.model, self.tokenizer, self.info = load_model(pretrained, scheme=scheme or None, dtype=DTYPES[dtype],
                                                           device=self._device)
        if tokenizer is not None:
            self.tokenizer = load_tokenizer(tokenizer)
        if self.tokenizer is None:
            raise ValueError(f"posbench: {pretrained} has no tokenizer files; pass tokenizer=PATH in --model_args")
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"posbench: the tokenizer of {pretrained} has no EOS token (needed to end generation "
                             "and as the empty-context prefix)")
        self.engine = TorchEngine(self.model, self.tokenizer, self.info, self._device, DTYPES[dtype],
                                  batch_size=batch_size)

    @property
    def batch_size(self):
        return self.engine.batch_size

    @batch_size.setter
    def batch_size(self, value):
        self.engine.batch_size = value

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

    def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
        pairs = []
        for _, context_enc, continuation_enc in requests:
            # lm-eval's rule: keep the last max_length + 1 tokens; the model sees all but the final one.
            whole = (context_enc + continuation_enc)[-(self.max_length + 1):]
            n_cont = min(len(continuation_enc), len(whole) - 1)
            pairs.append((whole[:-n_cont], whole[-n_cont:]))
        return self.engine.loglikelihood_tokens(pairs)

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
        batch = []
        for context, gen_kwargs in (req.args for req in requests):
            kwargs = dict(gen_kwargs)
            if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0.0) not in (0, 0.0, None):
                raise ValueError("posbench: only greedy decoding is supported (do_sample=false, temperature=0)")
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            batch.append((self.tok_encode(context)[-max(self.max_length - max_new, 1):], max_new, until))
        return [generation.text for generation in self.engine.generate_requests(batch)]
