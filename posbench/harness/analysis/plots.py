"""The analysis figures (matplotlib, Agg): learned positions against token index with the needles marked, the
position range against context length, attention on needles per layer, and the locality profile; plus the figures
that put several models side by side."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SPAN_COLOURS = {"needle": "tab:red", "distractor": "tab:orange"}


def _runs(indices: list) -> list:
    """[3, 4, 5, 9] -> [(3, 5), (9, 9)]: contiguous token runs, one shaded band each."""
    runs = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


def positions_figure(sample: dict, length: int, path) -> None:
    """One panel per learned layer, every head a line: position against token index, needle tokens shaded. (One
    panel per head as well would be 176 panels for OLMo-2-1B, slow to draw and too small to read.)"""
    layers = sorted(sample["positions"])
    fig, axes = plt.subplots(len(layers), 1, figsize=(7, 1.5 * len(layers) + 0.6), squeeze=False, sharex=True)
    for ax, layer in zip(axes[:, 0], layers):
        for name, colour in SPAN_COLOURS.items():
            for a, b in _runs(sample["spans"].get(name, [])):
                ax.axvspan(a - 0.5, b + 0.5, color=colour, alpha=0.3, lw=0)
        ax.plot(sample["positions"][layer].numpy(), lw=0.4)
        ax.set_ylabel(f"layer {layer}", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("token index", fontsize=7)
    fig.suptitle(f"learned position per head vs token index ({sample['task']} #{sample['index']}, {length} tokens; "
                 "red: needle, orange: distractors)", fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - 0.5 / (1.5 * len(layers) + 0.6), bottom=0.08, hspace=0.15)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def range_figure(result: dict, path) -> None:
    """Median position range per learned layer against context length, with the integer index's for scale."""
    lengths = result["lengths"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for layer in result["learned_layers"]:
        ys = [result["per_length"][str(L)]["positions"]["layers"][str(layer)]["range_median"] for L in lengths]
        ax.plot(lengths, ys, marker="o", label=f"layer {layer}")
    ax.plot(lengths, [L - 1 for L in lengths], ls="--", color="grey", label="integer index (≈ length)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("median position range (max - min)")
    ax.set_title(f"{result['model']}: learned position range", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def needle_figure(results: list, length: int, path) -> None:
    """Attention per token on needle vs distractor vs other haystack tokens, per layer, one panel per model."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results) + 0.5, 3), squeeze=False, sharey=True)
    for ax, result in zip(axes[0], results):
        rows = result["per_length"][str(length)]["attention"]["span_mass"]
        layers = sorted(rows, key=int)
        for offset, name in enumerate(("needle", "distractor", "haystack")):
            bars = [(int(layer) + (offset - 1) * 0.27, rows[layer].get(f"{name}_per_token")) for layer in layers]
            bars = [(x, y) for x, y in bars if y]     # a task without distractors has none to draw
            if bars:
                ax.bar(*zip(*bars), width=0.27, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_title(result["model"], fontsize=9)
    _finish_panels(fig, axes, "attention per token (query rows)", f"attention on the needle at {length} tokens", path)


def locality_figure(results: list, length: int, path) -> None:
    """Mean attention a key receives against its distance from the query, per layer, one panel per model."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results) + 0.5, 3), squeeze=False, sharey=True)
    for ax, result in zip(axes[0], results):
        profile = result["per_length"][str(length)]["attention"]["locality"]
        for layer in sorted(profile, key=int):
            xs = [max(0.5, (b["distance"][0] + b["distance"][1]) / 2) for b in profile[layer]]
            ax.plot(xs, [b["mean_attention"] for b in profile[layer]], marker=".", lw=0.8, label=f"layer {layer}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("token distance")
        ax.set_title(result["model"], fontsize=9)
    _finish_panels(fig, axes, "mean attention per key", f"locality profile at {length} tokens", path)


def _finish_panels(fig, axes, ylabel: str, title: str, path) -> None:
    """The end of every one-row-of-models figure: y label on the first panel, legend on the last, title, save."""
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(result: dict, plot_data: dict, out_dir) -> list:
    """Every figure of one model's analysis; returns [(title, file name)] for analysis.md."""
    figures = []
    for length, samples in plot_data.items():
        for i, sample in enumerate(samples):
            name = f"positions_{length}_{i}.png"
            positions_figure(sample, length, out_dir / name)
            figures.append((f"learned positions, {length} tokens, {sample['task']} #{sample['index']}", name))
    if result["learned_layers"]:
        range_figure(result, out_dir / "position_range.png")
        figures.append(("position range against context length", "position_range.png"))
    longest = max(result["lengths"])
    if result["per_length"][str(longest)]["attention"]["span_mass"]:
        needle_figure([result], longest, out_dir / "needle_attention.png")
        figures.append((f"attention on the needle, {longest} tokens", "needle_attention.png"))
    if result["per_length"][str(longest)]["attention"]["locality"]:
        locality_figure([result], longest, out_dir / "locality.png")
        figures.append((f"locality profile, {longest} tokens", "locality.png"))
    return figures
