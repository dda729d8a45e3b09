"""`eval.py train TRAIN.yaml`: train a model in any scheme, from scratch or from a checkpoint (harness/train_config.py
describes the file; harness/train_data.py the data).

    out/step_00500/ ...        checkpoints in the format harness.checkpoint.load_model reads (tokenizer included)
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
import copy
import csv
import json
import math
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from harness.train_config import TrainConfig, TrainConfigError
from harness.train_data import KIND_ANSWER, RowSampler, load_data

LOSS_COLUMNS = ["step", "lr", "loss", "objective", "answer_loss", "answer_acc", "grad_norm", "tokens", "elapsed_s",
                "tokens_per_s"]
STATE_FORMAT = 1
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
    """The scheme to train in; converting a checkpoint to RePo initialises the maps it lacks."""
    from harness.checkpoint import as_scheme
    from position_schemes import SchemeError, parse_scheme_spec

    try:
        name, params = parse_scheme_spec(cfg.scheme)
        if name == "repo" and cfg.model["init"] == "checkpoint":
            params.setdefault("fresh_init", True)
        return as_scheme((name, params))
    except SchemeError as err:
        raise TrainConfigError(f"{cfg.path}: scheme: {err}") from None


def check_model(cfg: TrainConfig) -> int:
    """Validate the model section and the scheme against it, without building anything; returns the model's
    max_position_embeddings after checking train.seq_len (and the eval length) against it."""
    from harness.checkpoint import inspect_model
    from harness.model import ModelConfig, Transformer
    from position_schemes import SchemeError

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
    from harness.checkpoint import load_tokenizer
    from harness.tokenizer_training import EOS, PAD, tokenizer_for_config

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
    """Scratch init: every matrix and the embedding ~ N(0, std) truncated at 3 std, biases 0, norms 1, RePo maps
    with the scheme's own init_std."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".repo." in name:
                continue
            if p.dim() >= 2:
                torch.nn.init.trunc_normal_(p, 0.0, std, -3 * std, 3 * std)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.fill_(1.0)
        for layer in model.layers:
            if layer.self_attn.repo is not None:
                layer.self_attn.repo.reset_parameters(model.scheme.params["init_std"])


def build_model(cfg: TrainConfig, tokenizer):
    """(model in fp32 on CPU, description). Seeded with train.seed, so a run's initial weights are fixed."""
    from harness.checkpoint import load_model
    from harness.model import ModelConfig, Transformer

    scheme = training_scheme(cfg)
    torch.manual_seed(cfg.train["seed"])
    if cfg.model["init"] == "scratch":
        hf = dict(cfg.model["config"])
        hf.setdefault("vocab_size", (len(tokenizer) + 63) // 64 * 64)
        hf.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=tokenizer.bos_token_id)
        config = ModelConfig.from_hf(hf)
        model = Transformer(config, scheme)
        init_weights(model, cfg.model["init_std"])
        origin = "scratch"
    else:
        model, _, info = load_model(cfg.model["path"], scheme)
        origin = f"{cfg.model['path']} ({info['detected_scheme']})"
        if info["fresh_repo_layers"]:
            origin += f", fresh RePo maps in layers {info['fresh_repo_layers']}"
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


# ---- outputs ------------------------------------------------------------------------------------------------------

def export(model, path: Path, tokenizer, dtype: str) -> Path:
    from harness.checkpoint import save_model

    if dtype != "float32":
        model = copy.deepcopy(model).to(getattr(torch, dtype))
    return save_model(model, path, tokenizer)


def atomic_torch_save(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_csv(path: Path) -> list:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def truncate_csv(path: Path, columns: list, last_step: int):
    """Keep the rows up to last_step (a resumed run rewrites what the interrupted one logged after its state)."""
    rows = [r for r in read_csv(path) if int(r["step"]) <= last_step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def plot_loss(out: Path):
    rows = read_csv(out / "loss.csv")
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def column(key):
        points = [(int(r["step"]), float(r[key])) for r in rows if r[key] not in ("", "nan")]
        return [p[0] for p in points], [p[1] for p in points]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(*column("loss"), label="all tokens", lw=1)
    if column("answer_loss")[0]:
        ax1.plot(*column("answer_loss"), label="answer tokens", lw=1)
        ax2.plot(*column("answer_acc"), lw=1, label="answer-token accuracy")
    evals = read_csv(out / "eval.csv")
    for task in dict.fromkeys(r["task"] for r in evals):
        points = [(int(r["step"]), float(r["score"]) / 100) for r in evals if r["task"] == task]
        ax2.plot([p[0] for p in points], [p[1] for p in points], "o--", ms=3, lw=0.8, label=f"{task} (greedy)")
    ax1.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="training loss")
    ax2.set(xlabel="step", ylim=(0, 1.02), title="answer accuracy")
    ax1.legend()
    if ax2.lines:
        ax2.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)


def model_card(m: dict) -> str:
    """README.md for an exported model, from the run's manifest."""
    scheme = m["model"]["scheme"]
    sources = "\n".join(f"| {s['name']} | {s.get('task') or ', '.join(s['files'])} | {s['weight']:g} | "
                        f"{', '.join(map(str, s.get('lengths') or [])) or '-'} | {s.get('samples', '-')} |"
                        for s in m["data"]["sources"])
    shares = ", ".join(f"{k} {v:.1%}" for k, v in m["data"]["token_shares"].items())
    t = m["config"]["train"]
    lines = [
        f"# {m['name']}",
        "",
        f"A small {m['model']['architecture']} model trained by posbench (`eval.py train`) in scheme "
        f"`{scheme}` ({m['model']['layers']}). {m['model']['parameters']:,} parameters"
        + (f", of which RePo {m['model']['repo_parameters']:,}" if m["model"]["repo_parameters"] else "") + ".",
        "",
        "| | |", "|---|---|",
        f"| initialised from | {m['model']['origin']} |",
        f"| tokenizer | {m['tokenizer']['kind']}, {m['tokenizer']['size']} tokens |",
        f"| context | {t['seq_len']} tokens per row (max_position_embeddings {m['model']['max_positions']}) |",
        f"| steps | {m['step']} x {m['global_batch_rows']} rows = {m['tokens_seen']:,} tokens seen |",
        f"| optimizer | AdamW lr {t['lr']:g}, warmup {t['warmup']}, {t['decay']} decay to {t['lr_floor']:g} x lr, "
        f"betas {tuple(t['betas'])}, weight decay {t['weight_decay']:g}, clip {t['grad_clip']:g}, "
        f"z-loss {t['z_loss']:g}, answer-token weight {t['answer_loss_weight']:g} |",
        f"| final loss | {m['final_loss']:.4f} (mean of the last {m['final_loss_steps']} steps; answer tokens "
        f"{m['final_answer_loss']:.4f}, answer-token accuracy {m['final_answer_acc']:.1%}) |",
        f"| trained on | {m['device'].get('gpu') or m['device']['cpu']} x {m['world_size']}, "
        f"{m['wall_time_s'] / 60:.1f} min, {m['tokens_per_s']:,.0f} tokens/s |",
        f"| posbench commit | {m['git']['commit']}{' (dirty)' if m['git']['dirty'] else ''} |",
        "",
        "## Data",
        "",
        f"Rows are drawn by weight (synthetic seed {m['config']['data']['seed']}; evaluation uses 42). "
        f"Token shares seen: {shares}.",
        "",
        "| source | task / files | weight | lengths | distinct samples |", "|---|---|---|---|---|",
        sources,
        "",
        "## Reproduce",
        "",
        "```bash",
        m["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


# ---- the run ------------------------------------------------------------------------------------------------------

def prepare(cfg: TrainConfig, out: Path, data_root=None, workers: int = 1, log=print):
    """Tokenizer and data (and the data cache when data.cache is set), without training: what `--prepare` does."""
    from harness.data import data_paths
    from harness.tokenizer_training import tokenizer_hash

    paths = data_paths(data_root or cfg.data["root"])
    check_model(cfg)
    tokenizer = get_tokenizer(cfg, paths, out, log)
    dataset = load_data(cfg, tokenizer, paths, tokenizer_hash(tokenizer), workers=workers, log=log)
    return tokenizer, dataset


def train(cfg: TrainConfig, out, *, resume=False, stop_at=None, data_root=None, progress=True, command=None,
          prepare_workers=None) -> dict:
    """Run (or resume) the training a config describes into `out`; returns the manifest."""
    from harness import manifest as facts
    from harness.data import data_paths
    from harness.tokenizer_training import tokenizer_hash

    started = time.time()
    out = Path(out)
    t = cfg.train
    device_kind = t["device"] if t["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device_kind == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError(f"{cfg.path}: train.device is cuda, but torch sees no CUDA device")
    state_file = out / "train_state.pt"
    if resume and not state_file.is_file():
        raise TrainConfigError(f"--resume: {out} has no train_state.pt to resume from")
    if not resume and (state_file.is_file() or (out / "final").is_dir()):
        raise TrainConfigError(f"{out} already holds a training run; pass --resume to continue it, or another --out")
    if stop_at is not None and not 0 < stop_at <= t["steps"]:
        raise TrainConfigError(f"--stop-at {stop_at} must be between 1 and train.steps ({t['steps']})")
    check_model(cfg)  # cheap checks before any tokenizer or data work

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    env = Dist(device_kind)
    log = print if env.main else (lambda *a, **k: None)
    try:
        paths = data_paths(data_root or cfg.data["root"])
        workers = prepare_workers or max(1, (os.cpu_count() or 2) // max(env.world, 1))
        if env.main:
            out.mkdir(parents=True, exist_ok=True)
            tokenizer = get_tokenizer(cfg, paths, out, log)
            dataset = load_data(cfg, tokenizer, paths, tokenizer_hash(tokenizer), workers=workers, log=log)
        env.barrier()
        if not env.main:  # everything rank 0 trained or cached is there now
            tokenizer = get_tokenizer(cfg, paths, out, log)
            dataset = load_data(cfg, tokenizer, paths, tokenizer_hash(tokenizer), build_missing=False, log=log)
        tokenizer_id = tokenizer_hash(tokenizer)
        model, origin = build_model(cfg, tokenizer)
        fp = fingerprint(cfg, model, tokenizer_id, env.world)
        eval_samples = _eval_samples(cfg, tokenizer, paths) if env.main and t["eval"] else None

        model.to(env.device)
        optimizer = torch.optim.AdamW(param_groups(model, t["weight_decay"]), lr=t["lr"], betas=tuple(t["betas"]),
                                      eps=t["eps"], fused=env.device.type == "cuda")
        start, elapsed_before = 0, 0.0
        if resume:
            state = torch.load(state_file, map_location="cpu", weights_only=False)
            diff = first_difference(state["fingerprint"], fp)
            if diff:
                key, old, new = diff
                raise TrainConfigError(f"--resume: {out} was trained with {key} = {json.dumps(old, default=str)}, "
                                       f"this config has {json.dumps(new, default=str)}; resume with the same "
                                       f"settings or start a new run")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng(state["rng"])
            start, elapsed_before = state["step"], state["elapsed_s"]
            log(f"resuming {out} at step {start}")
        if env.main:
            for name, columns in (("loss.csv", LOSS_COLUMNS), ("eval.csv", ["step", "task", "score", "n"])):
                truncate_csv(out / name, columns, start)

        net = model
        if env.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
        if t["compile"]:
            net = torch.compile(net)
        B, A, T = t["batch_size"], t["grad_accum"], t["seq_len"]
        global_rows = B * A * env.world
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=B, sampler=RowSampler(start, t["steps"], B, A, env.rank, env.world),
            num_workers=t["num_workers"], pin_memory=env.device.type == "cuda",
            prefetch_factor=4 if t["num_workers"] else None, persistent_workers=False)
        batches = iter(loader)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if t["bf16"] and env.device.type == "cuda" \
            else contextlib.nullcontext()

        info = {"name": out.name if out.name != "final" else out.parent.name, "status": "running",
                "config_file": str(cfg.path), "config": cfg.describe(), "command": command or " ".join(sys.argv),
                "model": {"architecture": model.config.model_type, "scheme": model.scheme.spec(),
                          "layers": _layer_text(model), "parameters": model.parameter_counts()["total"],
                          "repo_parameters": model.parameter_counts()["repo"], "origin": origin,
                          "max_positions": model.config.max_position_embeddings},
                "tokenizer": {"kind": "byte-level BPE trained on the data" if isinstance(cfg.tokenizer, dict)
                              else str(cfg.tokenizer or cfg.model["path"]), "size": len(tokenizer), "id": tokenizer_id},
                "data": {"sources": cfg.describe()["data"]["sources"], "token_shares": {}},
                "world_size": env.world, "global_batch_rows": global_rows, "tokens_per_step": global_rows * T,
                "versions": facts.versions(), "git": facts.git_commit(), "device": facts.device_info(str(env.device)),
                "started": facts.now()}
        kinds_seen = torch.zeros(4, dtype=torch.float64)
        step_times, loss_file = [], None
        if env.main:
            loss_file = open(out / "loss.csv", "a", newline="")
            loss_writer = csv.DictWriter(loss_file, LOSS_COLUMNS)
        bar = None
        if env.main and progress:
            from tqdm import tqdm
            bar = tqdm(total=t["steps"], initial=start, unit="step", dynamic_ncols=True, mininterval=1.0)
        say = bar.write if bar is not None else log
        train_start = time.time()

        done = start
        for step in range(start, t["steps"]):
            tick = time.perf_counter()
            lr = lr_at(step, t)
            for group in optimizer.param_groups:
                group["lr"] = lr
            stats = torch.zeros(6, device=env.device)
            for micro in range(A):
                x, y, kinds = next(batches)
                kinds_seen += torch.bincount(kinds.flatten().long(), minlength=4).double()
                x, y, kinds = (v.to(env.device, non_blocking=True) for v in (x, y, kinds))
                sync = net.no_sync() if env.world > 1 and micro < A - 1 else contextlib.nullcontext()
                with sync, autocast:
                    logits = net(x)
                objective, s = batch_loss(logits, y, kinds, t["answer_loss_weight"], t["z_loss"])
                (objective / (B * T * A)).backward()
                stats += s
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"] or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if env.world > 1:
                dist.all_reduce(stats)
            ce, n, ans_ce, n_ans, correct, obj = stats.tolist()
            done = step + 1
            seconds = time.perf_counter() - tick
            step_times.append(seconds)
            row = {"step": done, "lr": lr, "loss": ce / max(n, 1), "objective": obj / (global_rows * T),
                   "answer_loss": ans_ce / n_ans if n_ans else "", "answer_acc": correct / n_ans if n_ans else "",
                   "grad_norm": float(grad_norm), "tokens": done * global_rows * T,
                   "elapsed_s": round(elapsed_before + time.time() - train_start, 3),
                   "tokens_per_s": round(global_rows * T / seconds)}
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"step {done}: the loss is {row['loss']}; lower train.lr or check the data")
            if env.main:
                loss_writer.writerow(row)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,}", lr=f"{lr:.2e}")
                if done % t["log_every"] == 0 or done == t["steps"]:
                    answer = f" answer {row['answer_loss']:.3f} acc {row['answer_acc']:.2f}" if n_ans else ""
                    say(f"step {done}/{t['steps']} loss {row['loss']:.4f}{answer} lr {lr:.2e} "
                        f"grad {row['grad_norm']:.2f} {row['tokens_per_s']:,} tok/s")
            if eval_samples and (done % t["eval"]["every"] == 0 or done == t["steps"]):
                for task, score, count in _run_eval(model, tokenizer, eval_samples, env.device):
                    _append_csv(out / "eval.csv", ["step", "task", "score", "n"],
                                {"step": done, "task": task, "score": score, "n": count})
                    say(f"step {done} eval {task} @{t['eval']['length']}: {score:.1f} (n={count})")
            last = done == t["steps"] or done == stop_at
            if done % t["checkpoint_every"] == 0 or last:
                if env.main:
                    loss_file.flush()
                    export(model, out / f"step_{done:05d}", tokenizer, t["save_dtype"])
                    _prune(out, t["keep_checkpoints"])
                    atomic_torch_save({"format": STATE_FORMAT, "step": done, "model": model.state_dict(),
                                       "optimizer": optimizer.state_dict(), "rng": _get_rng(), "fingerprint": fp,
                                       "elapsed_s": elapsed_before + time.time() - train_start}, state_file)
                    _finish_manifest(info, out, done, step_times, kinds_seen, elapsed_before + time.time()
                                     - train_start, started, "running")
                env.barrier()
            if done == stop_at:
                break
        if bar is not None:
            bar.close()
        if loss_file is not None:
            loss_file.close()
        finished = done == t["steps"]
        if env.main:
            info = _finish_manifest(info, out, done, step_times, kinds_seen,
                                    elapsed_before + time.time() - train_start, started,
                                    "finished" if finished else f"stopped at step {done}")
            if finished and not (out / "final").is_dir():
                final = export(model, out / "final", tokenizer, t["save_dtype"])
                (final / "README.md").write_text(model_card(info))
                shutil.copy(out / "train_manifest.json", final / "train_manifest.json")
                log(f"final: {final}  (loss {info['final_loss']:.4f}, {info['tokens_seen']:,} tokens, "
                    f"{info['tokens_per_s']:,.0f} tokens/s, {info['wall_time_s']:.0f} s)")
        env.barrier()
        return info
    finally:
        env.close()


def _layer_text(model) -> str:
    from position_schemes import format_layer_kinds
    return format_layer_kinds(model.layer_kinds)


def _append_csv(path: Path, columns: list, row: dict):
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _prune(out: Path, keep: int):
    if keep:
        for old in sorted(out.glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _finish_manifest(info: dict, out: Path, step: int, step_times: list, kinds_seen, train_s: float, started,
                     status: str) -> dict:
    from harness import manifest as facts

    rows = read_csv(out / "loss.csv")
    tail = rows[-min(len(rows), 50):]
    steady = step_times[min(5, len(step_times) // 4):] or step_times

    def mean(key):
        values = [float(r[key]) for r in tail if r[key] not in ("", "nan")]
        return sum(values) / len(values) if values else float("nan")
    total = float(kinds_seen.sum()) or 1.0
    info.update(status=status, step=step, tokens_seen=step * info["tokens_per_step"], final_loss=mean("loss"),
                final_loss_steps=len(tail), last_loss=float(tail[-1]["loss"]) if tail else None,
                final_answer_loss=mean("answer_loss"), final_answer_acc=mean("answer_acc"),
                seconds_per_step=statistics.median(steady) if steady else None,
                tokens_per_s=info["tokens_per_step"] / statistics.median(steady) if steady else 0.0,
                train_time_s=round(train_s, 1), wall_time_s=round(time.time() - started, 1), updated=facts.now())
    info["data"]["token_shares"] = {name: float(kinds_seen[i]) / total
                                    for i, name in enumerate(("padding", "text", "synthetic prompts", "answers"))}
    tmp = out / "train_manifest.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    os.replace(tmp, out / "train_manifest.json")
    plot_loss(out)
    return info


def _get_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _eval_samples(cfg: TrainConfig, tokenizer, paths: dict) -> dict:
    """{task: (spec, samples)} for the greedy probes: the tasks' evaluation samples (their own seed, 42)."""
    from tasks import TaskError, TaskRegistry, build_samples

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
    from harness.engine import TorchEngine
    from tasks import aggregate, score_sample

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
