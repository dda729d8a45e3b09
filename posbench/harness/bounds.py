"""The floors `eval.py bench` puts next to every figure: what the card's memory bandwidth and matrix-product rate
allow, computed from the model's shape and the work actually done.

    decode step   bytes = every weight read once (the embedding table only if tied: then it is the LM head)
                          + every live sequence's KV cache read once; floor = bytes / copy bandwidth
    prefill       FLOPs = 2 x N x (weights of the layers) + causal attention 2 x 2 x N^2/2 x heads x head_dim per
                          layer + the LM head at the last position; floor = FLOPs / measured matmul rate
    a sweep cell  the sum of its samples' prefill floors, plus decode steps at `batch` sequences per step: each step
                  reads the weights once and each sequence's cache at its real length (prompt + tokens so far)

Bandwidth and matrix rate are measured on the card (posbench.kernels.bench.copy_bandwidth, matmul_rate here), not
taken from the datasheet: they are what a kernel can reach.
"""
import json
import statistics
from pathlib import Path

import torch


def weight_bytes(model) -> int:
    """Bytes of the weights one decode step reads: all of them, less the embedding table when it is not also the
    LM head (a step reads one row of it)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if model.lm_head is not None:
        total -= model.embed_tokens.weight.numel() * model.embed_tokens.weight.element_size()
    return total


def kv_bytes_per_token(config, element_size: int) -> int:
    return 2 * config.num_layers * config.num_kv_heads * config.head_dim * element_size


def decode_floor_ms(model, context: int, batch: int, bandwidth_gb_s: float) -> float:
    """The fewest milliseconds one decode step of `batch` sequences of `context` cached tokens can take."""
    element = model.embed_tokens.weight.element_size()
    moved = weight_bytes(model) + batch * context * kv_bytes_per_token(model.config, element)
    return moved / bandwidth_gb_s / 1e6


def prefill_flops(config, n: int) -> float:
    """Matrix-product FLOPs of one unpadded causal prefill of n tokens, logits of the last position only."""
    d, f, hd = config.hidden_size, config.intermediate_size, config.head_dim
    per_layer = d * (config.num_heads + 2 * config.num_kv_heads) * hd + config.num_heads * hd * d + 3 * d * f
    attention = 2 * 2 * (n * n / 2) * config.num_heads * hd
    return config.num_layers * (2 * n * per_layer + attention) + 2 * d * config.vocab_size


def matmul_rate(size: int = 8192, reps: int = 20) -> dict:
    """Measured bf16 matrix-product rate (TFLOP/s) on random inputs: the ceiling prefill is compared with."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    return {"size": size, "ms": round(ms, 4), "tflop_s": round(2 * size ** 3 / ms / 1e9, 1)}


def cell_floor_s(config, weight_bytes_: int, element_size: int, samples: list, batch: int, bandwidth_gb_s: float,
                 tflop_s: float) -> float:
    """The fewest seconds a cell of (prompt tokens, new tokens) samples can take with `batch` sequences decoded per
    step: prefill floors, plus the weights read once per step (total new tokens / batch steps) and every sequence's
    cache read at each of its steps."""
    prefill = sum(prefill_flops(config, p) for p, _ in samples) / (tflop_s * 1e12)
    steps = sum(o for _, o in samples) / batch
    kv = kv_bytes_per_token(config, element_size) * sum(o * p + o * (o - 1) / 2 for p, o in samples)
    return prefill + (steps * weight_bytes_ + kv) / (bandwidth_gb_s * 1e9)


def sweep_rows(run_dir, bandwidth_gb_s: float, tflop_s: float, dtype_bytes: int = 2) -> list:
    """Per cell of a finished run: samples/s measured, the floor's samples/s from its real prompt and output lengths
    at the batch size it ran with, their ratio, and transformers' samples/s on the same prompts at the same batch
    size where RUN_DIR/hf_baseline.json has it (scripts/hf_generate_baseline.py)."""
    from posbench.harness.core.model import ModelConfig
    from posbench.harness.evaluation.results import RunDir, length_label

    run = RunDir(run_dir)
    manifest = run.read_manifest()
    hf_file = Path(run_dir) / "hf_baseline.json"
    hf = {}
    if hf_file.exists():
        base = json.loads(hf_file.read_text())
        hf = {(base["model"], r["task"], str(r["length"])): r for r in base["rows"]}
    rows = []
    for model in manifest["models"]:
        config_json = json.loads((Path(model["path"]) / "config.json").read_text())
        config = ModelConfig.from_hf(config_json)
        weights = meta_weight_bytes(config, (model["scheme"], model["scheme_params"]), dtype_bytes)
        for key, timing in manifest["cells"].items():
            label, task, length = key.split("/")
            if label != model["label"] or not timing.get("samples_per_s"):
                continue
            records = [r for r in run.sample_log(label, task, None if length == length_label(None) else
                                                 int(length)).read() if r.get("skip_reason") is None]
            if not records:
                continue
            batch = max(r.get("timings", {}).get("batch_size", 1) for r in records)
            samples = [(r["token_count"], r["new_tokens"]) for r in records]
            floor = cell_floor_s(config, weights, dtype_bytes, samples, batch, bandwidth_gb_s, tflop_s)
            row = {"model": label, "task": task, "length": length, "samples": len(records), "batch": batch,
                   "mean_prompt": round(sum(p for p, _ in samples) / len(samples)),
                   "mean_new": round(sum(o for _, o in samples) / len(samples), 1),
                   "samples_per_s": timing["samples_per_s"], "floor_samples_per_s": round(len(records) / floor, 3),
                   "frac_of_floor": round(timing["samples_per_s"] * floor / len(records), 3)}
            other = hf.get((label, task, length))
            if other:
                row.update(hf_batch=other.get("batch_size", 1), hf_samples_per_s=other["hf_samples_per_s"],
                           vs_hf=round(timing["samples_per_s"] / other["hf_samples_per_s"], 2),
                           same_prediction=other["same_prediction"])
            rows.append(row)
    return rows


def meta_weight_bytes(config, scheme, dtype_bytes: int) -> int:
    """weight_bytes of the model `scheme` makes of this config, counted on the meta device (nothing allocated): a
    RePo scheme forced onto a RoPE checkpoint has maps its files do not hold."""
    from posbench.harness.core.checkpoint import as_scheme
    from posbench.harness.core.model import Transformer

    with torch.device("meta"):
        model = Transformer(config, as_scheme(scheme))
    return weight_bytes(model) // model.embed_tokens.weight.element_size() * dtype_bytes
