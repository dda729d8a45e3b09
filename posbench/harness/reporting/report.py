"""Reports from one or more run directories; every number comes from the DataFrames of reporting/frames.py.

    headline     per length: the best model on `avg`, its margin over the baseline with a 95% paired interval
    header       runs, models (scheme parameters per length, layer map, analysis verdict), tasks, manifest warnings
    main tables  per length: models x task groups (+ "avg"), group score = unweighted mean of its member tasks
                 (RULER-style), deltas against the baseline, best in bold; groups with the same tasks are one column
    details      per task and length: score [95% interval] n, the interval's method; then skipped and missing cells

Missing cells are "—", never 0. Variant tasks (`variant_of` set) count in their own groups but not in "avg". The same
blocks render as Markdown and as one self-contained HTML page; main tables also as CSV and LaTeX (pandas writers).
"""
import base64
import html
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from posbench.harness.evaluation.results import atomic_write_text, safe_name
from posbench.harness.reporting import FORMATS  # noqa: E402  (re-exported for callers)
from posbench.harness.reporting.frames import ReportError, length_key, length_name, load
from posbench.harness.reporting.tables import AVG, DASH, block_tasks, columns, group_scores, n_range
from posbench.position_schemes.base import format_layer_ids


def main_frame(res, length) -> pd.DataFrame:
    """One row per model: model, scheme, its scheme params at this length, baseline flag, group scores, deltas."""
    scores = group_scores(res, length)
    deltas = (scores - scores.loc[res.baseline]).add_suffix("_delta")
    deltas.loc[res.baseline] = float("nan")
    models = res.models.set_index("model")
    head = pd.DataFrame({"scheme": models["scheme"], "scheme_params": models["params_by_length"].map(
        lambda p: p.get(length, "")), "baseline": (models.index == res.baseline).astype(int)}, index=models.index)
    return pd.concat([head, scores, deltas], axis=1).rename_axis("model").reset_index()


def avg_column(res, length) -> str:
    return next(name for name in columns(res, length) if name.split(" = ")[-1] == AVG)


def headline(res) -> pd.DataFrame:
    """Per length and model: its avg, whether it is the best, its paired difference to the baseline on avg's tasks."""
    rows = []
    for length in res.lengths:
        scores = group_scores(res, length)[avg_column(res, length)].dropna()
        top = scores[scores == scores.max()].index
        best = res.baseline if res.baseline in top else top[0]         # a tie with the baseline is no win
        for model in scores.index if res.baseline in scores else []:
            p = res.paired(model, length=length, tasks=columns(res, length)[avg_column(res, length)]) \
                if model != res.baseline else {}
            rows.append({"length": length, "model": model, "avg": scores[model], "best": model == best,
                         **{k: p.get(k, float("nan")) for k in ("diff", "low", "high", "n")},
                         "method": p.get("method", ""), "significant": bool(p and (p["low"] > 0 or p["high"] < 0))})
    return pd.DataFrame(rows)


# ---- text -----------------------------------------------------------------------------------------------------------

def fmt(x, signed=False) -> str:
    if x is None or pd.isna(x):
        return DASH
    return f"{round(x, 1):+.1f}".replace("-0.0", "+0.0") if signed else f"{x:.1f}"


def layer_map(layers) -> str:
    """['rope', 'rope', 'nope', 'rope'] -> '4 layers: rope×3, nope×1 (nope at 2)'."""
    kinds = [x if isinstance(x, str) else str((x or {}).get("scheme") or (x or {}).get("name") or x)
             for x in layers or []]
    counts = Counter(kinds)
    if len(counts) <= 1:
        return f"all {len(kinds)} layers {kinds[0]}" if kinds else DASH
    major = counts.most_common(1)[0][0]
    where = [f"{k} at {format_layer_ids(i for i, x in enumerate(kinds) if x == k)}" for k in counts if k != major]
    return f"{len(kinds)} layers: {', '.join(f'{k}×{c}' for k, c in counts.items())} ({'; '.join(where)})"


def model_name(res, model) -> str:
    verdict = res.models.set_index("model")["verdict"].get(model)
    return f"`{model}`" + (" (baseline)" if model == res.baseline else "") + (
        " ⚠ positions collapsed" if verdict == "collapsed" else "")


def block_title(length) -> str:
    return ("Tasks at their native length (not length-controlled)" if not str(length).isdigit()
            else f"Context length {length_name(length)} ({length} tokens)")


def headline_lines(res) -> list:
    out = []
    for length, g in headline(res).groupby("length", sort=False):
        best, others = g[g["best"]].iloc[0], g[g["model"] != res.baseline]
        scheme = res.models.set_index("model").at[best["model"], "scheme"]
        tied = int((g["avg"] == best["avg"]).sum()) - 1
        line = (f"**{length_name(length)}**: `{best['model']}` ({scheme}) scores best on avg, {fmt(best['avg'])}"
                + (f" (tied with {tied} other model{'s' * (tied > 1)})" if tied else ""))
        if best["model"] == res.baseline:
            line += ", the baseline"
        else:
            line += (f", {fmt(best['diff'], True)} over `{res.baseline}` (95% paired interval {fmt(best['low'], True)}"
                     f" to {fmt(best['high'], True)}, {int(best['n'])} pairs, {best['method']})")
        sig = others[others["significant"]]
        line += (f"; no model differs significantly from `{res.baseline}`." if sig.empty else
                 f"; significantly different from `{res.baseline}`: "
                 + ", ".join(f"`{r['model']}` {fmt(r['diff'], True)}" for _, r in sig.iterrows()) + ".")
        out.append(line)
    return out


# ---- the report as blocks: ("h", level, text), ("p", text), ("ul", items), ("table", DataFrame), ("img", title, path)

def blocks(res, plots=None) -> list:
    out = [("h", 1, "posbench report")]
    ids = ", ".join(f"`{r}`" for r in res.runs["run"])
    out.append(("p", (f"Merged from {len(res.runs)} runs ({ids})" if len(res.runs) > 1 else f"From run {ids}")
                + f". Scores are on a 0–100 scale; n per cell = samples scored ({n_range(res.cells)}); "
                f"{int(res.cells['skipped'].sum())} samples skipped in all. Differences are against "
                f"`{res.baseline}`."))
    out += [("h", 2, "Headline"), ("ul", headline_lines(res) or ["No length has scores for the baseline."]),
            ("p", "Paired intervals compare the two models on the same samples (same prompts); a difference is "
                  "significant when its 95% interval excludes 0.")]
    out += _header(res)
    for length in res.lengths:
        out += _main(res, length)
    out += [("h", 2, "Per-task scores"), ("p", "Score (0–100) [95% interval] n = samples scored; the interval's "
                                              "method is named per row (Wilson for 0/1 scores, bootstrap otherwise).")]
    for length in res.lengths:
        out += [("h", 3, block_title(length)), ("table", _details(res, length))]
    out += _skipped(res)
    if plots:
        out += [("h", 2, "Plots")] + [("img", title, path) for title, path in plots.items()]
    return out


def _header(res) -> list:
    r = res.runs.astype(object).where(res.runs.notna() & (res.runs != ""), DASH)
    runs = pd.DataFrame({"run": "`" + r["run"] + "`", "directory": "`" + r["directory"] + "`",
                         "git commit": r["git_commit"], "device": r["device"],
                         "started → finished": r["started"].map(_date) + " → " + r["finished"].map(_date),
                         "seed": r["seed"].astype(str), "samples/cell": r["samples"].astype(str),
                         "models": r["models"].map(", ".join), "cells": r["cells"].astype(str)})
    out = [("h", 2, "Runs"), ("table", runs)]
    versions = set(res.runs["versions"])
    out += [("p", f"Versions: {versions.pop()}")] if len(versions) == 1 and "" not in versions else []
    m = res.models
    per_length = m["params_by_length"].map(lambda d: "; ".join(f"{length_name(k)}: {v or DASH}" for k, v in sorted(
        d.items(), key=lambda kv: length_key(kv[0]))) if len(set(d.values())) > 1 else DASH)
    models = pd.DataFrame({"model": [model_name(res, x) for x in m["model"]], "scheme": m["scheme"],
                           "path": m["path"].map(lambda p: f"`{p}`" if p else DASH),
                           "scheme params": m["scheme_params"].replace("", DASH), "params per length": per_length,
                           "layer map": m["layer_schemes"].map(layer_map), "runs": m["runs"].map(", ".join)})
    out += [("h", 2, "Models"), ("table", models)]
    t = res.tasks
    tasks = pd.DataFrame({"task": "`" + t["task"] + "`", "groups": t["groups"].map(lambda g: ", ".join(g) or DASH),
                          "metric (primary)": t["metric"], "variant of": t["variant_of"].replace("", DASH),
                          "lengths": t["lengths"].map(lambda ls: ", ".join(map(length_name, ls)))})
    if t["sampling"].notna().any():
        tasks["RULER sampling"] = t["sampling"].fillna(DASH)
    out += [("h", 2, "Tasks"), ("table", tasks), ("p", (
        f"A group's score is the unweighted mean of its member tasks' scores (RULER-style); `{AVG}` is the unweighted "
        "mean over all tasks of the block" + (", variant tasks excluded" if t["variant_of"].any() else "")
        + f". Columns with the same member tasks are shown once. Deltas are against `{res.baseline}`; the best value "
        f"per column is in bold. {DASH} = not measured (never counted as 0)."))]
    if len(res.warnings):
        out += [("h", 2, "Warnings"), ("ul", [f"{w} (run `{r}`)" for r, w in res.warnings.itertuples(index=False)])]
    if len(res.analysis):
        a = res.analysis.dropna(subset=["length"]).pivot_table(index=["model", "scheme", "verdict", "samples"],
                                                               columns="length", values="position_range", dropna=False)
        a = a.reindex(columns=sorted(a.columns, key=length_key)).map(fmt)
        a.columns = [f"position range at {length_name(x)}" for x in a.columns]
        out += [("h", 2, "Learned positions (eval.py analyze)"), ("table", a.reset_index().fillna(DASH)),
                ("p", "Rows of models whose positions collapsed are marked ⚠ in every table.")]
    return out


def _date(s) -> str:
    return str(s)[:16].replace("T", " ") if re.match(r"\d{4}-\d\d-\d\dT?", str(s)) else str(s)


def display_main(res, length) -> pd.DataFrame:
    """main_frame as text: "score (delta)", the best per column (of two or more values) in bold."""
    frame = main_frame(res, length)
    out = pd.DataFrame({"model": [model_name(res, x) for x in frame["model"]], "scheme": frame["scheme"],
                        "scheme params": frame["scheme_params"].replace("", DASH)})
    for name in columns(res, length):
        values, deltas = frame[name], frame[f"{name}_delta"]
        best = values.round(1).max() if values.notna().sum() >= 2 else None
        out[name] = [(f"**{fmt(v)}**" if best is not None and round(v, 1) == best else fmt(v))
                     + ("" if pd.isna(d) else f" ({fmt(d, True)})") for v, d in zip(values, deltas)]
    return out


def _main(res, length) -> list:
    here = res.cells[res.cells["length"] == length]
    skipped = int(here["skipped"].sum())
    out = [("h", 2, block_title(length)), ("p", f"n per cell = {n_range(here)} samples scored"
                                               + (f", {skipped} skipped" if skipped else "") + "."),
           ("table", display_main(res, length))]
    cols = [f"`{g}` = {', '.join(m)}" for g, m in columns(res, length).items() if m != [g]]
    return out + ([("p", "Columns: " + "; ".join(cols) + ".")] if cols else [])


def _details(res, length) -> pd.DataFrame:
    here = res.cells[res.cells["length"] == length].set_index(["task", "model"])
    rows = []
    for task in block_tasks(res, length):
        row = {"task": f"`{task}`", "metric": res.tasks.set_index("task").at[task, "metric"]}
        for model in res.models["model"]:
            c = here.loc[(task, model)] if (task, model) in here.index else None
            row[model_name(res, model)] = DASH if c is None else (
                fmt(c["score"]) + ("" if pd.isna(c["ci_low"]) else f" [{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]")
                + f" n={int(c['n'])}" + (f", {int(c['skipped'])} skipped" if c["skipped"] else ""))
        row["interval"] = ", ".join(sorted(set(here.loc[task, "interval"]))) if task in here.index else DASH
        rows.append(row)
    return pd.DataFrame(rows)


def _skipped(res) -> list:
    out = [("h", 2, "Skipped and missing")]
    skipped = res.cells[res.cells["skipped"] > 0]
    if skipped.empty:
        out.append(("p", "No samples were skipped."))
    else:
        s = res.samples.dropna(subset=["skip_reason"])             # numbers folded to N so alike reasons group
        reasons = s.assign(reason=s["skip_reason"].str.replace(r"\d+", "N", regex=True)).groupby(
            ["model", "task", "length", "reason"], sort=False).size()
        def why(c):
            r = reasons.get((c["model"], c["task"], c["length"]))
            return DASH if r is None else "; ".join(f"{k}× {w}" for w, k in r.sort_values(ascending=False).items())
        total, k = int(skipped["skipped"].sum()), len(skipped)
        out += [("p", f"{total} sample{'s' * (total != 1)} skipped in {k} cell{'s' * (k != 1)} (not scored, not "
                      "counted in n; numbers in reasons folded to N):"),
                ("table", pd.DataFrame({"model": "`" + skipped["model"] + "`", "task": "`" + skipped["task"] + "`",
                                        "length": skipped["length"].map(length_name),
                                        "skipped": skipped["skipped"].astype(int).astype(str),
                                        "scored": skipped["n"].astype(int).astype(str),
                                        "reasons": [why(c) for _, c in skipped.iterrows()]}))]
    if len(res.skipped_tasks):
        out += [("p", "Tasks skipped by the run:"), ("ul", [f"`{t}` ({r}): {w or 'no reason given'}"
                                                          for r, t, w in res.skipped_tasks.itertuples(index=False)])]
    if len(res.missing):
        out += [("p", f"{len(res.missing)} cell(s) declared in a manifest have no result (not run, or not finished):"),
                ("ul", [f"`{m}` · `{t}` · {length_name(x)} (run `{r}`)" for r, m, t, x in
                        res.missing.itertuples(index=False)])]
    return out


# ---- renderers ------------------------------------------------------------------------------------------------------

MARKDOWN = {"h": lambda level, text: "#" * level + " " + text, "p": str,
            "ul": lambda items: "\n".join(f"- {x}" for x in items),
            "table": lambda df: df.to_markdown(index=False, disable_numparse=True),
            "img": lambda title, path: f"![{title}]({path})"}


def render_markdown(items) -> str:
    return "\n\n".join(MARKDOWN[kind](*args) for kind, *args in items) + "\n"


def _inline(text) -> str:
    """Escaped HTML with the two Markdown marks the report uses: `code` and **bold**."""
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(str(text), quote=False))
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


SORT_JS = """document.querySelectorAll("table").forEach(t => { t.dataset.sortable = "yes";
  t.querySelectorAll("th").forEach((th, i) => th.addEventListener("click", () => {
    const key = r => { const s = r.cells[i].innerText, x = parseFloat(s.replace(/^[^0-9+-]+/, ""));
                       return isNaN(x) ? s : x; };
    const up = th.dataset.dir !== "up"; th.dataset.dir = up ? "up" : "down";
    [...t.tBodies[0].rows].sort((a, b) => { const p = key(a), q = key(b);
      return (typeof p === typeof q ? (p < q ? -1 : p > q) : typeof p === "number" ? -1 : 1) * (up ? 1 : -1); })
      .forEach(r => t.tBodies[0].appendChild(r)); })); });"""
CSS = ("body{font:14px system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "th{background:#eee;cursor:pointer}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
       "code{background:#f3f3f3;padding:0 3px}")


def render_html(items, root: Path) -> str:
    """One self-contained page: plots inlined as data URIs (read from under root), tables sortable by a click."""
    def image(title, path):
        data = base64.b64encode((root / path).read_bytes()).decode()
        return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"><figcaption>'
                f"{_inline(title)}</figcaption></figure>")
    kinds = {"h": lambda level, text: f"<h{level}>{_inline(text)}</h{level}>", "p": lambda t: f"<p>{_inline(t)}</p>",
             "ul": lambda items: "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>",
             "table": lambda df: df.map(_inline).rename(columns=_inline).to_html(index=False, escape=False, border=0),
             "img": image}
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>posbench report</title><style>{CSS}</style>'
            "</head><body>\n" + "\n".join(kinds[kind](*args) for kind, *args in items)
            + f"\n<script>{SORT_JS}</script></body></html>\n")


def tex_escape(s) -> str:
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
             "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "---", "–": "--",
             "×": r"$\times$", "⚠": "(!)", "`": ""}
    return "".join(table.get(ch, ch) for ch in str(s))


def render_tex(res) -> str:
    """booktabs tables (pandas' to_latex), one per length, best per column bold; needs \\usepackage{booktabs}."""
    out = [f"% posbench report: {', '.join(res.runs['run'])}; needs \\usepackage{{booktabs}}", ""]
    for length in res.lengths:
        table = display_main(res, length).rename(columns=tex_escape)
        table = table.map(lambda s: re.sub(r"\*\*(.*?)\*\*", r"\\textbf{\1}", tex_escape(s)))
        caption = (f"{block_title(length)}: task-group scores (0--100, unweighted mean of member tasks), deltas "
                   f"against {res.baseline}, best per column in bold; n = "
                   f"{n_range(res.cells[res.cells['length'] == length])} samples per task.")
        out.append(table.to_latex(index=False, escape=False, column_format="lll" + "r" * (table.shape[1] - 3),
                                  caption=tex_escape(caption), label=f"tab:posbench-{safe_name(length)}",
                                  position="t"))
    return "\n".join(out)


def render_csv(res) -> dict:
    """{file name: text}: the tidy cells table, and one wide table per length (deltas in their own columns)."""
    files = {"cells.csv": res.cells.assign(groups=res.cells["groups"].map(";".join)).to_csv(index=False)}
    for length in res.lengths:
        files[f"report_{safe_name(length)}.csv"] = main_frame(res, length).round(2).to_csv(index=False)
    return files


# ---- the command's work ---------------------------------------------------------------------------------------------

def write_report(run_dirs, out=None, baseline=None, formats=("md",), plots=True) -> list:
    """Write the merged runs' report in `formats` (and plots) into `out` (default: the first run); the paths written."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ReportError(f"--format: unknown format(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {','.join(FORMATS)}")
    res = load(run_dirs, baseline=baseline)
    out = Path(out or run_dirs[0])
    written, links = [], {}
    if plots:
        from posbench.harness.reporting.plots import write_plots
        for title, path in write_plots(res, out / "plots").items():
            links[title] = path.relative_to(out).as_posix()
            written.append(path)
    texts = {"md": lambda: {"report.md": render_markdown(blocks(res, links))}, "csv": lambda: render_csv(res),
             "html": lambda: {"report.html": render_html(blocks(res, links), out)},
             "tex": lambda: {"report.tex": render_tex(res)}}
    texts = {name: text for f in FORMATS if f in formats for name, text in texts[f]().items()}
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        written.append(out / name)
    return written
