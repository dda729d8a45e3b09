"""What a training run writes besides its weights: loss.csv / eval.csv, loss.png, train_manifest.json and the model
card (README.md) of the exported model. Rank 0 only; every file is replaced atomically or appended row by row."""
import copy
import csv
import io
import json
import os
import statistics
import time
from pathlib import Path

import torch

from posbench.harness.evaluation.results import atomic_write_text
from posbench.harness.files import make_tree_shareable
from posbench.harness.training.config import TrainConfigError

LOSS_COLUMNS = ["step", "lr", "loss", "objective", "answer_loss", "answer_acc", "grad_norm", "tokens", "elapsed_s",
                "tokens_per_s"]
EVAL_COLUMNS = ["step", "task", "score", "n"]
TOKEN_KINDS = ("padding", "text", "synthetic prompts", "answers")  # train_data.KIND_* order


def export(model, path: Path, tokenizer, dtype: str) -> Path:
    """The model (fp32 master weights) as a checkpoint load_model reads, in `dtype`; files readable by the team
    (safetensors creates its files 0600)."""
    from posbench.harness.core.checkpoint import save_model

    if dtype != "float32":
        model = copy.deepcopy(model).to(getattr(torch, dtype))
    path = save_model(model, path, tokenizer)
    make_tree_shareable(path)
    return path


def atomic_torch_save(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_csv(path: Path) -> list:
    """The complete rows of a log: a last line cut short by a crash (no newline yet) is not a row."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for number, row in enumerate(rows, 2):
        if None in row or None in row.values() or not row.get("step", "").isdigit():
            raise TrainConfigError(f"{path}:{number}: not a complete row of {path.name} ({row}); the file is "
                                   "damaged")
    return rows


def truncate_csv(path: Path, columns: list, last_step: int):
    """Keep the rows up to last_step (a resumed run rewrites what the interrupted one logged after its state),
    replacing the file atomically."""
    rows = [r for r in read_csv(path) if int(r["step"]) <= last_step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def append_csv(path: Path, columns: list, row: dict):
    # Six significant digits: enough for any curve, and it keeps a shipped model's per-step log small.
    row = {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, columns, lineterminator="\n").writerow(row)


def plot_loss(out: Path):
    """loss.png: loss (all and answer tokens) and answer accuracy (per token, and the greedy probes) per step."""
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


def write_manifest(info: dict, out: Path, step: int, step_times: list, kinds_seen, train_s: float, status: str):
    """Update the run's facts (status, tokens, final loss = mean of the last 50 logged steps, steady throughput =
    median step time after the first few) and write train_manifest.json and loss.png."""
    from posbench.harness.evaluation.manifest import now

    tail = read_csv(out / "loss.csv")[-50:]
    steady = step_times[min(5, len(step_times) // 4):] or step_times

    def mean(key):
        values = [float(r[key]) for r in tail if r[key] not in ("", "nan")]
        return sum(values) / len(values) if values else float("nan")
    seconds = statistics.median(steady) if steady else None
    total = float(kinds_seen.sum()) or 1.0
    info.update(status=status, step=step, tokens_seen=step * info["tokens_per_step"], final_loss=mean("loss"),
                final_loss_steps=len(tail), last_loss=float(tail[-1]["loss"]) if tail else None,
                final_answer_loss=mean("answer_loss"), final_answer_acc=mean("answer_acc"),
                seconds_per_step=seconds, tokens_per_s=info["tokens_per_step"] / seconds if seconds else 0.0,
                train_time_s=round(train_s, 1), wall_time_s=round(time.time() - info["started_at"], 1), updated=now())
    info["data"]["token_shares"] = {name: float(kinds_seen[i]) / total for i, name in enumerate(TOKEN_KINDS)}
    tmp = out / "train_manifest.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    os.replace(tmp, out / "train_manifest.json")
    plot_loss(out)
    return info


def model_card(m: dict) -> str:
    """README.md of an exported model, from the run's manifest."""
    t, model = m["config"]["train"], m["model"]
    sources = "\n".join(f"| {s['name']} | {s.get('task') or ', '.join(s['files'])} | {s['weight']:g} | "
                        f"{', '.join(map(str, s.get('lengths') or [])) or '-'} | {s.get('samples', '-')} |"
                        for s in m["data"]["sources"])
    shares = ", ".join(f"{k} {v:.1%}" for k, v in m["data"]["token_shares"].items())
    position = model.get("position_parameters", model.get("repo_parameters"))  # the key's name before issue 12
    repo = f", of which position layers {position:,}" if position else ""
    device = m["device"].get("gpu") or m["device"]["cpu"]
    return "\n".join([
        f"# {m['name']}",
        "",
        f"A small {model['architecture']} model trained by posbench (`eval.py train`) in scheme `{model['scheme']}` "
        f"({model['layers']}): {model['parameters']:,} parameters{repo}.",
        "",
        "| | |", "|---|---|",
        f"| initialised from | {model['origin']} |",
        f"| tokenizer | {m['tokenizer']['kind']}, {m['tokenizer']['size']} tokens |",
        f"| context | {t['seq_len']} tokens per row (max_position_embeddings {model['max_positions']}) |",
        f"| steps | {m['step']} x {m['global_batch_rows']} rows = {m['tokens_seen']:,} tokens seen |",
        f"| optimizer | AdamW lr {t['lr']:g}, warmup {t['warmup']}, {t['decay']} decay to {t['lr_floor']:g} x lr, "
        f"betas {tuple(t['betas'])}, weight decay {t['weight_decay']:g}, clip {t['grad_clip']:g}, "
        f"z-loss {t['z_loss']:g}, answer-token weight {t['answer_loss_weight']:g} |",
        f"| final loss | {m['final_loss']:.4f} (mean of the last {m['final_loss_steps']} steps; answer tokens "
        f"{m['final_answer_loss']:.4f}, answer-token accuracy {m['final_answer_acc']:.1%}) |",
        f"| trained on | {device} x {m['world_size']}, {m['wall_time_s'] / 60:.1f} min, "
        f"{m['tokens_per_s']:,.0f} tokens/s |",
        f"| posbench commit | {m.get('git_commit')}{' (dirty)' if m.get('git_dirty') else ''} |",
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
    ])
