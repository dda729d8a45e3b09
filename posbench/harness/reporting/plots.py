"""Report plots (matplotlib, Agg) from the results frames: score vs context length per distinct table column, and one
needle heatmap figure (a panel per model and needle task, depth x length, one colour scale). A scheme keeps one colour
in every plot; models sharing a scheme differ by marker and line style."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from posbench.harness.evaluation.results import safe_name  # noqa: E402
from posbench.harness.reporting.frames import length_key, length_name  # noqa: E402
from posbench.harness.reporting.tables import columns, group_scores, n_range  # noqa: E402

SCHEME_COLORS = {"rope": "#1f77b4", "nope": "#ff7f0e", "hybrid": "#2ca02c", "repo": "#d62728"}
_SPARE = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P"]
_STYLES = ["-", "--", ":", "-."]


def model_styles(models: pd.DataFrame) -> dict:
    """{model: (colour, marker, line style)}: known schemes have fixed colours, others spare ones in name order."""
    spare = sorted(set(models["scheme"]) - set(SCHEME_COLORS))
    colors = {**SCHEME_COLORS, **{s: _SPARE[i % len(_SPARE)] for i, s in enumerate(spare)}}
    nth = models.groupby("scheme").cumcount()                  # models sharing a scheme: 0, 1, 2, ...
    return {m: (colors[s], _MARKERS[k % len(_MARKERS)], _STYLES[k % len(_STYLES)])
            for m, s, k in zip(models["model"], models["scheme"], nth)}


def plot_column(res, name, members, lengths, path, styles) -> bool:
    """Score against context length for one table column; 95% interval bars when it is a single task."""
    here = res.cells[res.cells["length"].isin(lengths) & res.cells["task"].isin(members)]
    values = pd.DataFrame({x: s[name] for x in lengths if name in (s := group_scores(res, x))}).dropna(how="all")
    if values.empty:
        return False
    one = len(members) == 1
    bars = {k: here.pivot(index="model", columns="length", values=k).reindex_like(values) if one else None
            for k in ("ci_low", "ci_high")}
    schemes = res.models.set_index("model")["scheme"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, model in enumerate(values.index):
        row = values.loc[model].dropna()
        err = np.clip([row - bars["ci_low"].loc[model, row.index], bars["ci_high"].loc[model, row.index] - row], 0,
                      None) if one else None
        color, marker, style = styles[model]
        dodge = 2 ** (0.025 * (k - (len(values) - 1) / 2))   # side by side, so error bars do not hide each other
        ax.errorbar(row.index.astype(int) * dodge, row, yerr=err, color=color, marker=marker, linestyle=style,
                    capsize=3, label=f"{model} ({schemes[model]})")
    ticks = [int(x) for x in lengths]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [length_name(x) for x in lengths])
    ax.minorticks_off()
    ax.set_xlim(ticks[0] / 1.5, ticks[-1] * 1.5)
    ax.set_ylim(-2, 102)
    ax.set(xlabel="context length (tokens)", ylabel="score (0–100)")
    metrics = ", ".join(sorted(set(here["metric"])))
    what = (f"task {members[0]}: {metrics}, bars = 95% interval" if one
            else f"unweighted mean of {len(members)} tasks ({metrics})")
    ax.set_title(f"{name}: score vs context length\n{what}\nn = {n_range(here)} samples scored per "
                 "model·task·length", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def needle_frame(res) -> pd.DataFrame:
    """One row per (scored sample, queried needle) of the needle tasks at numeric lengths: model, task, length,
    depth, score and its depth bin: the depth itself when there are at most 11 distinct depths, else 10% bins."""
    s = res.samples[res.samples["length"].str.isdigit() & res.samples["score"].notna()
                    & (res.samples["depths"].map(len) > 0)]
    s = s.explode("depths").rename(columns={"depths": "depth"})[["model", "task", "length", "depth", "score"]]
    s["depth"] = s["depth"].astype(float)
    exact = s["depth"].nunique() <= 11
    s["bin"] = s["depth"] if exact else (s["depth"] // 10).clip(upper=9) * 10
    return s.assign(label=s["bin"].map(lambda b: f"{b:g}%" if exact else f"{b:g}–{b + 10:g}%"))


def plot_needle_heatmaps(res, needles, path):
    tasks = [t for t in res.tasks["task"] if t in set(needles["task"])]
    models = [m for m in res.models["model"] if m in set(needles["model"])]
    lengths = sorted(needles["length"].unique(), key=length_key)
    bins = needles.drop_duplicates("bin").sort_values("bin")
    labels = bins["label"].tolist()
    means = needles.groupby(["task", "model", "bin", "length"])["score"].mean()
    fig, axes = plt.subplots(len(tasks), len(models), squeeze=False, sharex=True, sharey=True, layout="constrained",
                             figsize=(1.2 + 0.55 * len(lengths) * len(models), 0.8 + 0.3 * len(labels) * len(tasks)))
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d0d0d0")
    for i, task in enumerate(tasks):
        for j, model in enumerate(models):
            grid = np.array([[means.get((task, model, b, x), np.nan) for x in lengths] for b in bins["bin"]])
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
            plots[name] = list(dict.fromkeys(plots.get(name, []) + members))
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
