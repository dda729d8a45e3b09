"""`eval.py bench`: what each position scheme costs, measured on one card in one run.

Sections (each recorded even when another fails):
  prefill   the model core's prefill per scheme and length (batch 1, random OLMo-2-1B-shaped weights, logits of the
            last position only, as generation needs), and ratios RePo/RoPE and RoPE/NoPE;
  decode    ms per generated token with the KV cache at each context length, per scheme;
  hf        transformers' own Olmo2ForCausalLM (SDPA attention) on the same weights and shapes, its prefill time,
            our speed-up over it, and the logits' agreement;
  profile   (--profile) where RePo's extra prefill time goes: per-kernel device time under torch.profiler, RoPE
            against RePo, largest differences first, and the time the GPU sat idle between kernels;
  kernels   the rotary kernels alone in GB/s against the card's measured copy bandwidth, and attention TFLOP/s per
            SDPA backend (posbench/kernels/bench.py).
The targets these numbers are read against live in docs/bench.md, not here. Timings are medians of CUDA-event-timed
repetitions after warm-up; every scheme runs the same weights (RePo adds its maps) and the same token ids.
"""
import statistics
import time
from pathlib import Path

import torch

SCHEMES = {"rope": "rope", "nope": "nope", "hybrid": "hybrid,pattern=RRRN", "repo": "repo,start_layer=5"}


def olmo2_1b_config(vocab_size=100352, max_positions=16384) -> dict:
    """OLMo-2-0425-1B's shape (and Sakana's RePo-OLMo2-1B backbone): 16 layers, 16 heads x 128, SwiGLU 8192."""
    return {"model_type": "olmo2", "vocab_size": vocab_size, "hidden_size": 2048, "intermediate_size": 8192,
            "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 16,
            "max_position_embeddings": max_positions, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
            "tie_word_embeddings": False, "hidden_act": "silu", "attention_bias": False,
            "eos_token_id": 100257, "pad_token_id": 100277, "bos_token_id": None}


def tiny_config(max_positions=4096) -> dict:
    """A small model of the same architecture, for CPU smoke runs of this command."""
    return {**olmo2_1b_config(vocab_size=512, max_positions=max_positions), "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 4,
            "eos_token_id": 1, "pad_token_id": 0}


def build_models(hf_config: dict, schemes: dict, device, dtype, seed=0) -> dict:
    """{label: Transformer} sharing one set of random weights (std 0.02, drawn per checkpoint weight); position
    layers' own weights are fresh (their own init)."""
    from posbench.harness.core.checkpoint import as_scheme, checkpoint_tensors, position_weight_layers
    from posbench.harness.core.model import ModelConfig, Transformer

    config = ModelConfig.from_hf(hf_config)
    models, base = {}, None
    for label, spec in schemes.items():
        scheme = as_scheme(spec)
        with torch.device("meta"):
            model = Transformer(config, scheme).to(dtype)
        model.to_empty(device=device)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        tensors, position = checkpoint_tensors(model), position_weight_layers(model)
        with torch.no_grad():
            for name, p in tensors.items():
                if name in position:
                    continue
                if base is not None and name in base:
                    p.copy_(base[name])
                elif p.dim() == 1:
                    p.fill_(1.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=gen).mul_(0.02))
            for layer in model.layers:
                layer.self_attn.reset_position_parameters()
        if base is None:
            base = tensors
        models[label] = model.eval()
    return models


class Timer:
    """Wall time of a call: CUDA events on GPU, perf_counter on CPU."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"

    def once(self, fn) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def __call__(self, fn, warmup=2, reps=5) -> float:
        """Median over reps after warm-up."""
        for _ in range(warmup):
            fn()
        return statistics.median(self.once(fn) for _ in range(reps))

    def interleaved(self, fns: dict, warmup=2, reps=7, inner=1) -> dict:
        """{name: median ms per call}, timing the calls round-robin so that clock drift and thermal state hit all
        alike. Each timed sample runs a call `inner` times back to back, so the GPU never idles between them."""
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        times = {name: [] for name in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                times[name].append(self.once(lambda fn=fn: [fn() for _ in range(inner)]) / inner)
        return {name: statistics.median(t) for name, t in times.items()}


def warm_up_gpu(seconds=3.0):
    """Run matrix products until the clocks have ramped up (an idle H200 sat at 345 MHz before the first call)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()


def random_ids(vocab: int, batch: int, length: int, device, seed: int = 0) -> torch.Tensor:
    """The token ids every section times: the same for every scheme and model at a length."""
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed)).to(device)


@torch.inference_mode()
def prefill_rows(models: dict, lengths, device, timer, batch=1, seed=0, reps=7) -> list:
    rows = []
    vocab = next(iter(models.values())).config.vocab_size
    for n in lengths:
        ids = random_ids(vocab, batch, n, device, seed)
        calls = {label: (lambda m=model, ids=ids: m(ids, last_only=True)) for label, model in models.items()}
        medians = timer.interleaved(calls, reps=reps, inner=3)
        for label, ms in medians.items():
            rows.append({"scheme": label, "length": n, "batch": batch, "reps": reps, "prefill_ms": round(ms, 3),
                         "tokens_per_s": round(batch * n / ms * 1e3)})
        if device != "cpu":
            torch.cuda.empty_cache()
    for row in rows:
        same = {r["scheme"]: r["prefill_ms"] for r in rows if r["length"] == row["length"]}
        if "rope" in same:
            row["vs_rope"] = round(row["prefill_ms"] / same["rope"], 4)
        if "nope" in same:
            row["vs_nope"] = round(row["prefill_ms"] / same["nope"], 4)
    return rows


def _kernel_times(model, ids, reps) -> tuple:
    """({kernel name: (device ms per forward, launches per forward)}, wall ms per forward) under torch.profiler.
    On CPU the "kernels" are aten ops and their self times (so a CPU run tests this code, not the GPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = ids.device.type == "cuda"
    for _ in range(2):
        model(ids, last_only=True)
    timer = Timer(ids.device)
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        wall = timer.once(lambda: [model(ids, last_only=True) for _ in range(reps)])
    kernels = {}
    for evt in prof.key_averages():
        if cuda:
            us = getattr(evt, "self_device_time_total", None)
            us = evt.self_cuda_time_total if us is None else us  # older torch
        else:
            us = evt.self_cpu_time_total
        if us > 0:
            name = evt.key if len(evt.key) <= 70 else evt.key[:67] + "..."
            ms, count = kernels.get(name, (0.0, 0))
            kernels[name] = (ms + us / 1e3 / reps, count + evt.count / reps)
    return kernels, wall / reps


def _mean_times(runs) -> tuple:
    """The mean of several _kernel_times results (a kernel missing from one run counts 0 there)."""
    names = {name for kernels, _ in runs for name in kernels}
    mean = {name: (sum(k.get(name, (0.0, 0))[0] for k, _ in runs) / len(runs),
                   sum(k.get(name, (0.0, 0))[1] for k, _ in runs) / len(runs)) for name in names}
    return mean, sum(wall for _, wall in runs) / len(runs)


@torch.inference_mode()
def profile_rows(models: dict, lengths, device, pair=("rope", "repo"), reps=3, top=10, seed=0) -> list:
    """Per-kernel device time of `pair`'s prefills (batch 1, profiled in the order A, B, B, A and averaged): the
    largest differences first, then every kernel launched a different number of times, plus totals (the sum of kernel
    time, the wall time, and the gap between them: the GPU idle between launches). Profiled forwards run slower than
    timed ones; compare the rows with each other, not with the prefill table."""
    base, other = pair
    rows = []
    vocab = models[base].config.vocab_size
    for n in lengths:
        ids = random_ids(vocab, 1, n, device, seed)
        # A, B, B, A: the GPU warms up over a profile and its clocks drift; this order cancels a linear drift
        runs = {label: [] for label in pair}
        for label in (base, other, other, base):
            runs[label].append(_kernel_times(models[label], ids, reps))
        (kb, wall_b), (ko, wall_o) = (_mean_times(runs[label]) for label in pair)
        diffs = []
        for name in set(kb) | set(ko):
            (tb, cb), (to, co) = kb.get(name, (0.0, 0)), ko.get(name, (0.0, 0))
            diffs.append({"length": n, "kernel": name, f"{base}_ms": round(tb, 4), f"{other}_ms": round(to, 4),
                          "delta_ms": round(to - tb, 4), f"{base}_launches": round(cb, 1),
                          f"{other}_launches": round(co, 1)})
        diffs.sort(key=lambda r: -abs(r["delta_ms"]))
        busy_b, busy_o = sum(t for t, _ in kb.values()), sum(t for t, _ in ko.values())
        for kernel, tb, to in (("(all kernels)", busy_b, busy_o), ("(wall, profiled)", wall_b, wall_o),
                               ("(idle = wall - kernels)", wall_b - busy_b, wall_o - busy_o)):
            rows.append({"length": n, "kernel": kernel, f"{base}_ms": round(tb, 3), f"{other}_ms": round(to, 3),
                         "delta_ms": round(to - tb, 3)})
        # the largest time differences, and every kernel that one scheme launches more often (its extra work)
        rows += diffs[:top] + [d for d in diffs[top:] if d[f"{base}_launches"] != d[f"{other}_launches"]]
        if device != "cpu":
            torch.cuda.empty_cache()
    return rows


@torch.inference_mode()
def decode_rows(models: dict, lengths, device, timer, batches=(1, 8), steps=32, bandwidth_gb_s=None) -> list:
    """ms per decode step with `batch` sequences of `length` cached tokens each, through the engine's static-cache
    decoder (posbench/harness/evaluation/decode.py): replayed as a CUDA graph on GPU (ms_per_token), and the same
    step dispatched eagerly from Python (eager_ms_per_token). floor_ms: weights plus every sequence's cache read
    once at the measured copy bandwidth (posbench/harness/bounds.py)."""
    from posbench.harness.bounds import decode_floor_ms
    from posbench.harness.evaluation.decode import SlotDecoder

    rows = []
    for n in lengths:
        for batch in batches:
            for label, model in models.items():
                graph = device == "cuda" and not model.length_dependent
                # the buffer rounded to 64 positions (an aligned mask keeps SDPA's fused kernels; the engine uses 512)
                decoder = SlotDecoder(model, batch, -(-(n + steps + 1) // 64) * 64, eos_ids=(), max_new=steps,
                                      graph=graph)
                for buf in decoder.cache.k + decoder.cache.v:   # never time attention over zeros
                    buf.normal_(0, 1)
                decoder.limit.fill_(steps)
                decoder.token.copy_(random_ids(model.config.vocab_size, 1, batch, device)[0])

                def run(decoder=decoder, n=n, eager=False):
                    decoder.cache.lengths.fill_(n)
                    decoder.produced.zero_()
                    decoder.done.zero_()
                    graph, decoder.graph = decoder.graph, None if eager else decoder.graph
                    decoder.steps(steps)
                    decoder.graph = graph
                ms = timer(run, warmup=1, reps=5) / steps
                eager_ms = timer(lambda: run(eager=True), warmup=1, reps=3) / steps
                row = {"scheme": label, "context": n, "batch": batch, "ms_per_token": round(ms, 3),
                       "eager_ms_per_token": round(eager_ms, 3), "tokens_per_s": round(batch / ms * 1e3, 1),
                       "graph": decoder.graph is not None}
                if bandwidth_gb_s:
                    floor = decode_floor_ms(model, n + steps // 2, batch, bandwidth_gb_s)
                    row.update(floor_ms=round(floor, 3), x_floor=round(ms / floor, 3))
                rows.append(row)
                del decoder
                if device != "cpu":
                    torch.cuda.empty_cache()
    for row in rows:
        rope = [r for r in rows if r["scheme"] == "rope" and (r["context"], r["batch"]) == (row["context"],
                                                                                              row["batch"])]
        if rope:
            row["vs_rope"] = round(row["ms_per_token"] / rope[0]["ms_per_token"], 3)
    return rows


@torch.inference_mode()
def hf_rows(model, hf_config: dict, lengths, device, dtype, timer, seed=0) -> list:
    """transformers' Olmo2ForCausalLM with SDPA on our RoPE model's weights: prefill time and logit agreement."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from posbench.harness.core.checkpoint import checkpoint_tensors

    config = AutoConfig.for_model(**hf_config)
    with torch.device(device):  # built in place, so its rotary buffers are computed (in fp32) on the device
        hf = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
    missing, unexpected = hf.load_state_dict(dict(checkpoint_tensors(model)), strict=False)
    if unexpected or [m for m in missing if "rotary_emb" not in m]:
        raise RuntimeError(f"weights do not map onto transformers' model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    hf.eval()
    rows = []
    for n in lengths:
        ids = random_ids(config.vocab_size, 1, n, device, seed)
        medians = timer.interleaved({"hf": lambda ids=ids: hf(input_ids=ids, logits_to_keep=1),
                                     "ours": lambda ids=ids: model(ids, last_only=True)})
        hf_ms, ours_ms = medians["hf"], medians["ours"]
        ref = hf(input_ids=ids, logits_to_keep=1).logits.float()
        got = model(ids, last_only=True).float()
        rel = ((got - ref).norm() / ref.norm()).item()
        rows.append({"length": n, "hf_prefill_ms": round(hf_ms, 3), "ours_prefill_ms": round(ours_ms, 3),
                     "speedup": round(hf_ms / ours_ms, 3), "logits_rel_diff": float(f"{rel:.3g}")})
    return rows


def kernel_rows(lengths) -> dict:
    from posbench.kernels import bench as kb

    copy = kb.copy_bandwidth()
    return {"copy": copy,
            "rotary": kb.rotary_bench(tuple(lengths), copy_gb_s=copy["gb_s"], include_compile=False),
            "attention": kb.attention_bench(tuple(lengths))}


def add_prefill_floors(rows: list, models: dict, tflop_s: float):
    """Each prefill row's matrix-product rate and its share of the card's measured rate."""
    from posbench.harness.bounds import prefill_flops

    for row in rows:
        config = models[row["scheme"]].config
        rate = row["batch"] * prefill_flops(config, row["length"]) / row["prefill_ms"] / 1e9
        row.update(tflop_s=round(rate, 1), frac_of_matmul=round(rate / tflop_s, 3))


def to_markdown(result: dict) -> str:
    from posbench.kernels.bench import to_markdown as table

    lines = ["# posbench bench\n", f"Device: {result['device']}. Model: {result['model']} (random weights, "
             f"{result['dtype']}), prefill batch 1, decode batches {result.get('batches')}. Medians of "
             "CUDA-event-timed repetitions after warm-up, schemes timed round-robin; a prefill repetition is 3 "
             "forwards back to back (its time per forward).\n"]
    if result.get("ceilings"):
        lines += ["## Ceilings measured on this card (the floors below use them)\n", table([result["ceilings"]]), ""]
    for key, title in [("prefill", "Prefill per scheme"),
                       ("decode", "Decode per scheme (static cache; CUDA graph on GPU) against the bandwidth floor"),
                       ("sweep", "Sweep cells against their floor and transformers on the same prompts"),
                       ("hf", "Against transformers (Olmo2ForCausalLM, SDPA)"),
                       ("profile", "Profile: RoPE against RePo prefill, per kernel (device ms per forward)")]:
        if result.get(key):
            lines += [f"## {title}\n", table(result[key]), ""]
    kernels = result.get("kernels") or {}
    if kernels.get("copy"):
        lines += ["## Copy bandwidth\n", table([kernels["copy"]]), ""]
    for key in ("rotary", "attention"):
        if kernels.get(key):
            lines += [f"## Kernels: {key}\n", table(kernels[key]), ""]
    for section, err in result.get("errors", {}).items():
        lines.append(f"- section {section} failed: {err}")
    return "\n".join(lines) + "\n"


def run_bench(out_dir, lengths=(4096, 8192, 16384), schemes=tuple(SCHEMES), device="cuda", shape="1b",
              with_hf=True, with_kernels=True, with_profile=False, reps=7, batches=(1, 8), sweep_dir=None,
              echo=print) -> dict:
    from posbench.harness.evaluation import manifest as manifest_info
    from posbench.harness.evaluation.results import atomic_write_json, atomic_write_text

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    hf_config = olmo2_1b_config(max_positions=max(lengths)) if shape == "1b" else tiny_config(max(lengths))
    timer = Timer(device)
    info = manifest_info.device_info(device)
    result = {"device": info.get("gpu", info["cpu"]), "device_info": info, "versions": manifest_info.versions(),
              **manifest_info.git_commit(), "dtype": str(dtype).removeprefix("torch."),
              "model": "OLMo-2-1B shape" if shape == "1b" else "tiny OLMo-2", "lengths": list(lengths),
              "batches": list(batches),
              "errors": {}}
    models = build_models(hf_config, {k: SCHEMES[k] for k in schemes}, device, dtype)
    if device == "cuda":
        warm_up_gpu()
        from posbench.harness.bounds import matmul_rate
        from posbench.kernels.bench import copy_bandwidth
        result["ceilings"] = {"copy_gb_s": round(copy_bandwidth()["gb_s"], 1),
                              "matmul_tflop_s": matmul_rate()["tflop_s"]}
    ceilings = result.get("ceilings", {})

    def prefill():
        rows = prefill_rows(models, lengths, device, timer, reps=reps)
        if ceilings:
            add_prefill_floors(rows, models, ceilings["matmul_tflop_s"])
        return rows
    sections = [("prefill", prefill),
                ("decode", lambda: decode_rows(models, lengths, device, timer, batches=batches,
                                               bandwidth_gb_s=ceilings.get("copy_gb_s")))]
    if sweep_dir is not None:
        from posbench.harness.bounds import sweep_rows
        # a CPU smoke run has no measured ceilings: nominal ones (100 GB/s, 1 TFLOP/s) exercise the arithmetic
        sections.append(("sweep", lambda: sweep_rows(sweep_dir, ceilings.get("copy_gb_s", 100.0),
                                                     ceilings.get("matmul_tflop_s", 1.0))))
    if with_hf:
        base = models.get("rope") or next(iter(models.values()))
        sections.append(("hf", lambda: hf_rows(base, hf_config, lengths, device, dtype, timer)))
    if with_profile and {"rope", "repo"} <= set(models):
        sections.append(("profile", lambda: profile_rows(models, lengths, device, pair=("rope", "repo"))))
    if with_kernels and device == "cuda":
        sections.append(("kernels", lambda: kernel_rows(lengths)))
    for name, fn in sections:
        echo(f"bench: {name} ...")
        try:
            result[name] = fn()
        except Exception as err:  # one failing section must not hide the others
            result["errors"][name] = f"{type(err).__name__}: {err}"[:500]
            echo(f"bench: {name} failed: {result['errors'][name]}")
    out = Path(out_dir)
    atomic_write_json(out / "bench.json", result)
    atomic_write_text(out / "bench.md", to_markdown(result))
    return result


def save_random_checkpoint(path, tokenizer_path, shape="1b", device="cuda", max_positions=16384):
    """An OLMo-2-1B-shaped RoPE checkpoint with random weights (bf16) and the given tokenizer, for timing sweeps
    with real prompts. Other schemes run it through a forced scheme (nope, hybrid, repo with fresh_init=true)."""
    from posbench.harness.core.checkpoint import load_tokenizer, save_model

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = load_tokenizer(tokenizer_path)
    tokenizer.eos_token, tokenizer.pad_token = "<|endoftext|>", "<|pad|>"
    hf_config = olmo2_1b_config(max_positions=max_positions) if shape == "1b" else tiny_config(max_positions)
    hf_config.update(vocab_size=max(hf_config["vocab_size"], (len(tokenizer) + 63) // 64 * 64),
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = build_models(hf_config, {"rope": "rope"}, device, dtype)["rope"]
    return save_model(model, path, tokenizer)
