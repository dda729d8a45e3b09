"""The numbers both the report and its plots are made of: a length's columns (task groups, merged when they hold
the same tasks, then "avg") and each model's score per column, from the DataFrames of reporting/frames.py."""
import pandas as pd

AVG = "avg"
DASH = "—"


def block_tasks(res, length) -> list:
    return [t for t in res.tasks["task"] if ((res.cells["task"] == t) & (res.cells["length"] == length)).any()]


def columns(res, length) -> dict:
    """{column: member tasks}: each group (an ungrouped task is its own), then avg; columns with the same members
    are merged into one named "a = b"."""
    tasks = block_tasks(res, length)
    info = res.tasks.set_index("task")
    groups = {}
    for t in tasks:
        for g in info.at[t, "groups"] or (t,):
            groups.setdefault(g, []).append(t)
    groups[AVG] = [t for t in tasks if not info.at[t, "variant_of"]] or tasks
    merged = {}
    for name, members in groups.items():
        merged.setdefault(tuple(members), []).append(name)
    return {" = ".join(names): list(members) for members, names in merged.items()}


def group_scores(res, length) -> pd.DataFrame:
    """Models (rows, all of them) x columns: the unweighted mean of the members' scores, NaN unless all are there."""
    here = res.cells[res.cells["length"] == length]
    scores = here.pivot(index="model", columns="task", values="score").reindex(index=res.models["model"])
    return pd.DataFrame({name: scores.reindex(columns=members).mean(axis=1, skipna=False)
                         for name, members in columns(res, length).items()})


def n_range(cells) -> str:
    ns = sorted(set(cells["n"].astype(int)))
    return DASH if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
