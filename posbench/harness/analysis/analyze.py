"""`eval.py analyze`: what a position scheme does inside a model, on the same task samples for every scheme.

Per sample and condition (the model as it is, then each ablation) one prefill of the prompt gives the first answer
token's log-probability, the gold answer forced through the cache gives the rest (the answer loss: mean negative
log-likelihood per answer token), and greedy decoding from the same prefill gives the prediction the task scores.
The unablated pass also records the learned positions of every RePo layer and, through an eager fp32 re-computation
of attention (posbench/harness/analysis/probe.py), the attention the answer-predicting rows pay to the needle, to
distractor needles and to the rest of the haystack, and the mean attention against token distance.

Ablations: the learned positions of every RePo layer replaced by zeros, shuffled across the prompt's tokens, or the
integer index; and a layer range switched to NoPE (default: the model's integer-RoPE layers). Verdict (models with
learned positions only): `in use` when replacing them by zeros or by a shuffle changes the answer loss by more than
`tolerance` nats per answer token (the 95% bootstrap interval of the mean per-sample change lies wholly above
+tolerance or below -tolerance) or changes the task score (its interval excludes 0); `collapsed` otherwise: the
learned values could be replaced by zeros (NoPE in those layers) without a measurable difference. The integer index
is reported but not part of the verdict: a model trained with small positions breaks under large ones whether or
not it uses their differences.
"""
import dataclasses
import json
import re
import time
from pathlib import Path

import torch

from posbench.harness.analysis.positions import head_stats, summarize_heads
from posbench.harness.analysis.probe import POSITION_ABLATIONS, Probe, distance_bins
from posbench.harness.evaluation.results import bootstrap_ci, length_label

SCHEMA_VERSION = 1


@dataclasses.dataclass
class AnalyzeOptions:
    tasks: list
    lengths: list
    samples: int = 5
    seed: int = 42
    nope_layers: list = None          # None: the model's integer-RoPE layers
    tolerance: float = 0.05           # nats per answer token
    locality_rows: int = 64           # prompt rows per sample for the locality profile
    plot_samples: int = 1             # samples per length drawn in the positions figure
    max_new_tokens: int = None        # None: each task's own
    device: str = "auto"
    dtype: str = "auto"
    include_paths: list = dataclasses.field(default_factory=list)
    data_root: str = None
    data: dict = dataclasses.field(default_factory=dict)

    def describe(self) -> dict:
        """What decides the numbers (kept in analysis.json, compared when a sweep resumes)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


# ---- needle spans -----------------------------------------------------------------------------------------------

def _needle_pattern():
    from posbench.tasks.ruler.common import NEEDLE

    pattern = re.escape(NEEDLE)
    for field, group in (("type_needle_v", r"[a-z ]+?"), ("key", r"(?P<key>\S+?)"), ("value", r"(?P<value>\S+?)")):
        pattern = pattern.replace(re.escape("{" + field + "}"), group)
    return re.compile(pattern)


def needle_spans(sample) -> dict | None:
    """Character ranges {"needle": [(start, end)], "distractor": [...]} in the prompt, from the sample's metadata:
    RULER niah (needles of the asked keys; every other needle sentence is a distractor) and variable tracking (the
    asked chain's lines; other chains' lines are distractors). None for tasks without needles."""
    meta, prompt = sample.metadata or {}, sample.prompt
    if "needles" in meta and "queries" in meta:
        asked = set(meta["queries"])
        spans = {"needle": [], "distractor": []}
        for match in _needle_pattern().finditer(prompt):
            spans["needle" if match["key"] in asked else "distractor"].append(match.span())
        return spans if spans["needle"] else None
    if "chains" in meta and "char_offsets" in meta:
        spans = {"needle": [(start, start + len(line.strip()))
                            for start, line in zip(meta["char_offsets"], meta["chains"][0])], "distractor": []}
        for chain in meta["chains"][1:]:
            for line in chain:
                at = prompt.rfind(line.strip())
                if at >= 0:
                    spans["distractor"].append((at, at + len(line.strip())))
        return spans
    return None


def span_tokens(offsets: list, spans: dict, haystack_end: int) -> dict:
    """Token indices of each span kind, plus "haystack": the other tokens that end before haystack_end (the prompt
    up to its last line, where RULER puts the question)."""
    out, taken = {}, set()
    for name, ranges in spans.items():
        idx = [i for i, (a, b) in enumerate(offsets) if b > a and any(a < end and b > start for start, end in ranges)]
        out[name] = idx
        taken.update(idx)
    out["haystack"] = [i for i, (a, b) in enumerate(offsets) if b > a and b <= haystack_end and i not in taken]
    return {name: torch.tensor(idx, dtype=torch.long) for name, idx in out.items()}


# ---- one sample under one condition --------------------------------------------------------------------------------

def answer_ids(engine, sample) -> tuple:
    """(prompt token ids exactly as generation encodes them, token ids of the first gold answer as the models write
    it: after a space, also when the prompt ends in one; RULER's vt prompt ends in "are: " and the reference models
    answer " PGUVM, ...")."""
    answer = engine.tokenizer(" " + str(sample.answers[0]), add_special_tokens=False)["input_ids"]
    return engine.encode(sample.prompt), answer


@torch.inference_mode()
def run_sample(engine, spec, sample, probe: Probe, max_new_tokens=None) -> dict:
    """{"answer_loss", "score", "prediction", "positions": per layer [N, P] (RePo layers) or None}."""
    from posbench.harness.evaluation.engine import truncate_at_stop
    from posbench.tasks import score_sample

    model, device = engine.model, engine.device
    ctx_ids, ans_ids = answer_ids(engine, sample)
    new = sample.max_new_tokens if max_new_tokens is None else min(max_new_tokens, sample.max_new_tokens)
    cache = model.setup_cache(1, len(ctx_ids) + max(len(ans_ids), new) + 1)
    logits, positions = model(torch.tensor([ctx_ids], device=device), cache=cache, last_only=True,
                              return_positions=True, probe=probe)
    first = logits[0, -1].float().log_softmax(-1)
    nll = [-float(first[ans_ids[0]])]
    if len(ans_ids) > 1:
        rest = model(torch.tensor([ans_ids[:-1]], device=device), cache=cache, probe=probe)
        rest = rest[0].float().log_softmax(-1)
        nll += [-float(rest[i, ans_ids[i + 1]]) for i in range(len(ans_ids) - 1)]
    probe.spans, probe.locality_rows = None, 0           # measure the teacher-forced pass only
    cache.offset = len(ctx_ids)                          # greedy decoding overwrites the forced answer
    token, out = int(first.argmax()), []
    for _ in range(new):
        if token in engine.eos_ids:
            break
        out.append(token)
        if sample.stop and truncate_at_stop(engine.tokenizer.decode(out[-64:]), sample.stop)[1]:
            break
        logits = model(torch.tensor([[token]], device=device), cache=cache, last_only=True, probe=probe)
        token = int(logits[0, -1].argmax())
    text = truncate_at_stop(engine.tokenizer.decode(out, skip_special_tokens=True), sample.stop)[0]
    scores = score_sample(spec, sample, text)
    learned = {i: p[0].float().cpu() for i, p in enumerate(positions) if p is not None and p.dim() == 3}
    return {"answer_loss": sum(nll) / len(nll), "score": float(scores[spec.primary_metric]),
            "prediction": text, "positions": learned, "prompt_tokens": len(ctx_ids)}


# ---- the analysis ---------------------------------------------------------------------------------------------------

def conditions_for(layer_kinds: list, nope_layers) -> dict:
    """{condition name: {layer: replacement}}: the model as it is, then every ablation that applies."""
    learned = [i for i, kind in enumerate(layer_kinds) if kind == "repo"]
    integer = [i for i, kind in enumerate(layer_kinds) if kind == "rope"]
    out = {"baseline": {}}
    for how in POSITION_ABLATIONS if learned else ():
        out[how] = {i: how for i in learned}
    if nope_layers is not None:
        outside = [i for i in nope_layers if not 0 <= i < len(layer_kinds)]
        if outside:
            from posbench.harness.evaluation.sweep import SweepError
            raise SweepError(f"--nope-layers: layer {outside[0]} is outside the model's layers "
                             f"0-{len(layer_kinds) - 1}")
    nope = integer if nope_layers is None else [i for i in nope_layers if layer_kinds[i] != "nope"]
    if nope:
        out[f"nope {_layer_range(nope)}"] = {i: "nope" for i in nope}
    return out


def _layer_range(layers) -> str:
    from posbench.position_schemes import format_layer_ids

    return "layers " + format_layer_ids(layers)


def _ci(values, scale, seed):
    lo, hi = bootstrap_ci(values, scale=scale, seed=seed)
    return [lo, hi]


def verdict(ablations: dict, tolerance: float):
    """`in use` / `collapsed` from the zeros and shuffled ablations (see the module docstring); None without them."""
    tested = [ablations[name] for name in ("zeros", "shuffled") if name in ablations]
    if not tested:
        return None
    for a in tested:
        loss_low, loss_high = a["answer_loss_delta_ci"]
        score_low, score_high = a["score_delta_ci"]
        if loss_low is not None and (loss_low > tolerance or loss_high < -tolerance):
            return "in use"
        if score_low is not None and (score_low > 0 or score_high < 0):
            return "in use"
    return "collapsed"


def analyze_model(path, scheme_for, label: str, options: AnalyzeOptions, out_dir, echo=print) -> dict:
    """Analyse one model; writes analysis.json, analysis.md and plots into out_dir and returns the JSON object.
    scheme_for(length) -> (name or None, params): the scheme at each length (e.g. YaRN factors per length)."""
    from posbench.harness.analysis import plots, report
    from posbench.harness.evaluation.data import data_paths
    from posbench.harness.evaluation.engine import TorchEngine, resolve_device
    from posbench.harness.evaluation.manifest import device_info, git_commit, now, versions
    from posbench.tasks import TaskRegistry, build_samples
    from posbench.tasks.schema import sampling_mode

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device, dtype = resolve_device(options.device, options.dtype)
    specs = TaskRegistry(include_paths=options.include_paths).resolve(options.tasks)
    specs = [s for s in specs if s.length_controlled and s.output_type != "multiple_choice"]
    if not specs:
        from posbench.harness.evaluation.sweep import SweepError
        raise SweepError(f"--task {','.join(options.tasks)}: analyze needs generative, length-controlled tasks "
                         "(e.g. niah_single_1, vt)")
    paths = data_paths(options.data_root, [f"{k}={v}" for k, v in options.data.items()])
    engine = None
    per_length, plot_data, schemes = {}, {}, {}
    for length in options.lengths:
        engine = TorchEngine.load(path, scheme=scheme_for(length), device=device, dtype=dtype, batch_size=1,
                                  reuse=engine)
        schemes[str(length)] = engine.model.scheme.spec()
        kinds = engine.layer_schemes
        conditions = conditions_for(kinds, options.nope_layers)
        records = {name: [] for name in conditions}
        head_samples, attention, plot_data[length] = [], {"span": {}, "locality": {}}, []
        for spec in specs:
            # fill sampling (RULER's tasks have both): every prompt fills the length, so a position range read at
            # "16K" spans 16K tokens, and the samples carry the needle metadata the spans come from
            samples = build_samples(spec, engine.tokenizer, length=length, num_samples=options.samples,
                                    seed=options.seed, data_paths=paths, sampling=sampling_mode(spec, "fill"))
            for sample in samples:
                if sample.skip_reason:
                    continue
                spans = needle_spans(sample)
                tok = engine.tokenizer(sample.prompt, add_special_tokens=True, return_offsets_mapping=True)
                token_spans = None
                if spans:
                    token_spans = span_tokens(tok["offset_mapping"], spans, sample.prompt.rfind("\n") + 1)
                for name, replace in conditions.items():
                    measure = name == "baseline"
                    probe = Probe(replace, shuffle_seed=options.seed + sample.index,
                                  spans=token_spans if measure else None,
                                  query_from=len(tok["input_ids"]) - 1,
                                  locality_rows=options.locality_rows if measure else 0)
                    result = run_sample(engine, spec, sample, probe, options.max_new_tokens)
                    records[name].append({"task": spec.name, "index": sample.index,
                                          "answer_loss": result["answer_loss"], "score": result["score"],
                                          "prediction": result["prediction"]})
                    if measure:
                        _add_attention(attention, probe)
                        if result["positions"]:
                            head_samples.append({layer: head_stats(p) for layer, p in result["positions"].items()})
                            if len(plot_data[length]) < options.plot_samples:
                                plot_data[length].append({"task": spec.name, "index": sample.index,
                                                          "positions": result["positions"],
                                                          "spans": {k: v.tolist() for k, v in
                                                                    (token_spans or {}).items() if k != "haystack"}})
        per_length[length] = {
            "conditions": _summarize_conditions(records, options.seed),
            "positions": summarize_heads(head_samples) if head_samples else None,
            "attention": _summarize_attention(attention),
            "samples": records,
        }
        base = per_length[length]["conditions"]["baseline"]
        echo(f"{label} | {length_label(length)} | answer loss {base['answer_loss']:.3f} | score {base['score']:.1f}"
             + (f" | position range {per_length[length]['positions']['range_median']:.3g}"
                if per_length[length]["positions"] else ""))

    kinds = engine.layer_schemes
    learned = [i for i, k in enumerate(kinds) if k == "repo"]
    ablations = {name: _pooled_delta(per_length, name, options.seed)
                 for name in next(iter(per_length.values()))["conditions"] if name != "baseline"}
    result = {
        "model": label,
        "path": str(path),
        "scheme": engine.scheme_name,
        "verdict": verdict(ablations, options.tolerance) if learned else None,
        "position_range": {str(L): per_length[L]["positions"]["range_median"]
                           for L in options.lengths if per_length[L]["positions"]},
        "lengths": list(options.lengths),
        "samples": options.samples,
        "schema_version": SCHEMA_VERSION,
        "tasks": [s.name for s in specs],
        "scheme_spec": schemes,
        "layer_schemes": kinds,
        "learned_layers": learned,
        "tolerance": options.tolerance,
        "options": options.describe(),
        "ablations": ablations,
        "per_length": {str(L): {k: v for k, v in per_length[L].items() if k != "samples"} for L in options.lengths},
        "definitions": _definitions(),
        "manifest": {"seed": options.seed, "device": device_info(device), "dtype": str(dtype).replace("torch.", ""),
                     "versions": versions(), **git_commit(), "finished": now(),
                     "seconds": round(time.perf_counter() - started, 1)},
    }
    _write_json(out_dir / "analysis.json", result)
    _write_json(out_dir / "samples.json", {str(L): per_length[L]["samples"] for L in options.lengths})
    figures = plots.draw_all(result, plot_data, out_dir)
    (out_dir / "analysis.md").write_text(report.markdown(result, figures), encoding="utf-8")
    return result


def _add_attention(acc: dict, probe: Probe):
    for layer, mass in probe.span_mass.items():
        entry = acc["span"].setdefault(layer, {"rows": 0, "per_sample": []})
        rows = mass["rows"]
        sizes = probe.span_sizes
        # per sample: mean over query rows; per head kept for the "top head" view
        entry["per_sample"].append({name: (mass[name] / rows).tolist() for name in sizes if name in mass}
                                   | {f"{name}_tokens": n for name, n in sizes.items()})
    for layer, (sums, counts) in probe.locality.items():
        old = acc["locality"].get(layer, (0, 0))
        acc["locality"][layer] = (old[0] + sums, old[1] + counts)


def _summarize_attention(acc: dict) -> dict:
    span_out = {}
    for layer, entry in sorted(acc["span"].items()):
        samples = entry["per_sample"]
        row = {}
        for name in ("needle", "distractor", "haystack"):
            heads = [s[name] for s in samples if name in s and s.get(f"{name}_tokens")]
            if not heads:
                row[f"{name}_mass"] = None
                continue
            mean_over_heads = [sum(h) / len(h) for h in heads]
            row[f"{name}_mass"] = sum(mean_over_heads) / len(heads)
            row[f"{name}_mass_top_head"] = sum(max(h) for h in heads) / len(heads)
            per_token = [sum(h) / len(h) / s[f"{name}_tokens"] for h, s in
                         zip(heads, [s for s in samples if name in s and s.get(f"{name}_tokens")])]
            row[f"{name}_per_token"] = sum(per_token) / len(per_token)
        span_out[str(layer)] = row
    bins = distance_bins(1 << 20)
    locality = {}
    for layer, (sums, counts) in sorted(acc["locality"].items()):
        locality[str(layer)] = [{"distance": [lo, hi], "mean_attention": float(s / c)}
                                for (lo, hi), s, c in zip(bins, sums.tolist(), counts.tolist()) if c > 0]
    return {"span_mass": span_out, "locality": locality}


def _summarize_conditions(records: dict, seed: int) -> dict:
    out = {}
    base = records["baseline"]
    for name, recs in records.items():
        losses = [r["answer_loss"] for r in recs]
        scores = [r["score"] for r in recs]
        row = {"answer_loss": sum(losses) / len(losses) if losses else None,
               "score": 100 * sum(scores) / len(scores) if scores else None, "n": len(recs)}
        if name != "baseline":
            d_loss = [r["answer_loss"] - b["answer_loss"] for r, b in zip(recs, base)]
            d_score = [r["score"] - b["score"] for r, b in zip(recs, base)]
            row |= {"answer_loss_delta": sum(d_loss) / len(d_loss), "answer_loss_delta_ci": _ci(d_loss, 1.0, seed),
                    "score_delta": 100 * sum(d_score) / len(d_score), "score_delta_ci": _ci(d_score, 100.0, seed)}
        out[name] = row
    return out


def _pooled_delta(per_length: dict, name: str, seed: int) -> dict:
    """An ablation's per-sample changes pooled over every length and task: what the verdict reads."""
    d_loss, d_score = [], []
    for entry in per_length.values():
        recs, base = entry["samples"].get(name, []), entry["samples"]["baseline"]
        d_loss += [r["answer_loss"] - b["answer_loss"] for r, b in zip(recs, base)]
        d_score += [r["score"] - b["score"] for r, b in zip(recs, base)]
    if not d_loss:
        return {"n": 0}
    return {"n": len(d_loss), "answer_loss_delta": sum(d_loss) / len(d_loss),
            "answer_loss_delta_ci": _ci(d_loss, 1.0, seed), "score_delta": 100 * sum(d_score) / len(d_score),
            "score_delta_ci": _ci(d_score, 100.0, seed)}


def _definitions() -> dict:
    from posbench.harness.analysis import positions

    return {
        "answer_loss": "mean negative log-likelihood (nats) per token of the first gold answer (after a space, as the "
                       "models write it), teacher-forced after the prompt's own tokens",
        "position_range": "per learned head and sample, max - min of its positions over the prompt's tokens; "
                          "the median over heads and samples",
        "classes": f"monotonic: |Spearman rho with the token index| >= {positions.MONOTONIC_RHO}; constant: "
                   f"otherwise, and the 5th-95th percentile spread < {positions.CONSTANT_SPREAD} x prompt tokens; "
                   "mixed: the rest",
        "verdict": "in use: replacing the learned positions by zeros or a shuffle moves the answer loss by more than "
                   "the tolerance or the score at all (95% bootstrap interval of the mean per-sample change, pooled "
                   "over lengths and tasks); collapsed otherwise",
        "span_mass": "attention the answer-predicting rows (last prompt token and the forced answer's tokens) pay "
                     "to the needle / distractor / other haystack tokens, mean over heads and rows, then over the "
                     "samples that have such tokens; per token: that mass divided by the span's token count",
        "locality": "mean attention weight a key receives at each token distance (log2 bins), over evenly spaced "
                    "prompt rows, heads and samples",
    }


def _write_json(path: Path, obj):
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)



def analyze_models(entries, options: AnalyzeOptions, out_dir, echo=print) -> list:
    """Analyse several models (sweep ModelEntry objects) on the same samples: OUT/<label>/analysis.json each, and
    OUT/comparison.md with side-by-side figures when there are two or more."""
    out_dir = Path(out_dir)
    results = [analyze_model(e.path, e.scheme_for, e.label, options, out_dir / e.label, echo) for e in entries]
    if len(results) > 1:
        write_comparison(results, out_dir)
    return results


def write_comparison(results: list, out_dir) -> Path:
    """OUT/comparison.md with side-by-side needle-attention and locality figures, from analysis.json objects (of
    models analysed on the same tasks, lengths and seed, hence the same samples)."""
    from posbench.harness.analysis import plots, report

    out_dir = Path(out_dir)
    longest = max(results[0]["lengths"])
    figures = []
    if any(r["per_length"][str(longest)]["attention"]["span_mass"] for r in results):
        plots.needle_figure(results, longest, out_dir / "needle_attention.png")
        figures.append((f"attention on the needle, {longest} tokens", "needle_attention.png"))
    plots.locality_figure(results, longest, out_dir / "locality.png")
    figures.append((f"locality profile, {longest} tokens", "locality.png"))
    path = out_dir / "comparison.md"
    path.write_text(report.comparison(results, figures), encoding="utf-8")
    return path


def combine_lengths(part_dirs: list, out_dir) -> dict:
    """One model's analyses at different lengths (e.g. one process or GPU per length, same options otherwise)
    combined into one: per-length results side by side, the pooled ablations and the verdict recomputed from the
    per-sample records (samples.json)."""
    import shutil

    from posbench.harness.analysis import plots, report
    from posbench.harness.evaluation.sweep import SweepError

    parts = [(json.loads((Path(d) / "analysis.json").read_text(encoding="utf-8")),
              json.loads((Path(d) / "samples.json").read_text(encoding="utf-8")), Path(d)) for d in part_dirs]
    first = parts[0][0]
    same = {k: v for k, v in first["options"].items() if k != "lengths"}
    for result, _, where in parts[1:]:
        if result["model"] != first["model"] or {k: v for k, v in result["options"].items() if k != "lengths"} != same:
            raise SweepError(f"{where}: not the same model and options as {parts[0][2]}; only lengths may differ")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged, samples = dict(first), {}
    for key in ("per_length", "position_range", "scheme_spec"):
        merged[key] = {k: v for result, _, _ in parts for k, v in result[key].items()}
    for _, records, where in parts:
        samples.update(records)
        for png in where.glob("positions_*.png"):
            shutil.copy(png, out_dir / png.name)
    merged["lengths"] = sorted(int(k) for k in merged["per_length"])
    merged["per_length"] = {str(L): merged["per_length"][str(L)] for L in merged["lengths"]}
    merged["options"] = {**first["options"], "lengths": merged["lengths"]}
    merged["manifest"] = {**first["manifest"], "seconds": round(sum(r["manifest"]["seconds"] for r, _, _ in parts), 1),
                          "combined_from": [str(w) for _, _, w in parts]}
    per_length = {L: {"samples": samples[L]} for L in samples}
    names = [n for n in next(iter(merged["per_length"].values()))["conditions"] if n != "baseline"]
    merged["ablations"] = {n: _pooled_delta(per_length, n, first["options"]["seed"]) for n in names}
    merged["verdict"] = verdict(merged["ablations"], merged["tolerance"]) if merged["learned_layers"] else None
    _write_json(out_dir / "analysis.json", merged)
    _write_json(out_dir / "samples.json", samples)
    figures = [(f"learned positions, {png.stem.split('_')[1]} tokens", png.name)
               for png in sorted(out_dir.glob("positions_*.png"), key=lambda p: int(p.stem.split("_")[1]))]
    if merged["learned_layers"]:
        plots.range_figure(merged, out_dir / "position_range.png")
        figures.append(("position range against context length", "position_range.png"))
    longest = max(merged["lengths"])
    if merged["per_length"][str(longest)]["attention"]["span_mass"]:
        plots.needle_figure([merged], longest, out_dir / "needle_attention.png")
        figures.append((f"attention on the needle, {longest} tokens", "needle_attention.png"))
    plots.locality_figure([merged], longest, out_dir / "locality.png")
    figures.append((f"locality profile, {longest} tokens", "locality.png"))
    (out_dir / "analysis.md").write_text(report.markdown(merged, figures), encoding="utf-8")
    return merged


def analyze_sweep(sweep, specs, root: Path, device: str, echo=print):
    """The sweep's `analyze` key: `eval.py analyze` on every model into RUN_DIR/analysis/<label>/. A model whose
    analysis.json was written with the same options is kept (a resumed sweep does not redo it)."""
    tasks = sweep.analyze.get("tasks") or [s.name for s in specs if s.length_controlled
                                           and s.output_type != "multiple_choice"]
    options = AnalyzeOptions(tasks=tasks, lengths=sweep.analyze.get("lengths") or sweep.lengths,
                             samples=sweep.analyze.get("samples", 5), seed=sweep.seed, device=device,
                             dtype=sweep.dtype, include_paths=sweep.include_paths, data_root=sweep.data_root,
                             data=sweep.data)
    todo = []
    for entry in sweep.models:
        done = root / "analysis" / entry.label / "analysis.json"
        if done.is_file() and json.loads(done.read_text(encoding="utf-8")).get("options") == options.describe():
            echo(f"analysis of {entry.label}: kept ({done})")
            continue
        todo.append(entry)
    if todo:
        analyze_models(todo, options, root / "analysis", echo)
