"""Synthetic run directories for the report tests: manifest, summary.csv and sample logs written with the
results-store helpers, so every number the report shows is known in advance."""
from posbench.harness.evaluation.results import RunDir, bootstrap_ci, length_label

RULER_TASKS = [  # name, groups, metric, variant_of, length_controlled, needle?
    ("niah_single_1", ["ruler", "ruler_niah"], "string_match_all", "", True, True),
    ("niah_multikey_1", ["ruler", "ruler_niah"], "string_match_all", "", True, True),
    ("vt", ["ruler", "ruler_vt"], "string_match_all", "", True, False),
    ("qa_1", ["ruler", "ruler_qa"], "string_match_part", "", True, False),
    ("qa_1_repo", ["ruler_qa_repo"], "string_match_part", "qa_1", True, False),
    ("hybridqa", [], "exact_match", "", False, False),
]
MODELS = [  # label, scheme, layer kinds
    ("nope-1b", "nope", ["nope"] * 4),
    ("rope-1b", "rope", ["rope"] * 4),
    ("hybrid-1b", "hybrid", ["rope", "rope", "rope", "nope"]),
    ("repo-1b", "repo", ["rope", "repo", "repo", "repo"]),
]


def default_score(model, task, length):
    """A deterministic, distinct-per-cell score in [0, 1] per sample (every sample of a cell scores the same)."""
    base = {"nope-1b": 0.30, "rope-1b": 0.50, "hybrid-1b": 0.60, "repo-1b": 0.70}[model]
    drop = {"4096": 0.0, "8192": 0.1, "16384": 0.2, "native": 0.05}[length]
    return round(max(0.0, base - drop + 0.01 * (len(task) % 5)), 4)


def make_run(root, run_id="run-a", models=MODELS, tasks=RULER_TASKS, lengths=(4096, 8192, 16384), n=4,
             score=default_score, present=lambda m, t, length: True, skipped=None, depth=None, manifest_extra=None):
    """Write manifest, summary and samples. `skipped`: {(model, task, length): k} samples skipped (over budget);
    `depth(model, task, length, index)` -> (depth %, score) overrides needle samples."""
    run = RunDir(root)
    skipped = skipped or {}
    manifest = {
        "run_id": run_id, "git_commit": "0123456789abcdef", "versions": {"python": "3.11", "torch": "2.13.0"},
        "device": {"type": "cpu", "name": "synthetic"}, "started": "2025-01-02T03:04:05",
        "finished": "2025-01-02T04:05:06", "seed": 7, "config": {}, "samples": n, "lengths": list(lengths),
        "models": [{"label": m, "path": f"/models/{m}", "scheme": s, "scheme_params": {}, "layer_schemes": ls}
                   for m, s, ls in models],
        "tasks": [{"name": t, "groups": g, "primary_metric": metric, "variant_of": v, "length_controlled": lc}
                  for t, g, metric, v, lc, _ in tasks],
    }
    manifest.update(manifest_extra or {})
    run.write_manifest(manifest)
    rows = []
    for label, scheme, _ in models:
        for name, groups, metric, variant, controlled, needle in tasks:
            for length in (lengths if controlled else [None]):
                lab = length_label(length)
                if not present(label, name, lab):
                    continue
                k = skipped.get((label, name, lab), 0)
                log = run.sample_log(label, name, length)
                values = []
                for i in range(n + k):
                    s, meta = score(label, name, lab), {}
                    if needle:
                        d, s2 = depth(label, name, lab, i) if depth else (100.0 * (i % 5) / 4, s)
                        meta, s = {"depth": d}, s2
                    skip = f"prompt has {4000 + i} tokens, over the budget of 3968 at length {lab}" if i >= n else None
                    if skip is None:
                        values.append(s)
                    log.append({"index": i, "prompt_hash": "x", "prediction": "p", "answers": ["a"],
                                "scores": {} if skip else {metric: s}, "token_count": 10, "new_tokens": 2,
                                "max_new_tokens": 32, "metadata": meta, "skip_reason": skip,
                                "timings": {"prefill_s": 0.1, "decode_s": 0.1, "batch_size": 1}})
                lo, hi = bootstrap_ci(values)
                rows.append({"model": label, "scheme": scheme, "task": name, "groups": ";".join(groups),
                             "length": lab, "metric": metric,
                             "score": round(100 * sum(values) / len(values), 2) if values else "",
                             "ci_low": "" if lo is None else lo, "ci_high": "" if hi is None else hi, "n": len(values),
                             "skipped": k, "variant_of": variant})
    run.write_summary(rows)
    return root


SMALL_TASKS = [  # a in g1; b in g1 and g2; c in g2; c_v re-defines c (own group g3)
    ("t_a", ["g1"], "acc", "", True, False),
    ("t_b", ["g1", "g2"], "acc", "", True, False),
    ("t_c", ["g2"], "f1", "", True, False),
    ("t_c_v", ["g3"], "f1", "t_c", True, False),
]
SMALL_MODELS = [("nope", "nope", ["nope"] * 2), ("rope", "rope", ["rope"] * 2), ("hyb", "hybrid", ["rope", "nope"])]
SMALL_SCORES = {  # model -> task -> per-sample score (same at both lengths except where noted)
    "nope": {"t_a": 0.40, "t_b": 0.50, "t_c": 0.60, "t_c_v": 0.30},
    "rope": {"t_a": 0.60, "t_b": 0.70, "t_c": 0.80, "t_c_v": 0.50},
    "hyb": {"t_a": 0.65, "t_b": 0.72, "t_c": 0.75, "t_c_v": 0.90},
}


def small_run(root, **kw):
    kw.setdefault("lengths", (4096, 8192))
    return make_run(root, models=kw.pop("models", SMALL_MODELS), tasks=kw.pop("tasks", SMALL_TASKS),
                    score=lambda m, t, length: SMALL_SCORES[m][t], **kw)
