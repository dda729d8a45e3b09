"""NLGraph question text <-> graph, for the eight tasks.

`render(task, g)` writes a question exactly as the official `evaluation/<task>.py` `translate()` does for the zero-shot
prompt (the `question` field of the official JSON is that text); `parse(task, question)` reads the graph back, so the
checkers have it. `render(task, parse(task, q)) == q` holds for every official question (tests check all 6,022).

A graph is a JSON-able dict: `n`, `edges` (lists [u, v] or [u, v, w]) and, per task, `query` [s, t] (connectivity,
shortest_path, flow), `n_jobs` (matching: `n` counts applicants) or `embeddings` (GNN).
"""
import re

from posbench.tasks.errors import TaskError

TASKS = ("connectivity", "cycle", "topology", "shortest_path", "flow", "matching", "hamilton", "GNN")

_UNDIRECTED = "In an undirected graph, (i,j) means that node i and node j are connected with an undirected edge.\n"
_PAIR = re.compile(r"\((\d+),(\d+)\)")


def _pairs(edges):
    return [f" ({u},{v})" for u, v in edges]


def _sentences(lines):
    """The weighted-edge list: one sentence per edge, ',' between, '.' after the last, each on its own line."""
    return "".join(line + ("." if i + 1 == len(lines) else ",") + "\n" for i, line in enumerate(lines))


def render(task: str, g: dict) -> str:
    n, edges = g["n"], g["edges"]
    if task == "connectivity":
        s, t = g["query"]
        return ("Determine if there is a path between two nodes in the graph. Note that (i,j) means that node i and "
                "node j are connected with an undirected edge.\nGraph:" + "".join(_pairs(edges)) +
                f"\nQ: Is there a path between node {s} and node {t}?\nA:")
    if task == "cycle":
        return (_UNDIRECTED + f"The nodes are numbered from 0 to {n - 1}, and the edges are:" +
                "".join(_pairs(edges)) + "\nQ: Is there a cycle in this graph?\nA:")
    if task == "topology":
        return (f"In a directed graph with {n} nodes numbered from 0 to {n - 1}:\n" +
                "".join(f"node {u} should be visited before node {v}\n" for u, v in edges) +
                "Q: Can all the nodes be visited? Give the solution.\nA:")
    if task == "shortest_path":
        s, t = g["query"]
        return (f"In an undirected graph, the nodes are numbered from 0 to {n - 1}, and the edges are:\n" +
                _sentences([f"an edge between node {u} and node {v} with weight {w}" for u, v, w in edges]) +
                f"Q: Give the shortest path from node {s} to node {t}.\nA:")
    if task == "flow":
        s, t = g["query"]
        return (f"In a directed graph, the nodes are numbered from 0 to {n - 1}, and the edges are:\n" +
                _sentences([f"an edge from node {u} to node {v} with capacity {c}" for u, v, c in edges]) +
                f"Q: What is the maximum flow from node {s} to node {t}?\nA:")
    if task == "matching":
        jobs = g["n_jobs"]
        return (f"There are {n} job applicants numbered from 0 to {n - 1}, and {jobs} jobs numbered from 0 to "
                f"{jobs - 1}. Each applicant is interested in some of the jobs. Each job can only accept one applicant "
                "and a job applicant can be appointed for only one job.\n" +
                "".join(f"Applicant {a} is interested in job {j}.\n" for a, j in edges) +
                "Q: Find an assignment of jobs to applicants in such that the maximum number of applicants find the "
                "job they are interested in.\nA:")
    if task == "hamilton":
        return (_UNDIRECTED + f"The nodes are numbered from 0 to {n - 1}, and the edges are:" +
                "".join(_pairs(edges)) + "\nQ: Is there a path in this graph that visits every node exactly once? "
                "If yes, give the path. Note that in a path, adjacent nodes must be connected with edges.\nA:")
    if task == "GNN":
        return (f"In an undirected graph, the nodes are numbered from 0 to {n - 1}, and every node has an embedding. "
                "(i,j) means that node i and node j are connected with an undirected edge.\nEmbeddings:\n" +
                "".join(f"node {i}: [" + ",".join(map(str, e)) + "]\n" for i, e in enumerate(g["embeddings"])) +
                "The edges are:" + "".join(_pairs(edges)) + "\nIn a simple graph convolution layer, each node's "
                "embedding is updated by the sum of its neighbors' embeddings.\nQ: What's the embedding of each node "
                "after two layers of simple graph convolution layer?\nA:")
    raise TaskError(f"unknown NLGraph task {task!r}; known: {', '.join(TASKS)}")


def _ints(rows):
    return [[int(x) for x in row] for row in rows]


def _one(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        raise ValueError(f"no {what}")
    return [int(x) for x in m.groups()]


def parse(task: str, question: str) -> dict:
    """The graph spelled out in an official-shape question. Raises ValueError naming what is missing."""
    if task == "connectivity":
        graph = question.split("\nGraph:", 1)[1].split("\nQ:", 1)[0]
        edges = _ints(_PAIR.findall(graph))
        query = _one(r"Q: Is there a path between node (\d+) and node (\d+)\?", question, "query")
        return {"n": max([x for e in edges for x in e] + query) + 1, "edges": edges, "query": query}
    if task == "topology":
        (n,) = _one(r"In a directed graph with (\d+) nodes", question, "node count")
        return {"n": n, "edges": _ints(re.findall(r"node (\d+) should be visited before node (\d+)\n", question))}
    if task == "matching":
        n, jobs = _one(r"There are (\d+) job applicants numbered from 0 to \d+, and (\d+) jobs", question, "sizes")
        return {"n": n, "n_jobs": jobs, "edges": _ints(re.findall(r"Applicant (\d+) is interested in job (\d+)\.",
                                                                  question))}
    (n,) = _one(r"numbered from 0 to (\d+)", question, "node count")
    n += 1
    if task in ("cycle", "hamilton"):
        edges = question.split("the edges are:", 1)[1].split("\nQ:", 1)[0]
        return {"n": n, "edges": _ints(_PAIR.findall(edges))}
    if task == "shortest_path":
        return {"n": n, "edges": _ints(re.findall(r"an edge between node (\d+) and node (\d+) with weight (\d+)",
                                                  question)),
                "query": _one(r"Q: Give the shortest path from node (\d+) to node (\d+)\.", question, "query")}
    if task == "flow":
        return {"n": n, "edges": _ints(re.findall(r"an edge from node (\d+) to node (\d+) with capacity (\d+)",
                                                  question)),
                "query": _one(r"Q: What is the maximum flow from node (\d+) to node (\d+)\?", question, "query")}
    if task == "GNN":
        head, edges = question.split("The edges are:", 1)
        return {"n": n, "embeddings": _ints(re.findall(r"node \d+: \[(\d+),(\d+)\]", head)),
                "edges": _ints(_PAIR.findall(edges.split("\n", 1)[0]))}
    raise TaskError(f"unknown NLGraph task {task!r}; known: {', '.join(TASKS)}")
