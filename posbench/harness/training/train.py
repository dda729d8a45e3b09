"""`eval.py train TRAIN.yaml`: train a model in any scheme, from scratch or from a checkpoint
(posbench/harness/training/config.py
describes the file; posbench/harness/training/data.py the data).

    out/step_00500/ ...        checkpoints in the format posbench.harness.core.checkpoint.load_model reads (tokenizer
    included)
    out/final/                 the last one, with a model card (README.md)
    out/train_state.pt         model, optimizer, step and RNG states of the newest checkpoint (for --resume)
    out/loss.csv, loss.png     per step: lr, loss, answer loss and accuracy, grad norm, tokens, time
    out/eval.csv               the optional greedy probes (train.eval)
    out/train_manifest.json    config, versions, git commit, device, tokens seen, final loss, wall time

Recipe (the RePo authors' continual pre-training, shared/reference/repo-model.md §7, unless the file says
otherwise): AdamW with fp32 master weights, betas (0.9, 0.95), weight decay on the matrices of linear layers only
(attention, MLP, RePo maps, an untied lm_head; not embeddings, norms or biases: the authors also decay norms),
global grad-norm clipping, z-loss on the logsumexp, bf16 autocast on CUDA, warmup then cosine or linear decay to a
floor. A scratch model draws every matrix and the embedding from N(0, init_std) truncated at 3 std (OLMo-2's
init); RePo maps use the scheme's init_std. The loss per token is cross-entropy (answer tokens of synthetic samples
optionally weighted up) + z_loss * logsumexp^2, summed and divided by the tokens of the global batch, so the
update does not depend on how the batch is split over micro-steps and processes.

Multi-GPU: `torchrun --nproc_per_node N eval.py train ...` (DDP; NCCL on CUDA, gloo on CPU). Each process reads
its own rows of the global batch; rank 0 writes everything.
"""
import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from posbench.harness.files import RunLock, publish_folder
from posbench.harness.training.config import TrainConfig, TrainConfigError
from posbench.harness.training.data import KIND_ANSWER, RowSampler, load_data
from posbench.harness.training.outputs import (
    EVAL_COLUMNS,
    LOSS_COLUMNS,
    append_csv,
    atomic_torch_save,
    export,
    model_card,
    truncate_csv,
    write_manifest,
)
from posbench.position_schemes import format_layer_kinds

STATE_FORMAT = 2   # 2: nothing but tensors and plain Python values, so it loads with torch.load(weights_only=True)
# Keys that may change between an interrupted run and its resume; everything else must match.
RESUMABLE_TRAIN_KEYS = {"checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "eval", "device",
                        "compile", "save_dtype", "batch_size", "grad_accum"}  # the global batch is checked apart


# ---- setup --------------------------------------------------------------------------------------------------------

class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    def __init__(self, device_kind: str):
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = torch.device("cpu")
        if device_kind == "cuda":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def training_scheme(cfg: TrainConfig):
    """The scheme to train in; converting a checkpoint to a scheme with learned positions (one that takes
    fresh_init, e.g. RePo) initialises the position weights the checkpoint lacks."""
    from posbench.harness.core.checkpoint import as_scheme
    from posbench.position_schemes import SchemeError, get_scheme, parse_scheme_spec

    try:
        name, params = parse_scheme_spec(cfg.scheme)
        if cfg.model["init"] == "checkpoint" and "fresh_init" in get_scheme(name, **params).param_types:
            params.setdefault("fresh_init", True)
        return as_scheme((name, params))
    except SchemeError as err:
        raise TrainConfigError(f"{cfg.path}: scheme: {err}") from None


def check_model(cfg: TrainConfig) -> int:
    """Validate the model section and the scheme against it, without building anything; returns the model's
    max_position_embeddings after checking train.seq_len (and the eval length) against it."""
    from posbench.harness.core.checkpoint import inspect_model
    from posbench.harness.core.model import ModelConfig, Transformer
    from posbench.position_schemes import SchemeError

    scheme = training_scheme(cfg)
    if cfg.model["init"] == "scratch":
        try:
            config = ModelConfig.from_hf({"vocab_size": 65536, **cfg.model["config"]})  # vocab: the tokenizer's
        except ValueError as err:
            raise TrainConfigError(f"{cfg.path}: model.config: {err}") from None
        try:
            with torch.device("meta"):
                Transformer(config, scheme)  # a scheme that does not fit the layers fails here
        except SchemeError as err:
            raise TrainConfigError(f"{cfg.path}: scheme: {err}") from None
        max_positions, where = config.max_position_embeddings, "model.config max_position_embeddings"
    else:
        try:
            max_positions = inspect_model(cfg.model["path"], scheme)["max_position_embeddings"]
        except ValueError as err:  # CheckpointError or SchemeError
            raise TrainConfigError(f"{cfg.path}: model.path: {err}") from None
        where = f"max_position_embeddings of {cfg.model['path']}/config.json"
    for key, length in (("train.seq_len", cfg.train["seq_len"]),
                        ("train.eval.length", (cfg.train["eval"] or {}).get("length", 0))):
        if length > max_positions:
            raise TrainConfigError(f"{cfg.path}: {key} {length} is above the model's {max_positions} positions "
                                   f"({where}); raise it or train shorter")
    return max_positions


def get_tokenizer(cfg: TrainConfig, data_paths: dict, out: Path, log):
    from posbench.harness.core.checkpoint import load_tokenizer
    from posbench.harness.training.tokenizer import EOS, PAD, tokenizer_for_config

    if isinstance(cfg.tokenizer, dict):
        return tokenizer_for_config(cfg, data_paths, out, log=log)
    path = cfg.tokenizer or cfg.model["path"]
    tokenizer = load_tokenizer(path)
    if tokenizer is None:
        raise TrainConfigError(f"{cfg.path}: {path} has no tokenizer; set key 'tokenizer'")
    vocab = tokenizer.get_vocab()
    if tokenizer.eos_token_id is None and EOS in vocab:
        tokenizer.eos_token = EOS
    if tokenizer.eos_token_id is None:
        raise TrainConfigError(f"{cfg.path}: tokenizer {path} has no end-of-text token (eos_token)")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = PAD if PAD in vocab else tokenizer.eos_token
    return tokenizer


def init_weights(model, std: float):
    """Scratch init: every matrix and the embedding ~ N(0, std) truncated at 3 std, biases 0, norms 1, then the
    position layers' weights their own way (last, so the other weights draw the same numbers in every scheme).
    Weights are drawn one checkpoint weight at a time (q, k, v apart although fused), in checkpoint order."""
    from posbench.harness.core.checkpoint import checkpoint_tensors, position_weight_layers

    position = position_weight_layers(model)
    with torch.no_grad():
        for name, p in checkpoint_tensors(model).items():
            if name in position:
                continue
            if p.dim() >= 2:
                torch.nn.init.trunc_normal_(p, 0.0, std, -3 * std, 3 * std)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.fill_(1.0)
        for layer in model.layers:
            layer.self_attn.reset_position_parameters()


def build_model(cfg: TrainConfig, tokenizer):
    """(model in fp32 on CPU, description). Seeded with train.seed, so a run's initial weights are fixed."""
    from posbench.harness.core.checkpoint import load_model
    from posbench.harness.core.model import ModelConfig, Transformer

    scheme = training_scheme(cfg)
    torch.manual_seed(cfg.train["seed"])
    if cfg.model["init"] == "scratch":
        hf = dict(cfg.model["config"])
        hf.setdefault("vocab_size", (len(tokenizer) + 63) // 64 * 64)
        hf.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=tokenizer.bos_token_id)
        config = ModelConfig.from_hf(hf)
        model = Transformer(config, scheme)
        torch.manual_seed(cfg.train["seed"])  # the same draws in every scheme: weights they share start equal
        init_weights(model, cfg.model["init_std"])
        origin = "scratch"
    else:
        model, _, info = load_model(cfg.model["path"], scheme)
        origin = f"{cfg.model['path']} ({info['detected_scheme']})"
        if info["fresh_position_layers"]:
            origin += f", fresh position weights in layers {info['fresh_position_layers']}"
    if len(tokenizer) > model.config.vocab_size:
        raise TrainConfigError(f"{cfg.path}: the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                               f"{model.config.vocab_size}")
    return model.float().train(), origin


def param_groups(model, weight_decay: float) -> list:
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith("embed_tokens") else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def lr_at(step: int, t: dict) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then decay to lr * lr_floor at the end."""
    lr, warmup, steps = t["lr"], t["warmup"], t["steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if t["decay"] == "constant":
        return lr
    progress = (step - warmup) / max(1, steps - 1 - warmup)
    floor = lr * t["lr_floor"]
    shape = 1 - progress if t["decay"] == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return floor + (lr - floor) * shape


def batch_loss(logits, targets, kinds, answer_weight: float, z_loss: float):
    """(summed objective, stats [ce sum, tokens, answer ce sum, answer tokens, answer correct, objective])."""
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)
    ce = lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = (kinds > 0).float()
    answer = (kinds == KIND_ANSWER).float()
    weight = real + (answer_weight - 1.0) * answer
    objective = (weight * ce).sum() + z_loss * (real * lse.square()).sum()
    with torch.no_grad():
        correct = ((logits.argmax(-1) == targets).float() * answer).sum()
        stats = torch.stack([(ce * real).sum(), real.sum(), (ce * answer).sum(), answer.sum(), correct,
                             objective.detach()])
    return objective, stats


def fingerprint(cfg: TrainConfig, model, tokenizer_id: str, world: int) -> dict:
    """What must not change between a run and its resume."""
    data = {k: v for k, v in cfg.raw["data"].items() if k not in ("root", "cache")}
    train = {k: v for k, v in cfg.train.items() if k not in RESUMABLE_TRAIN_KEYS}
    hf = {k: v for k, v in model.config.to_hf().items()}
    return {"model": hf, "scheme": model.scheme.spec(), "layer_kinds": list(model.layer_kinds),
            "tokenizer": tokenizer_id, "data": data, "train": train,
            "global_batch_rows": cfg.rows_per_step * world}


def first_difference(old, new, prefix=""):
    """The dotted key where two nested values first differ, with both values; None when equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            found = first_difference(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
            if found:
                return found
        return None
    return None if old == new else (prefix, old, new)


# ---- the run ------------------------------------------------------------------------------------------------------

def prepare(cfg: TrainConfig, out: Path, data_root=None, workers: int = 1, log=print):
    """Tokenizer and data (and the data cache when data.cache is set), without training: what `--prepare` does."""
    from posbench.harness.evaluation.data import data_paths
    from posbench.harness.training.tokenizer import tokenizer_hash

    paths = data_paths(data_root or cfg.data["root"])
    check_model(cfg)
    tokenizer = get_tokenizer(cfg, paths, out, log)
    dataset = load_data(cfg, tokenizer, paths, tokenizer_hash(tokenizer), workers=workers, log=log)
    return tokenizer, dataset


@dataclasses.dataclass
class Run:
    """Everything one training process holds."""
    cfg: TrainConfig
    out: Path
    env: Dist
    tokenizer: object
    dataset: object
    model: torch.nn.Module          # the plain model (saved, evaluated)
    net: torch.nn.Module            # what a step calls: the model, wrapped by DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    fingerprint: dict
    start: int                      # optimizer steps already taken
    elapsed_before: float           # training seconds before a resume
    info: dict                      # the manifest
    eval_samples: dict = None
    log: object = print


def train(cfg: TrainConfig, out, *, resume=False, stop_at=None, data_root=None, progress=True, command=None,
          prepare_workers=None) -> dict:
    """Run (or resume) the training a config describes into `out`; returns the manifest."""
    out, t = Path(out), cfg.train
    device = t["device"] if t["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError(f"{cfg.path}: train.device is cuda, but torch sees no CUDA device")
    if resume and not (out / "train_state.pt").is_file():
        raise TrainConfigError(f"--resume: {out} has no train_state.pt to resume from")
    if out.exists() and not out.is_dir():
        raise TrainConfigError(f"--out {out}: is a file, not a folder")
    if not resume and ((out / "train_state.pt").is_file() or (out / "final").is_dir()):
        raise TrainConfigError(f"{out} already holds a training run; pass --resume to continue it, or another --out")
    if stop_at is not None and not 0 < stop_at <= t["steps"]:
        raise TrainConfigError(f"--stop-at {stop_at} must be between 1 and train.steps ({t['steps']})")
    check_model(cfg)  # the cheap checks, before any tokenizer or data work
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # DataLoader workers fork after the tokenizer ran
    env = Dist(device)
    try:
        # Rank 0 writes everything: it alone holds the folder, against a second `train` into the same --out.
        with RunLock(out, "training folder") if env.main else contextlib.nullcontext():
            run = setup(cfg, out, env, resume, data_root, prepare_workers, command)
            if stop_at is not None and stop_at <= run.start:
                raise TrainConfigError(f"--stop-at {stop_at}: the run is already at step {run.start}")
            return loop(run, stop_at, progress)
    finally:
        env.close()


def setup(cfg, out, env, resume, data_root, prepare_workers, command) -> Run:
    """Tokenizer, data, model and optimizer (restored from train_state.pt on resume). Rank 0 trains the tokenizer
    and fills the data cache first; the other ranks then read them."""
    from posbench.harness.evaluation import manifest as facts
    from posbench.harness.evaluation.data import data_paths
    from posbench.harness.training.tokenizer import tokenizer_hash

    started = time.time()
    log = print if env.main else (lambda *a, **k: None)
    paths = data_paths(data_root or cfg.data["root"])
    workers = prepare_workers or max(1, (os.cpu_count() or 2) // env.world)
    for main_turn in (True, False):
        if env.main == main_turn:
            out.mkdir(parents=True, exist_ok=True)
            tokenizer = get_tokenizer(cfg, paths, out, log)
            dataset = load_data(cfg, tokenizer, paths, tokenizer_hash(tokenizer), workers=workers,
                                build_missing=env.main, log=log)
        env.barrier()
    model, origin = build_model(cfg, tokenizer)
    fp = fingerprint(cfg, model, tokenizer_hash(tokenizer), env.world)
    model.to(env.device)
    t = cfg.train
    optimizer = torch.optim.AdamW(param_groups(model, t["weight_decay"]), lr=t["lr"], betas=tuple(t["betas"]),
                                  eps=t["eps"], fused=env.device.type == "cuda")
    start, elapsed_before = 0, 0.0
    if resume:
        state = load_train_state(out / "train_state.pt")
        diff = first_difference(state["fingerprint"], fp)
        if diff:
            key, old, new = diff
            raise TrainConfigError(f"--resume: {out} was trained with {key} = {json.dumps(old, default=str)}, this "
                                   f"config has {json.dumps(new, default=str)}; resume with the same settings or "
                                   f"start a new run")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng(state["rng"])
        start, elapsed_before = state["step"], state["elapsed_s"]
        log(f"resuming {out} at step {start}")
    net = model
    if env.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
    if t["compile"]:
        net = torch.compile(net)
    rows = cfg.rows_per_step * env.world
    counts = model.parameter_counts()
    info = {"name": out.name, "status": "running", "config_file": str(cfg.path), "config": cfg.describe(),
            "command": command or " ".join(sys.argv),
            "model": {"architecture": model.config.model_type, "scheme": model.scheme.spec(),
                      "layers": format_layer_kinds(model.layer_kinds), "parameters": counts["total"],
                      "position_parameters": counts["position"], "origin": origin,
                      "max_positions": model.config.max_position_embeddings},
            "tokenizer": {"kind": "byte-level BPE trained on the data" if isinstance(cfg.tokenizer, dict)
                          else str(cfg.tokenizer or cfg.model["path"]), "size": len(tokenizer),
                          "id": tokenizer_hash(tokenizer)},
            "data": {"sources": cfg.describe()["data"]["sources"], "token_shares": {}},
            "world_size": env.world, "global_batch_rows": rows, "tokens_per_step": rows * t["seq_len"],
            "versions": facts.versions(), **facts.git_commit(), "device": facts.device_info(str(env.device)),
            "started": facts.now(), "started_at": started}
    eval_samples = _eval_samples(cfg, tokenizer, paths) if env.main and t["eval"] else None
    return Run(cfg, out, env, tokenizer, dataset, model, net, optimizer, fp, start, elapsed_before, info,
               eval_samples, log)


def train_step(run: Run, step: int, batches, autocast, kinds_seen) -> dict:
    """Optimizer step `step` (0-based) over grad_accum micro-batches; returns its loss.csv row (over all ranks)."""
    t, env = run.cfg.train, run.env
    B, A, T = t["batch_size"], t["grad_accum"], t["seq_len"]
    lr = lr_at(step, t)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    stats = torch.zeros(6, device=env.device)
    for micro in range(A):
        x, y, kinds = next(batches)
        kinds_seen += torch.bincount(kinds.flatten().long(), minlength=4).double()
        x, y, kinds = (v.to(env.device, non_blocking=True) for v in (x, y, kinds))
        sync = run.net.no_sync() if env.world > 1 and micro < A - 1 else contextlib.nullcontext()
        with sync, autocast:
            logits = run.net(x)
        objective, s = batch_loss(logits, y, kinds, t["answer_loss_weight"], t["z_loss"])
        (objective / (B * T * A)).backward()  # DDP then averages over ranks: the mean over the global batch
        stats += s
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), t["grad_clip"] or float("inf"))
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if env.world > 1:
        dist.all_reduce(stats)
    ce, n, answer_ce, n_answer, correct, objective = stats.tolist()
    tokens = run.info["tokens_per_step"]
    loss = ce / max(n, 1)
    if not math.isfinite(loss):
        raise FloatingPointError(f"step {step + 1}: the loss is {loss}; lower train.lr or check the data")
    return {"step": step + 1, "lr": lr, "loss": loss, "objective": objective / tokens,
            "answer_loss": answer_ce / n_answer if n_answer else "",
            "answer_acc": correct / n_answer if n_answer else "", "grad_norm": float(grad_norm),
            "tokens": (step + 1) * tokens}


def loop(run: Run, stop_at=None, progress=True) -> dict:
    """Train from run.start to train.steps (or stop_at): log every step, probe, checkpoint, export final/."""
    env, out, t = run.env, run.out, run.cfg.train
    if env.main:
        for name, columns in (("loss.csv", LOSS_COLUMNS), ("eval.csv", EVAL_COLUMNS)):
            truncate_csv(out / name, columns, run.start)
    loader = torch.utils.data.DataLoader(
        run.dataset, batch_size=t["batch_size"],
        sampler=RowSampler(run.start, t["steps"], t["batch_size"], t["grad_accum"], env.rank, env.world),
        num_workers=t["num_workers"], pin_memory=env.device.type == "cuda",
        prefetch_factor=4 if t["num_workers"] else None)
    batches = iter(loader)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if t["bf16"] and env.device.type == "cuda" \
        else contextlib.nullcontext()
    bar = None
    if env.main and progress:
        from tqdm import tqdm
        bar = tqdm(total=t["steps"], initial=run.start, unit="step", dynamic_ncols=True, mininterval=1.0)
    say = bar.write if bar is not None else run.log
    kinds_seen = torch.zeros(4, dtype=torch.float64)
    step_times, began, done = [], time.time(), run.start

    def elapsed():
        return run.elapsed_before + time.time() - began

    for step in range(run.start, t["steps"]):
        tick = time.perf_counter()
        row = train_step(run, step, batches, autocast, kinds_seen)
        done = step + 1
        step_times.append(time.perf_counter() - tick)
        row.update(elapsed_s=round(elapsed(), 3), tokens_per_s=round(run.info["tokens_per_step"] / step_times[-1]))
        if env.main:
            append_csv(out / "loss.csv", LOSS_COLUMNS, row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,}", lr=f"{row['lr']:.2e}")
            if done % t["log_every"] == 0 or done == t["steps"]:
                answer = f" answer {row['answer_loss']:.3f} acc {row['answer_acc']:.2f}" if row["answer_loss"] else ""
                say(f"step {done}/{t['steps']} loss {row['loss']:.4f}{answer} lr {row['lr']:.2e} "
                    f"grad {row['grad_norm']:.2f} {row['tokens_per_s']:,} tok/s")
        if run.eval_samples and (done % t["eval"]["every"] == 0 or done == t["steps"]):
            for task, score, n in _run_eval(run.model, run.tokenizer, run.eval_samples, env.device):
                append_csv(out / "eval.csv", EVAL_COLUMNS, {"step": done, "task": task, "score": score, "n": n})
                say(f"step {done} eval {task} @{t['eval']['length']}: {score:.1f} (n={n})")
        if done % t["checkpoint_every"] == 0 or done in (t["steps"], stop_at):
            if env.main:
                save_checkpoint(run, done, elapsed())
                write_manifest(run.info, out, done, step_times, kinds_seen, elapsed(), "running")
            env.barrier()
        if done == stop_at:
            break
    if bar is not None:
        bar.close()
    if env.main:
        finished = done == t["steps"]
        write_manifest(run.info, out, done, step_times, kinds_seen, elapsed(),
                       "finished" if finished else f"stopped at step {done}")
        if finished and not (out / "final").is_dir():
            def build_final(folder):
                export(run.model, folder, run.tokenizer, t["save_dtype"])
                (folder / "README.md").write_text(model_card(run.info))
                shutil.copy(out / "train_manifest.json", folder / "train_manifest.json")
            final = publish_folder(build_final, out / "final")  # a crash mid-export leaves no half-written final/
            run.log(f"final: {final}  (loss {run.info['final_loss']:.4f}, {run.info['tokens_seen']:,} tokens, "
                    f"{run.info['tokens_per_s']:,.0f} tokens/s, {run.info['wall_time_s']:.0f} s)")
    env.barrier()
    return run.info


def save_checkpoint(run: Run, step: int, elapsed: float):
    """step_XXXXX/ first, then train_state.pt (atomically): a crash in between leaves the previous state usable."""
    t = run.cfg.train
    export(run.model, run.out / f"step_{step:05d}", run.tokenizer, t["save_dtype"])
    if t["keep_checkpoints"]:
        for old in sorted(run.out.glob("step_*"))[:-t["keep_checkpoints"]]:
            shutil.rmtree(old, ignore_errors=True)
    atomic_torch_save({"format": STATE_FORMAT, "step": step, "model": run.model.state_dict(),
                       "optimizer": run.optimizer.state_dict(), "rng": _get_rng(), "fingerprint": run.fingerprint,
                       "elapsed_s": elapsed}, run.out / "train_state.pt")


def load_train_state(path: Path) -> dict:
    """train_state.pt, read with weights_only=True: a crafted file cannot run code, a damaged one is an error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError for a damaged file
        raise TrainConfigError(f"--resume: {path} cannot be read safely ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else 'truncated'}); it is damaged, or was "
                               "written by an older posbench: start a new run") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise TrainConfigError(f"--resume: {path} is not a posbench training state of format {STATE_FORMAT} "
                               f"(found {found!r})")
    return state


def _get_rng() -> dict:
    # numpy's generator state as plain ints: weights_only loading refuses numpy arrays.
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, key.tolist(), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict):
    random.setstate(state["python"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _eval_samples(cfg: TrainConfig, tokenizer, paths: dict) -> dict:
    """{task: (spec, samples)} for the greedy probes: the tasks' evaluation samples (their own seed, 42)."""
    from posbench.tasks import TaskError, TaskRegistry, build_samples

    e = cfg.train["eval"]
    registry = TaskRegistry(include_paths=cfg.data["task_paths"])
    out = {}
    for name in e["tasks"]:
        try:
            spec = registry.get(name)
            out[name] = (spec, build_samples(spec, tokenizer, e["length"], num_samples=e["samples"], data_paths=paths))
        except TaskError as err:
            raise TrainConfigError(f"{cfg.path}: train.eval: {err}") from None
    return out


def _run_eval(model, tokenizer, samples_by_task: dict, device) -> list:
    """[(task, score 0-100, n)]: greedy generation in fp32 through the evaluation engine, scored by the task."""
    from posbench.harness.evaluation.engine import TorchEngine
    from posbench.tasks import aggregate, score_sample

    engine = TorchEngine(model, tokenizer, {}, device.type, torch.float32)
    model.eval()
    results = []
    try:
        for task, (spec, samples) in samples_by_task.items():
            scores = [score_sample(spec, s, g.text) for s, g in engine.generate_samples(samples)]
            results.append((task, aggregate(spec, scores)[spec.primary_metric], len(scores)))
    finally:
        model.train()
    return results
