"""Continuous-batching greedy decoding over a static KV cache, with each decode step captured in a CUDA graph.

    decoder = SlotDecoder(model, slots=8, max_len=5120, eos_ids={0}, max_new=128, graph=True)
    for request, tokens, finish, timing in continuous_generate(decoder, requests, tokenizer): ...

Why: one decode step of a 1B model is ~200 kernel launches of a few microseconds each; dispatched from Python
(~50 us per launch) a step was 10-15x slower than the card's memory bound. A CUDA graph replays the whole step with
one launch, and nothing in it needs the host: every per-token decision is made on the device.

The static cache (SlotCache) holds `slots` independent sequences, each filled from position 0 up to
`lengths[slot]`, a DEVICE tensor. A decode step feeds every slot its last token at position `lengths[slot]`: the
model writes k and v there in place (an index_put at a device-side offset), attends under the mask
`key index <= lengths[slot]`, and the argmax, the end-of-text check, the length limit and the output buffer are all
updated on the device. Integer positions are `lengths` itself; RePo's learned positions come from each token's own
hidden state inside the model, so both are computed on the device with no host round trip.

Continuous batching: when a slot's sequence finishes (EOS, its max_new_tokens, or a stop string found by the host
between chunks of steps), the slot takes the next prompt: that prompt is prefilled alone and unpadded (so it keeps
the fast causal attention kernels) straight into the slot's rows of the static cache. Prompts are taken longest
first, so the ones sharing a cache are of similar length. The host looks at the device only every `chunk` steps.

The eager path (TorchEngine.generate) stays the reference: in fp32 on CPU this module's greedy tokens equal it
exactly (tests/test_decode.py). Without `graph` (CPU, or a scheme whose frequencies depend on the current length,
which needs the host) the same step runs eagerly.
"""
import time
from dataclasses import dataclass

import torch

from posbench.harness.core.model import KVCache

FINISH_NONE, FINISH_EOS, FINISH_LENGTH = 0, 1, 2


class SlotCache:
    """A static KV cache of `slots` sequences x `max_len` positions, k/v [slots, H_kv, max_len, D] per layer.

    It implements what the model's forward asks of a cache for a ONE-token step of every slot: `offset` is pinned at
    max_len - 1, so the model treats the whole buffer as the keys (its attention_mask, built from `lengths`, says
    which are real), and `update` writes the new key of slot s at lengths[s] instead of at a shared offset."""

    def __init__(self, k: list, v: list):
        self.k, self.v = k, v
        slots = k[0].shape[0]
        self.lengths = torch.zeros(slots, dtype=torch.long, device=k[0].device)
        self.rows = torch.arange(slots, device=k[0].device)

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2]

    @property
    def offset(self) -> int:
        return self.max_len - 1

    @offset.setter
    def offset(self, value):  # the model advances a shared offset after a forward; the lengths advance on their own
        pass

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write one new token's k, v [slots, H_kv, 1, D] at each slot's own length; return the whole buffers."""
        self.k[layer][self.rows, :, self.lengths] = k[:, :, 0]
        self.v[layer][self.rows, :, self.lengths] = v[:, :, 0]
        return self.k[layer], self.v[layer]

    def slot(self, s: int) -> KVCache:
        """A plain cache over slot s's rows (views into the static buffers): a prefill through it fills the slot."""
        return KVCache(k=[buf[s:s + 1] for buf in self.k], v=[buf[s:s + 1] for buf in self.v], offset=0)


class SlotDecoder:
    """The device state of `slots` sequences being decoded together, and the step that advances all of them.

    State (all on the device, all static so a graph can replay over it): `token` [S] each slot's last token, `out`
    [S, max_new] the tokens emitted so far, `produced` [S] how many, `limit` [S] each slot's max_new_tokens, `finish`
    [S] FINISH_* codes, `done` [S]."""

    def __init__(self, model, slots: int, max_len: int, eos_ids, max_new: int, graph: bool):
        like = model.embed_tokens.weight
        device = like.device
        c = model.config
        shape = (slots, c.num_kv_heads, max_len, c.head_dim)
        self.model, self.slots, self.max_len, self.max_new = model, slots, max_len, max_new
        self.cache = SlotCache([torch.zeros(shape, dtype=like.dtype, device=device) for _ in model.layers],
                               [torch.zeros(shape, dtype=like.dtype, device=device) for _ in model.layers])
        self.key_index = torch.arange(max_len, device=device)
        self.eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
        self.token = torch.zeros(slots, dtype=torch.long, device=device)
        self.out = torch.zeros(slots, max_new, dtype=torch.long, device=device)
        self.produced = torch.zeros(slots, dtype=torch.long, device=device)
        self.limit = torch.zeros(slots, dtype=torch.long, device=device)
        self.finish = torch.zeros(slots, dtype=torch.long, device=device)
        self.done = torch.ones(slots, dtype=torch.bool, device=device)
        self.graph = self._capture() if graph else None

    def _is_eos(self, token: torch.Tensor) -> torch.Tensor:
        return (token[:, None] == self.eos[None, :]).any(-1)

    def _step(self):
        """One greedy step of every slot, on the device only (finished and empty slots compute and change nothing)."""
        lengths = self.cache.lengths
        mask = self.key_index[None, :] <= lengths[:, None]
        logits = self.model(self.token[:, None], position_ids=lengths[:, None], cache=self.cache,
                            attention_mask=mask, last_only=True)
        self._advance(logits[:, -1].argmax(-1), ~self.done)
        self.cache.lengths.add_((~self.done).long())  # only live slots move on (and never past the buffer)
        self.cache.lengths.clamp_(max=self.max_len - 1)

    def _advance(self, token: torch.Tensor, active: torch.Tensor):
        """Record `token` for the active slots: EOS finishes a slot without being emitted (as the eager path)."""
        eos = active & self._is_eos(token)
        emit = active & ~eos
        at = self.produced.clamp(max=self.max_new - 1)[:, None]
        self.out.scatter_(1, at, torch.where(emit[:, None], token[:, None], self.out.gather(1, at)))
        self.produced.add_(emit.long())
        full = emit & (self.produced >= self.limit)
        self.finish.copy_(torch.where(eos, FINISH_EOS, torch.where(full, FINISH_LENGTH, self.finish)))
        self.done.logical_or_(eos | full)
        self.token.copy_(torch.where(active, token, self.token))

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Capture one step (all slots empty, so the warm-up changes no state that matters). Warm-up on a side
        stream first: Triton compiles, packed weights and frequencies are built outside the capture."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        return graph

    def steps(self, n: int):
        """n decode steps, queued without waiting for the device."""
        for _ in range(n):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()

    def admit(self, s: int, ids: list, max_new: int) -> float:
        """Prefill prompt `ids` alone into slot s and record its first token; returns the prefill's seconds."""
        start = time.perf_counter()
        self.cache.lengths[s] = len(ids)
        self.produced[s], self.limit[s], self.finish[s], self.done[s] = 0, max_new, FINISH_NONE, False
        logits = self.model(torch.tensor([ids], device=self.token.device), cache=self.cache.slot(s), last_only=True)
        active = torch.zeros_like(self.done)
        active[s] = True
        self._advance(torch.where(active, logits[0, -1].argmax(-1), self.token), active)
        _sync(self.token.device)
        return time.perf_counter() - start


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Request:
    key: object          # the caller's handle (a sample)
    ids: list            # prompt token ids
    max_new_tokens: int
    stop: tuple = ()


@dataclass
class Finished:
    request: Request
    tokens: list
    finish: str          # "eos" | "stop" | "length"
    prefill_s: float
    decode_s: float      # wall time from the end of its prefill to the chunk it finished in
    batch_size: int      # the decoder's slots


def first_stop(tokens: list, start: int, stop, decode) -> int | None:
    """The index of the first token at or after `start` at which the decoded tail contains a stop string: the eager
    path's per-token check (the last 64 tokens decoded), replayed over a chunk of tokens at once."""
    if not stop:
        return None
    for i in range(start, len(tokens)):
        text = decode(tokens[max(0, i - 63):i + 1])
        if any(s and s in text for s in stop):
            return i
    return None


def continuous_generate(decoder: SlotDecoder, requests: list, decode, chunk: int = 8):
    """Yield a Finished per request, greedy, refilling each freed slot with the next request (longest first).

    decode: token ids -> text, for the stop strings. The host waits for the device once per `chunk` steps (and once
    per prefill), never per token."""
    queue = []
    for r in sorted(requests, key=lambda r: -len(r.ids)):
        if r.max_new_tokens > 0:
            queue.append(r)
        else:   # nothing to generate (the eager path's loop does not run either)
            yield Finished(r, [], "length", 0.0, 0.0, decoder.slots)
    live = {}     # slot -> [request, prefill_s, admitted_at, tokens checked for stops]
    device = decoder.token.device
    while queue or live:
        for s in range(decoder.slots):
            if s not in live and queue:
                request = queue.pop(0)
                live[s] = [request, decoder.admit(s, request.ids, request.max_new_tokens), time.perf_counter(), 0]
        decoder.steps(chunk)
        _sync(device)
        done, produced, finish = decoder.done.tolist(), decoder.produced.tolist(), decoder.finish.tolist()
        now = time.perf_counter()
        for s in list(live):
            request, prefill_s, admitted, checked = live[s]
            tokens = decoder.out[s, :produced[s]].tolist()
            hit = first_stop(tokens, checked, request.stop, decode)
            live[s][3] = len(tokens)
            if hit is None and not done[s]:
                continue
            if hit is not None:
                tokens, reason = tokens[:hit + 1], "stop"
            else:
                reason = {FINISH_EOS: "eos", FINISH_LENGTH: "length"}[finish[s]]
            decoder.done[s] = True
            del live[s]
            yield Finished(request, tokens, reason, prefill_s, now - admitted, decoder.slots)
