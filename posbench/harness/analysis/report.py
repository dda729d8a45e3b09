"""analysis.md for one model, and comparison.md for several analysed on the same samples."""
from posbench.harness.evaluation.results import length_label


def _num(value, fmt="{:.3f}"):
    return "–" if value is None else fmt.format(value)


def _ci(pair, fmt="{:.2f}"):
    return "–" if not pair or pair[0] is None else f"[{fmt.format(pair[0])}, {fmt.format(pair[1])}]"


def _device(result: dict) -> str:
    info = result["manifest"]["device"]
    return info.get("gpu") or f"CPU ({info.get('torch_threads')} threads)"


def headline(result: dict) -> str:
    """One line: the verdict with the numbers behind it."""
    if result["verdict"] is None:
        return f"**{result['model']}** ({result['scheme']}): no learned positions, no verdict."
    parts = []
    for name in ("zeros", "shuffled", "index"):
        a = result["ablations"].get(name)
        if a and a.get("n"):
            parts.append(f"{name}: answer loss {a['answer_loss_delta']:+.3f} {_ci(a['answer_loss_delta_ci'])}, "
                         f"score {a['score_delta']:+.1f} {_ci(a['score_delta_ci'], '{:.0f}')}")
    ranges = ", ".join(f"{length_label(int(k))} {v:.3g}" for k, v in result["position_range"].items())
    return (f"**{result['model']}** ({result['scheme']}): **{result['verdict']}** (tolerance "
            f"{result['tolerance']} nats). Learned positions replaced by " + "; ".join(parts)
            + f". Median position range: {ranges}.")


def markdown(result: dict, figures: list) -> str:
    lines = [f"# Analysis of {result['model']}", "", f"`{result['path']}`, scheme {result['scheme']} "
             f"({', '.join(f'{length_label(int(k))}: `{v}`' for k, v in result['scheme_spec'].items())}); tasks "
             f"{', '.join(result['tasks'])}; {result['samples']} samples per task and length, seed "
             f"{result['manifest']['seed']}, {result['manifest']['dtype']} on {_device(result)}"
             f" ({result['manifest']['seconds']} s).", "", headline(result), ""]
    lines += ["## Ablations (pooled over lengths and tasks; change against the model as it is, 95% bootstrap)", "",
              "| condition | n | Δ answer loss (nats/token) | 95% CI | Δ score | 95% CI |",
              "|---|---:|---:|---|---:|---|"]
    for name, a in result["ablations"].items():
        if a.get("n"):
            lines.append(f"| {name} | {a['n']} | {a['answer_loss_delta']:+.3f} | {_ci(a['answer_loss_delta_ci'])} | "
                         f"{a['score_delta']:+.1f} | {_ci(a['score_delta_ci'], '{:.0f}')} |")
    lines += ["", "Per length (answer loss / score):", "",
              "| length | " + " | ".join(next(iter(result["per_length"].values()))["conditions"]) + " |",
              "|---|" + "---:|" * len(next(iter(result["per_length"].values()))["conditions"])]
    for length, entry in result["per_length"].items():
        cells = [f"{c['answer_loss']:.3f} / {c['score']:.0f}" for c in entry["conditions"].values()]
        lines.append(f"| {length_label(int(length))} | " + " | ".join(cells) + " |")
    if result["learned_layers"]:
        lines += ["", "## Learned positions", "",
                  "| length | range (median) | 5-95% spread | Spearman rho (median) | constant | monotonic | mixed |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for length, entry in result["per_length"].items():
            p = entry["positions"]
            share = p["class_share"]
            lines.append(f"| {length_label(int(length))} | {p['range_median']:.3g} | {p['spread_median']:.3g} | "
                         f"{p['rho_median']:+.2f} | {share['constant']:.0%} | {share['monotonic']:.0%} | "
                         f"{share['mixed']:.0%} |")
        longest = str(max(result["lengths"]))
        lines += ["", f"Per layer at {length_label(int(longest))}:", "",
                  "| layer | range (median) | spread | rho | head classes |", "|---|---:|---:|---:|---|"]
        for layer, p in result["per_length"][longest]["positions"]["layers"].items():
            classes = " ".join(h["class"][0] for h in p["per_head"])
            lines.append(f"| {layer} | {p['range_median']:.3g} | {p['spread_median']:.3g} | {p['rho_median']:+.2f} "
                         f"| `{classes}` |")
    lines += ["", "## Attention", ""]
    for length, entry in result["per_length"].items():
        rows = entry["attention"]["span_mass"]
        if not rows:
            continue
        lines += [f"{length_label(int(length))}: attention from the answer-predicting rows, mean over heads "
                  "(per token in brackets); each column averages the samples that have such tokens (distractor "
                  "needles: only tasks with them), so columns need not add up to 1: compare the per-token values", "",
                  "| layer | needle | distractors | rest of haystack | needle, top head |", "|---|---:|---:|---:|---:|"]
        for layer, r in rows.items():
            lines.append(f"| {layer} | {_num(r.get('needle_mass'))} ({_num(r.get('needle_per_token'), '{:.2g}')}) | "
                         f"{_num(r.get('distractor_mass'))} ({_num(r.get('distractor_per_token'), '{:.2g}')}) | "
                         f"{_num(r.get('haystack_mass'))} ({_num(r.get('haystack_per_token'), '{:.2g}')}) | "
                         f"{_num(r.get('needle_mass_top_head'))} |")
        lines.append("")
    lines += ["## Figures", ""] + [f"![{title}]({name})" for title, name in figures]
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in result["definitions"].items()]
    return "\n".join(lines) + "\n"


def comparison(results: list, figures: list) -> str:
    """Several models on the same samples: verdicts, ranges, needle attention and locality side by side."""
    lines = ["# Analysis: models compared on the same samples", "",
             "| model | scheme | verdict | " + " | ".join(f"range {length_label(L)}" for L in results[0]["lengths"])
             + " | Δ loss zeros | Δ loss nope |", "|---|---|---|" + "---:|" * (len(results[0]["lengths"]) + 2)]
    for r in results:
        nope = next((a for name, a in r["ablations"].items() if name.startswith("nope")), None)
        zeros = r["ablations"].get("zeros")
        lines.append(f"| {r['model']} | {r['scheme']} | {r['verdict'] or '–'} | "
                     + " | ".join(_num(r["position_range"].get(str(L)), "{:.3g}") for L in r["lengths"])
                     + f" | {_num(zeros and zeros['answer_loss_delta'], '{:+.3f}')}"
                     + f" | {_num(nope and nope['answer_loss_delta'], '{:+.3f}')} |")
    lines += ["", "Baseline answer loss / score per length:", "",
              "| model | " + " | ".join(length_label(L) for L in results[0]["lengths"]) + " |",
              "|---|" + "---:|" * len(results[0]["lengths"])]
    for r in results:
        cells = [f"{r['per_length'][str(L)]['conditions']['baseline']['answer_loss']:.3f} / "
                 f"{r['per_length'][str(L)]['conditions']['baseline']['score']:.0f}" for L in r["lengths"]]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += [""] + [headline(r) for r in results]
    lines += ["", "## Figures", ""] + [f"![{title}]({name})" for title, name in figures]
    lines += ["", "Each model's details: `<label>/analysis.md`."]
    return "\n".join(lines) + "\n"
