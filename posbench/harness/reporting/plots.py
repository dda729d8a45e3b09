"""Report plots (matplotlib, Agg) from the results frames: score against context length, one plot per distinct
table column (columns with the same member tasks share one plot), and one needle heatmap figure: a panel per model
(columns) and per needle task (rows), depth x length, one shared colour scale.

A scheme keeps one colour in every plot; models sharing a scheme differ by marker and line style.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from posbench.harness.evaluation.results import safe_name  # noqa: E402
from posbench.harness.reporting.frames import length_key, length_name  # noqa: E402
from posbench.harness.reporting.report import columns, group_scores, n_range  # noqa: E402

SCHEME_COLORS = {"rope": "#1f77b4", "nope": "#ff7f0e", "hybrid": "#2ca02c", "repo": "#d62728"}
_SPARE = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P"]
_STYLES = ["-", "--", ":", "-."]


def model_styles(models: pd.DataFrame) -> dict:
    """{model: (colour, marker, line style)}: known schemes have fixed colours, others spare ones in name order."""
    colors = dict(SCHEME_COLORS)
    for i, s in enumerate(sorted(set(models["scheme"]) - set(colors))):
        colors[s] = _SPARE[i % len(_SPARE)]
    seen, out = {}, {}
    for model, scheme in zip(models["model"], models["scheme"]):
        k = seen[scheme] = seen.get(scheme, -1) + 1
        out[model] = (colors[scheme], _MARKERS[k % len(_MARKERS)], _STYLES[k % len(_STYLES)])
    return out


def plot_column(res, name, members, lengths, path, styles) -> bool:
    """Score against context length for one table column; CI bars when it is a single task."""
    here = res.cells[res.cells["length"].isin(lengths) & res.cells["task"].isin(members)]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    scores_at = {length: group_scores(res, length) for length in lengths}
    drawn = 0
    for k, model in enumerate(res.models["model"]):
        xs, ys, err = [], [], []
        for length in lengths:
            scores = scores_at[length]
            if name in scores and pd.notna(scores.at[model, name]):
                xs.append(int(length))
                ys.append(scores.at[model, name])
                c = here[(here["model"] == model) & (here["length"] == length)]
                one = len(members) == 1 and len(c) == 1 and pd.notna(c["ci_low"].iloc[0])
                err.append((ys[-1] - c["ci_low"].iloc[0], c["ci_high"].iloc[0] - ys[-1]) if one else (np.nan, np.nan))
        if not xs:
            continue
        color, marker, style = styles[model]
        dodge = 2 ** (0.025 * (k - (len(res.models) - 1) / 2))   # side by side, so error bars do not hide each other
        ax.errorbar([x * dodge for x in xs], ys, yerr=np.clip(np.array(err).T, 0, None), color=color, marker=marker,
                    linestyle=style, capsize=3, label=f"{model} ({res.models.set_index('model').at[model, 'scheme']})")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return False
    ticks = [int(x) for x in lengths]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [length_name(x) for x in lengths])
    ax.minorticks_off()
    ax.set_xlim(ticks[0] / 1.5, ticks[-1] * 1.5)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("score (0–100)")
    metrics = ", ".join(sorted(set(here["metric"])))
    what = (f"task {members[0]}: {metrics}, bars = 95% interval" if len(members) == 1
            else f"unweighted mean of {len(members)} tasks ({metrics})")
    ax.set_title(f"{name}: score vs context length\n{what}\nn = {n_range(here)} samples scored per "
                 "model·task·length", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def depth_bins(depths) -> list:
    """[(low, high, label)]: one bin per distinct depth when there are at most 11, else ten 10% bins."""
    distinct = sorted(set(depths))
    if len(distinct) <= 11:
        return [(d, d, f"{d:g}%") for d in distinct]
    return [(10 * i, 10 * (i + 1), f"{10 * i}–{10 * (i + 1)}%") for i in range(10)]


def needle_frame(res) -> pd.DataFrame:
    """One row per (scored sample, queried needle) of the needle tasks at numeric lengths: model, task, length,
    depth, bin (index into depth_bins), score."""
    s = res.samples[res.samples["length"].str.isdigit() & res.samples["score"].notna()
                    & (res.samples["depths"].map(len) > 0)]
    s = s.explode("depths").rename(columns={"depths": "depth"})[["model", "task", "length", "depth", "score"]]
    if s.empty:
        return s
    bins = depth_bins(s["depth"].astype(float))
    edges = [lo for lo, hi, _ in bins]
    exact = all(lo == hi for lo, hi, _ in bins)
    s["bin"] = [edges.index(d) if exact else min(int(d // 10), 9) for d in s["depth"].astype(float)]
    return s.assign(label=s["bin"].map(lambda i: bins[i][2]))


def plot_needle_heatmaps(res, needles, path):
    tasks = [t for t in res.tasks["task"] if t in set(needles["task"])]
    models = [m for m in res.models["model"] if m in set(needles["model"])]
    lengths = sorted(needles["length"].unique(), key=length_key)
    labels = needles.drop_duplicates("bin").sort_values("bin")["label"].tolist()
    means = needles.groupby(["task", "model", "bin", "length"])["score"].mean()
    fig, axes = plt.subplots(len(tasks), len(models), squeeze=False, sharex=True, sharey=True, layout="constrained",
                             figsize=(1.2 + 0.55 * len(lengths) * len(models), 0.8 + 0.3 * len(labels) * len(tasks)))
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d0d0d0")
    for i, task in enumerate(tasks):
        for j, model in enumerate(models):
            grid = np.array([[means.get((task, model, b, x), np.nan) for x in lengths] for b in range(len(labels))])
            ax = axes[i, j]
            im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
            ax.set_xticks(range(len(lengths)), [length_name(x) for x in lengths], fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            if i == 0:
                ax.set_title(model, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{task}\ndepth", fontsize=8)
    fig.colorbar(im, ax=axes, label="score (0–100)", shrink=0.8)
    fig.suptitle("needle retrieval: mean score by needle depth (rows) and context length (columns)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(res, out_dir) -> dict:
    """Write every plot under out_dir; returns {title: path} in report order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = model_styles(res.models)
    lengths = [x for x in res.lengths if x.isdigit()]
    plots = {}                                    # column name -> members over every numeric length
    for length in lengths:
        for name, members in columns(res, length).items():
            plots.setdefault(name, [])
            plots[name] += [t for t in members if t not in plots[name]]
    written = {}
    for name, members in plots.items():
        path = out_dir / f"score_vs_length_{safe_name(name.split(' = ')[0])}.png"
        if plot_column(res, name, members, lengths, path, styles):
            written[f"{name}: score vs context length"] = path
    needles = needle_frame(res)
    if len(needles):
        path = out_dir / "needle_heatmaps.png"
        plot_needle_heatmaps(res, needles, path)
        written["needle heatmaps (depth × length, a panel per model and task)"] = path
    return written
