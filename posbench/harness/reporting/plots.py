"""Report plots (matplotlib, Agg): score against context length per task group, and needle heatmaps per model.

Every plot takes its numbers from posbench.harness.reporting.report (which reads result files only); a scheme keeps
one colour in
every plot, and models sharing a scheme differ by marker and line style.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from posbench.harness.evaluation.results import safe_name  # noqa: E402
from posbench.harness.reporting.report import AVG, length_name  # noqa: E402

SCHEME_COLORS = {"rope": "#1f77b4", "nope": "#ff7f0e", "hybrid": "#2ca02c", "repo": "#d62728"}
_SPARE = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P"]
_STYLES = ["-", "--", ":", "-."]


def scheme_colors(schemes) -> dict:
    """A fixed colour for the known schemes; others take spare colours in name order (stable across plots)."""
    colors = dict(SCHEME_COLORS)
    for i, s in enumerate(sorted(set(schemes) - set(colors))):
        colors[s] = _SPARE[i % len(_SPARE)]
    return colors


def _model_styles(report) -> dict:
    """{model: (colour, marker, line style)}."""
    colors = scheme_colors(m.scheme for m in report.models.values())
    seen, out = {}, {}
    for m in report.models.values():
        k = seen[m.scheme] = seen.get(m.scheme, -1) + 1
        out[m.label] = (colors[m.scheme], _MARKERS[k % len(_MARKERS)], _STYLES[k % len(_STYLES)])
    return out


def plot_group(report, group, members, path, styles) -> bool:
    """Score against context length for one group (or one task); False when there is nothing to draw."""
    series = report.series(members)
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    lengths = sorted({x for pts in series.values() for x, *_ in pts})
    for k, (model, pts) in enumerate(series.items()):
        color, marker, style = styles[model]
        dodge = 2 ** (0.025 * (k - (len(series) - 1) / 2))   # side by side, so error bars do not hide each other
        xs = [p[0] * dodge for p in pts]
        ys = [p[1] for p in pts]
        label = f"{model} ({report.models[model].scheme})"
        if all(p[2] is not None and p[3] is not None for p in pts):
            err = np.array([[max(0.0, p[1] - p[2]) for p in pts], [max(0.0, p[3] - p[1]) for p in pts]])
            ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, linestyle=style, capsize=3, label=label)
        else:
            ax.plot(xs, ys, color=color, marker=marker, linestyle=style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [length_name(str(x)) for x in lengths])
    ax.minorticks_off()
    if len(lengths) == 1:
        ax.set_xlim(lengths[0] / 1.5, lengths[0] * 1.5)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("context length (tokens)")
    metrics = ", ".join(sorted({report.tasks[t].metric for t in members}))
    ax.set_ylabel("score (0–100)")
    cells = [c for c in report.cells.values() if c.task in members and c.length.isdigit()]
    what = (f"task {members[0]}: {metrics}, bars = 95% bootstrap CI" if len(members) == 1
            else f"unweighted mean of {len(members)} tasks ({metrics})")
    title = "all tasks (avg)" if group == AVG else group
    ax.set_title(f"{title}: score vs context length\n{what}\nn = {report.n_range(cells)} samples scored per "
                 f"model·task·length", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_needle_heatmap(report, model, grid, path):
    """Depth bins (rows) x context length (columns), colour = mean score of the needle tasks' primary metric."""
    mean = np.array([[np.nan if v is None else v for v in row] for row in grid["mean"]], dtype=float)
    n = np.array(grid["n"])
    fig, ax = plt.subplots(figsize=(2.2 + 1.3 * len(grid["lengths"]), 1.8 + 0.42 * len(grid["bins"])))
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            text = "—" if np.isnan(mean[i, j]) else f"{mean[i, j]:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(grid["lengths"])), [length_name(x) for x in grid["lengths"]])
    ax.set_yticks(range(len(grid["bins"])), grid["bins"])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth (% of context)")
    filled = n[n > 0]
    count = f"{filled.min()}–{filled.max()}" if filled.size and filled.min() != filled.max() else str(
        filled.max() if filled.size else 0)
    ax.set_title(f"{model} ({report.models[model].scheme}): needle retrieval\nmean {grid['metric']} over "
                 f"{len(grid['tasks'])} needle task{'s' if len(grid['tasks']) > 1 else ''}; n = {count} per cell",
                 fontsize=9)
    fig.colorbar(im, ax=ax, label="score (0–100)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(report, out_dir) -> dict:
    """Write every plot under out_dir; returns {title: path} in report order."""
    from posbench.harness.reporting.report import needle_grids
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = _model_styles(report)
    numeric = [x for x in report.lengths if x.isdigit()]
    groups = {}
    for length in numeric:
        for g, members in report.columns(length).items():
            groups.setdefault(g, [])
            groups[g] += [t for t in members if t not in groups[g]]
    written = {}
    for g, members in groups.items():
        path = out_dir / f"score_vs_length_{safe_name(g)}.png"
        if plot_group(report, g, members, path, styles):
            written[f"{'all tasks (avg)' if g == AVG else g}: score vs context length"] = path
    for model, grid in needle_grids(report).items():
        path = out_dir / f"needle_heatmap_{safe_name(model)}.png"
        plot_needle_heatmap(report, model, grid, path)
        written[f"{model}: needle heatmap (depth × length)"] = path
    return written
