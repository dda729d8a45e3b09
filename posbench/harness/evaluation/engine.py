"""The inference engine: batched greedy generation with a KV cache, and log-likelihood scoring, over the model core.

This is the backend seam and posbench's one inference path: sweeps, training's evaluation and the lm-eval adapter
(posbench/harness/integrations/lm_eval_model.py) all run through it. A backend offers `generate_samples(samples)` and
`score_choices(samples)`, the lm-eval-style `generate` / `loglikelihood` they are built on (text in), the same on
token ids (`generate_requests`, `loglikelihood_tokens`: the caller tokenizes), `tokenizer`, `max_length`, and what it
runs (`scheme_name`, `scheme_params`, `layer_schemes`, `dtype_name`). `TorchEngine` is the only backend here; a vLLM
backend would implement the same methods where vLLM can be installed.

Padding: generation pads on the LEFT so every sequence's next token sits in the same column; integer positions are
counted from each sequence's first real token (cumsum of the mask), padded keys are masked, and RePo's learned
positions come from each token's own hidden state, so padding changes no real token's position or output.
Scoring pads on the RIGHT (no cache), which leaves every real token where it would be alone.
"""
import dataclasses
import sys
import time

import torch

from posbench.harness.errors import SweepError


@dataclasses.dataclass
class Generation:
    text: str
    new_tokens: int
    prefill_s: float     # the batch's prefill time (shared by the batch's samples)
    decode_s: float      # the batch's decode time
    batch_size: int
    finish: str          # "eos" | "stop" | "length"


class NonFiniteLogits(ValueError):
    """The model computed NaN or inf logits: its scores would be meaningless."""


def resolve_device(device: str, dtype: str):
    """("cpu"|"cuda", torch dtype): auto picks CUDA when present; auto dtype is bf16 on GPU, fp32 on CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SweepError("--device cuda was asked for, but torch sees no CUDA device")
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    return device, getattr(torch, dtype)


def truncate_at_stop(text: str, stop) -> tuple:
    """(text cut at the earliest stop string, whether one was found)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class TorchEngine:
    """posbench's own backend: the model core in plain PyTorch, batched, on CPU or CUDA."""

    def __init__(self, model, tokenizer, info: dict, device: str, dtype, batch_size="auto", path=None,
                 decoding="continuous"):
        self.model = model
        self.decoding = decoding   # "continuous" (static cache, graphs on GPU) or "eager" (the reference)
        self._decoder = None       # ((slots, max_len, max_new), SlotDecoder): kept while the buffer sizes repeat
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.path = path
        self.info = info
        eos = tokenizer.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (min(self.eos_ids)
                                                                                         if self.eos_ids else 0)

    # ---- construction ------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path, scheme=(None, {}), device="cpu", dtype=torch.float32, batch_size="auto", reuse=None):
        """Load a checkpoint under `scheme` = (name, params); name None means the checkpoint's own scheme, with
        params (if any) overriding its parameters. `reuse`: an engine over the same folder, dtype and device whose
        weights are kept and only re-schemed when the layer kinds stay the same (e.g. another YaRN factor)."""
        from posbench.harness.core.checkpoint import load_model, resolve_scheme

        wanted = resolve_scheme(path, scheme)   # a forced scheme of the checkpoint's kind keeps its parameters
        if reuse is not None and (reuse.path, reuse.dtype, reuse.device) == (str(path), dtype, device):
            if wanted is None and reuse.requested_scheme is None:
                return reuse
            if wanted is not None and wanted.layer_kinds(reuse.model.config.num_layers) == reuse.layer_schemes:
                reuse.model.set_scheme(wanted)
                reuse._decoder = None   # its captured graph holds the old scheme's frequencies
                reuse.requested_scheme = wanted.spec()
                return reuse
        model, tokenizer, info = load_model(path, scheme=wanted, dtype=dtype, device=device)
        if tokenizer is None:
            raise SweepError(f"{path}: the model folder has no tokenizer files (tokenizer.json, tokenizer_config.json)")
        engine = cls(model, tokenizer, info, device, dtype, batch_size, path=str(path))
        engine.requested_scheme = wanted.spec() if wanted else None
        return engine

    @property
    def max_length(self) -> int:
        return int(self.model.config.max_position_embeddings)

    @property
    def scheme_name(self) -> str:
        return self.model.scheme.name

    @property
    def scheme_params(self) -> dict:
        return self.model.scheme.describe()["params"]

    @property
    def layer_schemes(self) -> list:
        return list(self.model.layer_kinds)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    # ---- batching ----------------------------------------------------------------------------------------------

    def _batch_limit(self, total_len: int) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        if self.device == "cpu":
            return max(1, min(16, 16384 // max(total_len, 1)))
        free, _ = torch.cuda.mem_get_info()
        return max(1, min(64, int(0.6 * free / self.bytes_per_sequence(total_len))))

    def bytes_per_sequence(self, total_len: int, activations: bool = True) -> int:
        """Rough peak memory of one sequence: its KV cache plus one layer's prefill activations (attention runs
        fused, so nothing quadratic). Out-of-memory still halves the batch if this is optimistic."""
        c = self.model.config
        elem = torch.finfo(self.dtype).bits // 8
        kv = 2 * c.num_layers * c.num_kv_heads * c.head_dim * total_len * elem
        if not activations:
            return kv
        activations = total_len * (4 * c.hidden_size + 3 * c.intermediate_size
                                   + 2 * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim) * elem
        return kv + activations

    def _run_batched(self, items, total_len, fn):
        """Apply fn to batches of items, halving the batch on out-of-memory and retrying instead of crashing."""
        limit = self._batch_limit(total_len)
        i = 0
        while i < len(items):
            batch = items[i:i + limit]
            try:
                out = fn(batch)
            except torch.cuda.OutOfMemoryError:
                if limit == 1:
                    raise
                limit = max(1, limit // 2)
                torch.cuda.empty_cache()
                print(f"out of memory: retrying with batch size {limit}", file=sys.stderr)
                continue
            yield from zip(batch, out)
            i += len(batch)

    # ---- generation --------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list:
        return self.tokenizer(text, add_special_tokens=True)["input_ids"]

    def generate_samples(self, samples):
        """Yield (sample, Generation) for task samples (greedy, each with its own max_new_tokens and stops), in the
        order they finish: continuous batching over a static cache (posbench/harness/evaluation/decode.py), decode
        steps replayed as CUDA graphs on GPU. decoding="eager" runs the reference path instead (padded batches)."""
        if not samples:
            return
        if self.decoding == "eager":
            yield from self._generate_eager(samples)
            return
        from posbench.harness.evaluation.decode import Request

        yield from self._generate_continuous([Request(s, self.encode(s.prompt), s.max_new_tokens, tuple(s.stop))
                                              for s in samples])

    def _generate_eager(self, samples):
        groups = {}
        for s in samples:   # one batch shares max_new_tokens and stop strings
            groups.setdefault((s.max_new_tokens, tuple(s.stop)), []).append(s)
        for (max_new, stop), group in groups.items():
            group = sorted(group, key=lambda s: -s.token_count)
            total = max(s.token_count for s in group) + max_new + 2
            def run(batch, max_new=max_new, stop=stop):
                return self.generate([s.prompt for s in batch], max_new, list(stop))
            yield from self._run_batched(group, total, run)

    def generate_requests(self, requests) -> list:
        """[Generation] for [(token ids, max_new_tokens, stop strings)] (the lm-eval adapter's entry), in the given
        order, through the same path as task samples: continuous batching over the static cache, or with
        decoding="eager" padded batches sharing max_new_tokens and stops, halving the batch on out-of-memory."""
        results = [None] * len(requests)
        if not requests:
            return results
        if self.decoding != "eager":
            from posbench.harness.evaluation.decode import Request

            for i, generation in self._generate_continuous(
                    [Request(i, list(ids), max_new, tuple(stop)) for i, (ids, max_new, stop) in enumerate(requests)]):
                results[i] = generation
            return results
        groups = {}
        for i, (_, max_new, stop) in enumerate(requests):
            groups.setdefault((max_new, tuple(stop)), []).append(i)
        for (max_new, stop), group in groups.items():
            group.sort(key=lambda i: -len(requests[i][0]))
            total = len(requests[group[0]][0]) + max_new + 2
            def run(batch, max_new=max_new, stop=stop):
                return self.generate_tokens([requests[i][0] for i in batch], max_new, list(stop))
            for i, generation in self._run_batched(group, total, run):
                results[i] = generation
        return results

    def _slot_count(self, requests: int, max_len: int) -> int:
        """Slots of the static cache: what free memory holds (or batch_size), as a power of two (each size is one
        captured graph) no larger than the requests need."""
        if self.batch_size != "auto":
            limit = int(self.batch_size)
        elif self.device == "cpu":
            limit = max(1, min(16, 16384 // max_len))
        else:
            free, _ = torch.cuda.mem_get_info()
            kv = self.bytes_per_sequence(max_len, activations=False)
            # room for one prompt's prefill activations (prompts are prefilled alone), the rest for cache slots
            room = 0.8 * free - (self.bytes_per_sequence(max_len) - kv)
            limit = max(1, min(64, int(room / kv)))
        slots = 1
        while slots * 2 <= limit and slots < requests:
            slots *= 2
        return slots

    def _generate_continuous(self, requests):
        from posbench.harness.evaluation.decode import SlotDecoder, continuous_generate

        # Buffer sizes rounded up, so that cells of one length share one decoder and its captured graph.
        max_len = -(-(max(len(r.ids) + r.max_new_tokens for r in requests) + 1) // 512) * 512
        max_new = -(-max(max(r.max_new_tokens for r in requests), 1) // 64) * 64
        slots = self._slot_count(len(requests), max_len)
        pending = {id(r): r for r in requests}
        while pending:
            try:
                key = (slots, max_len, max_new)
                if self._decoder is None or self._decoder[0] != key:
                    self._decoder = None   # free the old cache and graph before allocating the new ones
                    graph = self.device == "cuda" and not self.model.length_dependent
                    with torch.inference_mode():
                        self._decoder = (key, SlotDecoder(self.model, slots, max_len, self.eos_ids, max_new, graph))
                with torch.inference_mode():
                    for done in continuous_generate(self._decoder[1], list(pending.values()), self.tokenizer.decode):
                        del pending[id(done.request)]
                        text, stopped = truncate_at_stop(self.tokenizer.decode(done.tokens, skip_special_tokens=True),
                                                         done.request.stop)
                        finish = "stop" if stopped and done.finish == "length" else done.finish
                        yield done.request.key, Generation(
                            text=text, new_tokens=len(done.tokens), prefill_s=round(done.prefill_s, 4),
                            decode_s=round(done.decode_s, 4), batch_size=done.batch_size, finish=finish)
            except torch.cuda.OutOfMemoryError:
                if slots == 1:
                    raise
                slots //= 2
                self._decoder = None
                torch.cuda.empty_cache()
                print(f"out of memory: retrying with {slots} decoding slots", file=sys.stderr)

    def generate(self, prompts, max_new_tokens: int, stop=()) -> list:
        """Greedy continuations of `prompts` (one batch), cut at EOS, the first stop string, or max_new_tokens."""
        return self.generate_tokens([self.encode(p) for p in prompts], max_new_tokens, stop)

    @torch.inference_mode()
    def generate_tokens(self, ids, max_new_tokens: int, stop=()) -> list:
        """generate() on prompts already tokenized: [[token id]] -> [Generation] (one batch)."""
        B, T = len(ids), max(len(x) for x in ids)
        total = T + max_new_tokens
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, total), dtype=torch.bool)
        for b, x in enumerate(ids):
            input_ids[b, T - len(x):] = torch.tensor(x)
            mask[b, T - len(x):] = True
        mask[:, T:] = True
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask[:, :T].long().cumsum(-1) - 1).clamp(min=0)
        next_pos = positions[:, -1] + 1

        sync = torch.cuda.synchronize if self.device == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        cache = self.model.setup_cache(B, total)
        if all(len(x) == T for x in ids):
            logits = self.model(input_ids, cache=cache, last_only=True)
        else:
            logits = self._prefill_rows(ids, cache, T)
        self._check_finite(logits[:, -1], T)
        token = logits[:, -1].argmax(-1)
        sync()
        t1 = time.perf_counter()

        out = [[] for _ in range(B)]
        finish = [None] * B
        for step in range(max_new_tokens):
            tok = token.tolist()
            for b in range(B):
                if finish[b] is None:
                    if tok[b] in self.eos_ids:
                        finish[b] = "eos"
                    else:
                        out[b].append(tok[b])
                        if stop and truncate_at_stop(self.tokenizer.decode(out[b][-64:]), stop)[1]:
                            finish[b] = "stop"
            if all(f is not None for f in finish) or step == max_new_tokens - 1:
                break
            logits = self.model(token[:, None], position_ids=(next_pos + step)[:, None], cache=cache,
                                attention_mask=mask[:, :T + step + 1], last_only=True)
            token = logits[:, -1].argmax(-1)
        sync()
        t2 = time.perf_counter()

        results = []
        for b in range(B):
            text = self.tokenizer.decode(out[b], skip_special_tokens=True)
            text, stopped = truncate_at_stop(text, stop)
            results.append(Generation(text=text, new_tokens=len(out[b]), prefill_s=round(t1 - t0, 4),
                                      decode_s=round(t2 - t1, 4), batch_size=B,
                                      finish=finish[b] or ("stop" if stopped else "length")))
        return results

    def _prefill_rows(self, ids, cache, T):
        """Prefill prompts of different lengths one row at a time, each unpadded, into the left-padded batch cache.

        A padded batch needs an explicit attention mask, which shuts out the fast causal kernels (on an H200,
        16K-token attention ran 6.7x slower masked); unpadded rows take them. Padding slots stay zero and are
        masked during decoding. Returns the last-position logits [B, 1, vocab]."""
        rows = []
        for b, x in enumerate(ids):
            row = self.model.setup_cache(1, len(x))
            rows.append(self.model(torch.tensor([x], device=self.device), cache=row, last_only=True))
            for layer in range(len(cache.k)):
                cache.k[layer][b, :, T - len(x):T] = row.k[layer][0]
                cache.v[layer][b, :, T - len(x):T] = row.v[layer][0]
        cache.offset = T
        return torch.cat(rows)

    # ---- log-likelihood ----------------------------------------------------------------------------------------

    def score_choices(self, samples):
        """Yield (sample, [log-likelihood of each choice]) for multiple-choice samples."""
        requests = [(s.prompt, c) for s in samples for c in s.choices]
        lls = [ll for ll, _ in self.loglikelihood(requests)]
        i = 0
        for s in samples:
            yield s, lls[i:i + len(s.choices)]
            i += len(s.choices)

    def split_request(self, context: str, continuation: str) -> tuple:
        """Token ids of context and continuation as lm-eval splits them: trailing spaces of the context move to the
        continuation, then the continuation's tokens are those the whole string adds after the context's."""
        spaces = len(context) - len(context.rstrip(" "))
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return whole[:len(ctx)], whole[len(ctx):]

    def loglikelihood(self, requests) -> list:
        """[(sum log p(continuation | context), continuation is the greedy one)] for (context, continuation) pairs."""
        return self.loglikelihood_tokens([self.split_request(c, x) for c, x in requests])

    def loglikelihood_tokens(self, encoded) -> list:
        """loglikelihood() on (context ids, continuation ids) pairs; sequences over max_length + 1 tokens keep their
        last max_length + 1 (lm-eval's rule). Batched longest first, halving the batch on out-of-memory."""
        order = sorted(range(len(encoded)), key=lambda i: -sum(map(len, encoded[i])))
        total = max(len(c) + len(x) for c, x in encoded) if encoded else 0
        results = [None] * len(encoded)
        for i, res in self._run_batched(order, total, lambda b: self._loglikelihood_batch([encoded[i] for i in b])):
            results[i] = res
        return results

    def _check_finite(self, logits, tokens: int):
        """NaN or inf logits would be scored as wrong answers (0.0) without a word: stop the run instead. One check
        per prefill, not per decode step (a decode step's inputs are the prefill's outputs and cached states)."""
        if not bool(torch.isfinite(logits).all()):
            raise NonFiniteLogits(f"{self.path}: the model produced non-finite logits on a {tokens}-token prompt "
                                  f"in {self.dtype_name}; its weights or this dtype overflow (try --dtype float32)")

    @torch.inference_mode()
    def _loglikelihood_batch(self, pairs) -> list:
        seqs = [(c + x)[-self.max_length - 1:] for c, x in pairs]
        T = max(len(s) for s in seqs) - 1
        ids = torch.full((len(seqs), T), self.pad_id, dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, :len(s) - 1] = torch.tensor(s[:-1])
        logits = self.model(ids.to(self.device)).float().log_softmax(-1).cpu()
        self._check_finite(logits, T)
        out = []
        for b, ((_, x), s) in enumerate(zip(pairs, seqs)):
            n = len(x)
            start = len(s) - 1 - n
            lp = logits[b, start:start + n]
            target = torch.tensor(s[-n:])
            out.append((float(lp.gather(-1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all())))
        return out
