"""Load the official NLGraph questions (`<root>/<task>/{main,train,test}.json`) for one task and difficulty.

The prompt is the `question` field verbatim (0-shot, as the official scripts build it). The graph is parsed from the
question and kept in metadata with what the official checker compares against: the yes/no label (connectivity,
cycle), the optimum (shortest path, flow, matching) or the two-layer embeddings (GNN). Those values are recomputed by
our solvers and must agree with the official answer text, so a corrupt record is an error, never a silent zero.
"""
import json
import re
from pathlib import Path

from posbench.tasks.data_catalogue import missing_data
from posbench.tasks.errors import TaskError
from posbench.tasks.nlgraph import graphs, solvers
from posbench.tasks.registry import register_loader
from posbench.tasks.schema import SampleDraft

DIFFICULTIES = ("easy", "medium", "hard")


def checker_metadata(task: str, g: dict) -> dict:
    """What the official checker needs beyond the graph, computed by our solvers."""
    if task == "connectivity":
        return {"label": solvers.connected(g["n"], g["edges"], *g["query"])}
    if task == "cycle":
        return {"label": solvers.has_cycle(g["n"], g["edges"])}
    if task == "shortest_path":
        return {"optimum": solvers.shortest_path(g["n"], g["edges"], *g["query"])[0]}
    if task == "flow":
        return {"optimum": solvers.max_flow(g["n"], g["edges"], *g["query"])}
    if task == "matching":
        return {"optimum": len(solvers.max_matching(g["n"], g["n_jobs"], g["edges"]))}
    if task == "GNN":
        return {"gold": solvers.gnn_sum(g["n"], g["edges"], g["embeddings"])}
    return {}


def _stated(task: str, answer: str):
    """The value the official answer text states, to compare with ours (None: nothing to compare)."""
    patterns = {"shortest_path": r"total weight of (\d+)", "flow": r"is (\d+)\.", "matching": r"(\d+) applicants can"}
    if task == "connectivity":
        return {"label": "the answer is yes" in answer.lower()}
    if task == "cycle":
        return {"label": answer.startswith("Yes")}
    if task in patterns:
        m = re.search(patterns[task], answer)
        return {"optimum": int(m.group(1))} if m else {"optimum": None}
    if task == "GNN":
        return {"gold": [[int(x), int(y)] for x, y in re.findall(r"node \d+: \[(\d+),(\d+)\]", answer)]}
    return {}


@register_loader("nlgraph")
def load_nlgraph(ctx, *, root: str, task: str, difficulty: str, split: str = "main"):
    """`root`: the NLGraph folder; `task`: one of graphs.TASKS; `split`: main (the evaluation set), train or test."""
    if task not in graphs.TASKS:
        raise TaskError(f"nlgraph loader: unknown task {task!r}; known: {', '.join(graphs.TASKS)}")
    if difficulty not in DIFFICULTIES or split not in ("main", "train", "test"):
        raise TaskError(f"nlgraph loader: difficulty must be one of {DIFFICULTIES} and split one of main, train, "
                        f"test; got {difficulty!r}, {split!r}")
    path = Path(root) / task / f"{split}.json"
    if not path.is_file():
        raise missing_data("nlgraph", f"NLGraph file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path}: not valid JSON: {err}") from None
    rows = []
    for key in sorted(data, key=int):
        rec = data[key]
        missing = [f for f in ("question", "answer", "difficulty") if f not in rec]
        if missing:
            raise TaskError(f"{path}: record {key} has no field {missing[0]!r}")
        if rec["difficulty"] == difficulty:
            rows.append((key, rec))
    if not rows:
        raise TaskError(f"{path}: no records with difficulty {difficulty!r}")
    drafts = []
    for index, (key, rec) in enumerate(rows):
        try:
            g = graphs.parse(task, rec["question"])
        except ValueError as err:
            raise TaskError(f"{path}: record {key}: cannot read the {task} graph from the question ({err})") from None
        meta = {"task": task, "difficulty": difficulty, "key": key, "graph": g, **checker_metadata(task, g)}
        for field, value in _stated(task, rec["answer"]).items():
            if value != meta[field]:
                raise TaskError(f"{path}: record {key}: the answer states {field} {value!r} but the graph gives "
                                f"{meta[field]!r}")
        if task == "cycle" and split == "main" and 2 * index == len(rows):
            # The official script scores main.json's graph files in this order; the middle one is never counted.
            meta["never_counted"] = True
        drafts.append(SampleDraft(fields={"question": rec["question"]}, answers=[rec["answer"]], metadata=meta))
    return drafts
