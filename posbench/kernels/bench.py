"""Microbenchmarks of the rotary kernels, the fused norm/SwiGLU kernels and the attention backends. CUDA only; every
function returns plain rows (lists of dicts) for the harness to tabulate (`to_markdown`).

Two timings per kernel, both medians:
- graph: triton.testing.do_bench_cudagraph. The kernels alone, replayed back to back in a CUDA graph, without the
  host's Python dispatch. Bandwidths are computed from this. When one call's inputs would fit in L2, several input
  sets are cycled (>= 3x L2 between reuses) so that no call reads the previous call's data from cache.
- eager: triton.testing.do_bench. Each call as the model makes it, dispatch included. do_bench zeroes a 256 MB
  buffer before every call to flush L2; the dirty lines that leaves are written back during the timed call (up to
  ~50 MB of extra traffic), which inflates 20-100 us kernels, so eager numbers are for latency, not bandwidth.
Bytes are the minimum each op must move (inputs read once, outputs written once), the same for every
implementation of an op, so GB/s compare implementations of one op fairly.
"""
import functools
import math

import torch

from . import fused
from .attention import attention
from .rotary import apply_qk_norm_rotary, apply_rotary_qk, qk_norm_rotary_reference, rotary_reference, triton_available

# Where the benchmarks allocate. Only CUDA gives meaningful numbers; tests point it at the CPU, with fake timers, to run
# every benchmark function end to end.
DEVICE = "cuda"


def require_cuda():
    if not torch.cuda.is_available():
        raise RuntimeError("posbench.kernels.bench times GPU kernels and needs a CUDA device; none is visible "
                           "(torch.cuda.is_available() is False)")
    if not triton_available():
        raise RuntimeError("posbench.kernels.bench needs the triton package (triton.testing times the kernels)")


def _testing():
    import triton.testing
    return triton.testing


def device_info() -> dict:
    require_cuda()
    import triton
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return dict(device=props.name, sms=props.multi_processor_count, l2_bytes=props.L2_cache_size,
                memory_bytes=props.total_memory, torch=torch.__version__, triton=triton.__version__,
                cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())


def time_graph_ms(fn) -> float:
    return _testing().do_bench_cudagraph(fn, rep=25, return_mode="median")


def time_eager_ms(fn) -> float:
    return _testing().do_bench(fn, warmup=25, rep=100, return_mode="median")


class _Cycle:
    """Calls fn on input sets in turn, so that successive calls read different memory."""

    def __init__(self, fn, sets):
        self.fn, self.sets, self.i = fn, sets, 0

    def __call__(self):
        args = self.sets[self.i % len(self.sets)]
        self.i += 1
        return self.fn(*args)


def _l2_bytes() -> int:
    return torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size


def _cycled(fn, make_set, bytes_per_call: int) -> _Cycle:
    sets = min(16, max(1, math.ceil(3 * _l2_bytes() / bytes_per_call)))
    return _Cycle(fn, [make_set() for _ in range(sets)])


def copy_bandwidth(nbytes: int = 512 * 2 ** 20) -> dict:
    """Device-to-device copy of a random bf16 buffer; bytes read + written over time."""
    require_cuda()
    src = torch.randn(nbytes // 2, device=DEVICE, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    fn = functools.partial(dst.copy_, src)
    moved = 2 * nbytes
    graph_ms, eager_ms = time_graph_ms(fn), time_eager_ms(fn)
    # The roofline is the faster of the two: for a 1 GB copy launch overhead is nothing, and on an H200 the graph
    # replay of this copy measured 2.76 TB/s against 4.18 TB/s eager (the card's copy rate, as its datasheet and the
    # device notes say), so the graph figure would flatter every kernel measured against it.
    return dict(bytes=moved, graph_ms=graph_ms, eager_ms=eager_ms, graph_gb_s=moved / graph_ms / 1e6,
                eager_gb_s=moved / eager_ms / 1e6, gb_s=moved / min(graph_ms, eager_ms) / 1e6)


def _inv_freq(head_dim: int, theta: float) -> torch.Tensor:
    return (1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)).to(DEVICE)


def _rotary_variants(N: int, H: int, D: int, B: int, dtype, theta: float, include_compile: bool, config):
    """(op, positions, impl, make_set, fn, bytes) for every implementation measured at one shape."""
    from . import rotary_triton as rt
    inv_freq = _inv_freq(D, theta)
    elt = torch.finfo(dtype).bits // 8
    qk_bytes = 2 * B * N * H * D * elt  # q and k, once

    def positions(kind):
        if kind == "integer":
            return torch.arange(N, device=DEVICE).expand(B, N).contiguous()
        return torch.rand(B, N, H, device=DEVICE) * N

    def pos_bytes(kind):
        return B * N * (8 if kind == "integer" else 4 * H)

    def qk_set(kind):
        return lambda: (torch.randn(B, N, H, D, device=DEVICE, dtype=dtype),
                        torch.randn(B, N, H, D, device=DEVICE, dtype=dtype), positions(kind))

    def norm_set(kind):
        return lambda: (torch.randn(B, N, H * D, device=DEVICE, dtype=dtype),
                        torch.randn(B, N, H * D, device=DEVICE, dtype=dtype),
                        torch.ones(H * D, device=DEVICE, dtype=dtype), torch.ones(H * D, device=DEVICE, dtype=dtype),
                        positions(kind))

    def bwd_set():
        return lambda: tuple(torch.randn(B, N, H, D, device=DEVICE, dtype=dtype) for _ in range(4)) + (
            positions("learned"),)

    def norm_bwd_set():
        return lambda: (tuple(torch.randn(B, N, H, D, device=DEVICE, dtype=dtype) for _ in range(2))
                        + tuple(torch.randn(B, N, H * D, device=DEVICE, dtype=dtype) for _ in range(2))
                        + (torch.ones(H * D, device=DEVICE, dtype=dtype),
                           torch.ones(H * D, device=DEVICE, dtype=dtype), positions("learned")))

    w_bytes = 2 * H * D * elt
    eps = 1e-6
    rows = []
    for kind in ("integer", "learned"):
        nbytes = 2 * qk_bytes + pos_bytes(kind)
        rows.append(("rotary q+k", kind, "triton", qk_set(kind),
                     lambda q, k, p: apply_rotary_qk(q, k, p, inv_freq, config=config), nbytes))
        rows.append(("rotary q+k", kind, "eager reference", qk_set(kind),
                     lambda q, k, p: (rotary_reference(q, p, inv_freq), rotary_reference(k, p, inv_freq)), nbytes))
        nbytes_norm = nbytes + w_bytes
        rows.append(("qk-norm + rotary", kind, "triton fused", norm_set(kind),
                     lambda xq, xk, wq, wk, p: apply_qk_norm_rotary(xq, xk, wq, wk, eps, p, inv_freq, 1.0, H, H,
                                                                    config=config), nbytes_norm))
        rows.append(("qk-norm + rotary", kind, "eager reference", norm_set(kind),
                     lambda xq, xk, wq, wk, p: qk_norm_rotary_reference(xq, xk, wq, wk, eps, p, inv_freq, 1.0, H, H),
                     nbytes_norm))
    if include_compile:
        compiled = torch.compile(lambda q, k, p: (rotary_reference(q, p, inv_freq), rotary_reference(k, p, inv_freq)))
        rows.append(("rotary q+k", "learned", "torch.compile reference", qk_set("learned"), compiled,
                     2 * qk_bytes + pos_bytes("learned")))
    # Backward with d pos: reads the output gradients and the saved inputs, writes the input gradients.
    rows.append(("rotary q+k backward", "learned", "triton", bwd_set(),
                 lambda gq, gk, q, k, p: rt.rotary_qk_backward(gq, gk, p, inv_freq, q=q, k=k, config=config),
                 3 * qk_bytes + 2 * pos_bytes("learned")))
    rows.append(("qk-norm + rotary backward", "learned", "triton fused", norm_bwd_set(),
                 lambda gq, gk, xq, xk, wq, wk, p: rt.qk_norm_rotary_backward(
                     gq, gk, xq, xk, wq, wk, eps, p, inv_freq, 1.0, H, H, config=config),
                 3 * qk_bytes + 2 * pos_bytes("learned") + 2 * w_bytes))
    return rows


def rotary_bench(seq_lens=(4096, 8192, 16384), num_heads: int = 16, head_dim: int = 128, batch: int = 1,
                 dtype=torch.bfloat16, theta: float = 500000.0, copy_gb_s: float | None = None,
                 include_compile: bool = True, config=None, eager: bool = True) -> list[dict]:
    """Rotary of q and k (and the fused q/k-norm variant, forward and backward) per implementation and length.
    frac_of_copy = graph GB/s over copy_gb_s (measured here if not given, graph-timed like the kernels)."""
    require_cuda()
    copy_gb_s = copy_gb_s or copy_bandwidth()["gb_s"]
    rows = []
    for N in seq_lens:
        for op, kind, impl, make_set, fn, nbytes in _rotary_variants(N, num_heads, head_dim, batch, dtype, theta,
                                                                      include_compile, config):
            row = dict(op=op, positions=kind, impl=impl, seq_len=N, heads=num_heads, head_dim=head_dim,
                       batch=batch, dtype=str(dtype).removeprefix("torch."), bytes=nbytes,
                       config=None if config is None or not impl.startswith("triton") else repr(config))
            try:
                call = _cycled(fn, make_set, nbytes)
                graph_ms = time_graph_ms(call)
                row.update(graph_us=graph_ms * 1e3, graph_gb_s=nbytes / graph_ms / 1e6,
                           frac_of_copy=nbytes / graph_ms / 1e6 / copy_gb_s)
                if eager:
                    row["eager_us"] = time_eager_ms(call) * 1e3
            except Exception as e:  # one failing implementation must not hide the others
                row["error"] = f"{type(e).__name__}: {e}"[:300]
            rows.append(row)
        torch.cuda.empty_cache()
    return rows


def rotary_config_sweep(seq_len: int = 16384, configs=None, **kwargs) -> list[dict]:
    """The Triton rows of rotary_bench for each launch config (graph timing only)."""
    from .rotary_triton import SWEEP_CONFIGS
    rows = []
    copy_gb_s = kwargs.pop("copy_gb_s", None) or copy_bandwidth()["gb_s"]
    for config in configs or SWEEP_CONFIGS:
        rows += [r for r in rotary_bench((seq_len,), copy_gb_s=copy_gb_s, include_compile=False, config=config,
                                         eager=False, **kwargs) if r["impl"].startswith("triton")]
    return rows


def rotary_decode_latency(batch: int = 1, num_heads: int = 16, head_dim: int = 128, dtype=torch.bfloat16,
                          cache_len: int = 16384) -> list[dict]:
    """One new token per sequence (N = 1, position = cache length): eager call latency (what a decode step pays,
    dominated by host dispatch) next to the kernel alone (graph)."""
    require_cuda()
    inv_freq = _inv_freq(head_dim, 500000.0)
    q = torch.randn(batch, 1, num_heads, head_dim, device=DEVICE, dtype=dtype)
    k = torch.randn_like(q)
    proj = torch.randn(batch, 1, num_heads * head_dim, device=DEVICE, dtype=dtype)
    w = torch.ones(num_heads * head_dim, device=DEVICE, dtype=dtype)
    int_pos = torch.full((batch, 1), cache_len, device=DEVICE)
    learned = torch.rand(batch, 1, num_heads, device=DEVICE) * cache_len
    cases = [("rotary q+k", "integer", lambda: apply_rotary_qk(q, k, int_pos, inv_freq)),
             ("rotary q+k", "learned", lambda: apply_rotary_qk(q, k, learned, inv_freq)),
             ("qk-norm + rotary", "learned", lambda: apply_qk_norm_rotary(proj, proj, w, w, 1e-6, learned, inv_freq,
                                                                          1.0, num_heads, num_heads))]
    rows = []
    for op, kind, fn in cases:
        with torch.no_grad():
            rows.append(dict(op=op, positions=kind, batch=batch, eager_us=time_eager_ms(fn) * 1e3,
                             graph_us=time_graph_ms(fn) * 1e3))
    return rows


def _fused_variants(N: int, hidden: int, intermediate: int, B: int, dtype, include_compile: bool, config):
    """(op, impl, make_set, fn, bytes, graph) for every implementation of the fused ops at one length. bytes: the
    minimum each op moves (its inputs read once, outputs written once; the weight counted, rstd and the backward's
    per-program weight-gradient partials not). graph: whether the call can be captured in a CUDA graph (autograd's
    backward of the eager reference is timed eagerly only)."""
    from . import fused_triton as ft
    elt = torch.finfo(dtype).bits // 8
    act, mlp, w_bytes = B * N * hidden * elt, B * N * intermediate * elt, hidden * elt
    eps = 1e-6

    def tensors(width, count, weight=True):
        def make():
            out = tuple(torch.randn(B, N, width, device=DEVICE, dtype=dtype) for _ in range(count))
            return out + ((1 + 0.1 * torch.randn(hidden, device=DEVICE, dtype=dtype)),) if weight else out
        return make

    def eager_backward(forward, width, count, weight=True):
        """A set = (outputs of the eager reference with its autograd graph, inputs, output gradients)."""
        def make():
            inputs = [t.requires_grad_() for t in tensors(width, count, weight)()]
            outs = forward(*inputs)
            outs = outs if isinstance(outs, tuple) else (outs,)
            return outs, inputs, tuple(torch.randn_like(o) for o in outs)
        return make

    def grad(outs, inputs, grads):
        return torch.autograd.grad(outs, inputs, grads, retain_graph=True)

    rms_ref = lambda x, w: fused.rms_norm_reference(x, w, eps)  # noqa: E731
    add_ref = lambda r, x, w: fused.add_rms_norm_reference(r, x, w, eps)  # noqa: E731
    pre_ref = lambda r, x, w: fused.add_then_rms_norm_reference(r, x, w, eps, True)  # noqa: E731
    rows = [
        ("rms_norm", "triton", tensors(hidden, 1), lambda x, w: fused.rms_norm(x, w, eps, config=config),
         2 * act + w_bytes, True),
        ("rms_norm", "eager reference", tensors(hidden, 1), rms_ref, 2 * act + w_bytes, True),
        ("add_rms_norm (post-norm)", "triton", tensors(hidden, 2),
         lambda r, x, w: fused.add_rms_norm(r, x, w, eps, config=config), 3 * act + w_bytes, True),
        ("add_rms_norm (post-norm)", "eager reference", tensors(hidden, 2), add_ref, 3 * act + w_bytes, True),
        ("add_then_rms_norm (pre-norm)", "triton", tensors(hidden, 2),
         lambda r, x, w: fused.add_then_rms_norm(r, x, w, eps, True, config=config), 4 * act + w_bytes, True),
        ("add_then_rms_norm (pre-norm)", "eager reference", tensors(hidden, 2), pre_ref, 4 * act + w_bytes, True),
        ("swiglu", "triton", tensors(intermediate, 2, False), lambda g, u: fused.swiglu(g, u, config=config),
         3 * mlp, True),
        ("swiglu", "eager reference", tensors(intermediate, 2, False), fused.swiglu_reference, 3 * mlp, True),
    ]
    if include_compile:
        rows += [("add_rms_norm (post-norm)", "torch.compile reference", tensors(hidden, 2), torch.compile(add_ref),
                  3 * act + w_bytes, True),
                 ("swiglu", "torch.compile reference", tensors(intermediate, 2, False),
                  torch.compile(fused.swiglu_reference), 3 * mlp, True)]

    def norm_bwd_set(count):
        def make():
            ts = tensors(hidden, count)()
            return ts + (torch.rand(B * N, device=DEVICE) + 0.5,)
        return make

    # Backward: the norm's reads x (h for pre-norm) and the output gradient (+ the gradient of h), writes dx; the
    # post-norm residual's gradient is the output's, passed through without a kernel.
    rows += [
        ("rms_norm backward", "triton", norm_bwd_set(2),
         lambda g, x, w, rstd: ft.rms_norm_backward(g, x, w, rstd, config=config), 3 * act + 2 * w_bytes, True),
        ("rms_norm backward", "eager reference (autograd)", eager_backward(rms_ref, hidden, 1), grad,
         3 * act + 2 * w_bytes, False),
        ("add_then_rms_norm backward", "triton", norm_bwd_set(3),
         lambda g, gh, h, w, rstd: ft.rms_norm_backward(g, h, w, rstd, True, grad_h=gh, config=config),
         4 * act + 2 * w_bytes, True),
        ("add_then_rms_norm backward", "eager reference (autograd)", eager_backward(pre_ref, hidden, 2), grad,
         4 * act + 2 * w_bytes, False),
        ("swiglu backward", "triton", tensors(intermediate, 3, False),
         lambda go, g, u: ft.swiglu_backward(go, g, u, config=config), 5 * mlp, True),
        ("swiglu backward", "eager reference (autograd)", eager_backward(fused.swiglu_reference, intermediate, 2,
                                                                         False), grad, 5 * mlp, False),
    ]
    return rows


def fused_bench(seq_lens=(4096, 8192, 16384), hidden: int = 2048, intermediate: int = 8192, batch: int = 1,
                dtype=torch.bfloat16, copy_gb_s: float | None = None, include_compile: bool = True, config=None,
                eager: bool = True, backward: bool = True) -> list[dict]:
    """The fused norm and SwiGLU ops (forward, and backward unless backward=False) per implementation and length, at
    the OLMo-2-1B widths by default. frac_of_copy = graph GB/s over copy_gb_s (measured here if not given).
    torch.compile rows are measured at the longest length only (one compilation each)."""
    require_cuda()
    copy_gb_s = copy_gb_s or copy_bandwidth()["gb_s"]
    rows = []
    for N in seq_lens:
        variants = _fused_variants(N, hidden, intermediate, batch, dtype, include_compile and N == max(seq_lens),
                                   config)
        for op, impl, make_set, fn, nbytes, graph in variants:
            if not backward and "backward" in op:
                continue
            row = dict(op=op, impl=impl, seq_len=N, hidden=hidden,
                       width=intermediate if op.startswith("swiglu") else hidden, batch=batch,
                       dtype=str(dtype).removeprefix("torch."), bytes=nbytes,
                       config=None if config is None or impl != "triton" else repr(config))
            try:
                call = _cycled(fn, make_set, nbytes)
                if graph:
                    graph_ms = time_graph_ms(call)
                    row.update(graph_us=graph_ms * 1e3, graph_gb_s=nbytes / graph_ms / 1e6,
                               frac_of_copy=nbytes / graph_ms / 1e6 / copy_gb_s)
                if eager or not graph:
                    eager_ms = time_eager_ms(call)
                    row.update(eager_us=eager_ms * 1e3, eager_gb_s=nbytes / eager_ms / 1e6)
            except Exception as e:  # one failing implementation must not hide the others
                row["error"] = f"{type(e).__name__}: {e}"[:300]
            rows.append(row)
        torch.cuda.empty_cache()
    return rows


# The fused ops of one block's forward (ops per layer); the output residual add of a Llama block (h + mlp) stays an
# eager add in both.
BLOCK_OPS = {"olmo2": {"add_rms_norm (post-norm)": 2, "swiglu": 1},
             "llama": {"rms_norm": 1, "add_then_rms_norm (pre-norm)": 1, "swiglu": 1}}


def block_savings(rows: list[dict], layers: int = 16) -> list[dict]:
    """Per length and block type: the graph time of one block's fused ops, eager reference vs Triton, and what the
    difference saves over `layers` layers of a prefill (OLMo-2-1B: 16)."""
    out = []
    for N in sorted({r["seq_len"] for r in rows}):
        times = {(r["op"], r["impl"]): r.get("graph_us") for r in rows if r["seq_len"] == N}
        for block, ops in BLOCK_OPS.items():
            try:
                eager_us = sum(n * times[(op, "eager reference")] for op, n in ops.items())
                fused_us = sum(n * times[(op, "triton")] for op, n in ops.items())
            except (KeyError, TypeError):  # an op missing or failed at this length
                continue
            out.append(dict(block=block, seq_len=N, eager_us=eager_us, fused_us=fused_us,
                            saved_us_per_layer=eager_us - fused_us,
                            saved_ms_per_prefill=(eager_us - fused_us) * layers / 1e3, layers=layers))
    return out


def fused_config_sweep(seq_len: int = 16384, configs=None, **kwargs) -> list[dict]:
    """The Triton forward rows of fused_bench for each launch config (graph timing only)."""
    from .fused_triton import SWEEP_CONFIGS
    rows = []
    copy_gb_s = kwargs.pop("copy_gb_s", None) or copy_bandwidth()["gb_s"]
    for config in configs or SWEEP_CONFIGS:
        rows += [r for r in fused_bench((seq_len,), copy_gb_s=copy_gb_s, include_compile=False, config=config,
                                        eager=False, backward=False, **kwargs) if r["impl"] == "triton"]
    return rows


ATTENTION_BACKENDS = ("auto", "default", "cudnn", "flash", "efficient")


def repo_positions_sweep(seq_len: int = 16384, hidden: int = 2048, heads: int = 16, qkv_width: int = 6144,
                         dtype=torch.bfloat16, shapes=None) -> list[dict]:
    """RePo's fused position kernel (SwiGLU + final map + fp32 cast) per launch shape, against the three kernels it
    replaces, on gate/content slices of a packed q/k/v+maps projection (OLMo-2-1B: 16K x 6656). GB/s on the minimum
    bytes (gate and content read once, positions written)."""
    require_cuda()
    from . import fused
    from . import fused_triton as ft
    K = hidden // 8
    weight = torch.randn(heads, K, device=DEVICE, dtype=dtype) * 0.05

    def make_set():
        packed = torch.randn(seq_len, qkv_width + 2 * K, device=DEVICE, dtype=dtype)
        return packed[:, qkv_width:qkv_width + K], packed[:, qkv_width + K:]

    elt = torch.finfo(dtype).bits // 8
    nbytes = 2 * seq_len * K * elt + seq_len * heads * 4
    variants = [("three kernels (swiglu, linear, cast)", None,
                 lambda g, c: torch.nn.functional.linear(fused.swiglu(g, c), weight).float())]
    for bm, bk, warps in shapes or [(bm, bk, w) for bm in (16, 32, 64) for bk in (64, 128, 256) for w in (2, 4)]:
        variants.append(("fused", f"block_m={bm} block_k={bk} warps={warps}",
                         lambda g, c, bm=bm, bk=bk, w=warps: ft.repo_positions_forward(g, c, weight, block_m=bm,
                                                                                       block_k=bk, num_warps=w)))
    rows = []
    with torch.no_grad():
        for impl, shape, fn in variants:
            cycled = _cycled(fn, make_set, 2 * seq_len * (qkv_width + 2 * K) * elt)
            eager_ms = time_eager_ms(cycled)
            rows.append(dict(impl=impl, shape=shape or "", seq_len=seq_len, bytes=nbytes, eager_us=eager_ms * 1e3,
                             graph_us=time_graph_ms(cycled) * 1e3, eager_gb_s=nbytes / eager_ms / 1e6))
    return rows


def attention_bench(seq_lens=(4096, 8192, 16384), num_heads: int = 16, head_dim: int = 128, batch: int = 1,
                    dtype=torch.bfloat16, backends=ATTENTION_BACKENDS) -> list[dict]:
    """Causal prefill attention per backend: TFLOP/s with the causal count 2*B*H*S^2*D."""
    require_cuda()
    rows = []
    for S in seq_lens:
        q, k, v = (torch.randn(batch, num_heads, S, head_dim, device=DEVICE, dtype=dtype) for _ in range(3))
        flops = 2 * batch * num_heads * S * S * head_dim
        for backend in backends:
            row = dict(seq_len=S, heads=num_heads, head_dim=head_dim, batch=batch, backend=backend, flops=flops)
            fn = functools.partial(attention, q, k, v, causal=True, backend=backend)
            try:
                ms = time_eager_ms(fn)
                row.update(eager_ms=ms, tflop_s=flops / ms / 1e9)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:300]
            rows.append(row)
        del q, k, v
        torch.cuda.empty_cache()
    return rows


def decode_attention_bench(cache_lens=(4096, 16384), num_heads: int = 16, num_kv_heads: int = 16,
                           head_dim: int = 128, batch: int = 1, dtype=torch.bfloat16,
                           backends=("auto", "cudnn", "flash", "efficient")) -> list[dict]:
    """One query against the cache per backend: eager latency (host included) and graph time; GB/s on K+V."""
    require_cuda()
    rows = []
    for S in cache_lens:
        q = torch.randn(batch, num_heads, 1, head_dim, device=DEVICE, dtype=dtype)
        k, v = (torch.randn(batch, num_kv_heads, S, head_dim, device=DEVICE, dtype=dtype) for _ in range(2))
        kv_bytes = 2 * k.numel() * k.element_size()
        for backend in backends:
            row = dict(cache_len=S, heads=num_heads, kv_heads=num_kv_heads, head_dim=head_dim, batch=batch,
                       backend=backend, kv_bytes=kv_bytes)
            fn = functools.partial(attention, q, k, v, causal=True, backend=backend)
            try:
                graph_ms = time_graph_ms(fn)
                row.update(eager_us=time_eager_ms(fn) * 1e3, graph_us=graph_ms * 1e3,
                           kv_gb_s=kv_bytes / graph_ms / 1e6)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:300]
            rows.append(row)
    return rows


def to_markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    """A markdown table of rows (floats to 4 significant digits; missing cells empty)."""
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v).replace("|", "/")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
