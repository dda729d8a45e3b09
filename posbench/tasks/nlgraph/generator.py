"""Generate NLGraph problems big enough to fill a target context length, in the official prompt shapes.

The number of edges is the size knob: a binary search finds the largest graph whose prompt fits the token budget.
Each size is built from the same per-sample seed, so a sample is a pure function of (seed, task, index, length).
Answers come from our own solvers (solvers.py) and are written in the official gold-answer wording; scoring uses the
same official checkers as the loaded tasks, so any valid solution counts.

Problems whose answer lists every node (topology, hamilton, matching, GNN) cap the node count so the reference answer
needs at most half of `max_new_tokens`; past the cap extra edges make the graph denser instead of larger.
"""
import random

from posbench.tasks.errors import TaskError
from posbench.tasks.nlgraph import graphs, solvers
from posbench.tasks.nlgraph.loader import checker_metadata
from posbench.tasks.registry import register_generator
from posbench.tasks.schema import SampleDraft

# Edges per node in the natural (uncapped) regime, and answer tokens per capped unit (node or applicant).
DENSITY = {"connectivity": 1.3, "cycle": 1.0, "topology": 2.0, "shortest_path": 2.5, "flow": 2.5, "matching": 3.0,
           "hamilton": 2.5, "GNN": 3.0}
ANSWER_TOKENS_PER_NODE = {"topology": 2.2, "hamilton": 2.2, "matching": 10.0, "GNN": 14.0}


def _pairs(rng, n, m, allowed, existing=()):
    """m distinct unordered/ordered pairs (as `allowed(u, v)` says) not in `existing`, or None if impossible."""
    chosen = set(existing)
    total = sum(1 for u in range(n) for v in range(n) if allowed(u, v)) if n <= 200 else None
    if total is not None and m > total:
        return None
    if total is not None and len(chosen) + m > total // 2:   # dense: enumerate, shuffle, take
        pool = [(u, v) for u in range(n) for v in range(n) if allowed(u, v) and (u, v) not in chosen]
        rng.shuffle(pool)
        return pool[:m] if len(pool) >= m else None
    out = []
    for _ in range(50 * m + 100):
        if len(out) == m:
            break
        u, v = rng.randrange(n), rng.randrange(n)
        if allowed(u, v) and (u, v) not in chosen:
            chosen.add((u, v))
            out.append((u, v))
    return out if len(out) == m else None


def _random_tree(rng, nodes):
    """Edges of a random recursive tree over `nodes` (each node attaches to an earlier one)."""
    return [(nodes[rng.randrange(i)], nodes[i]) for i in range(1, len(nodes))]


def _relabel(rng, n, edges, directed=False):
    """Random node names and edge order (and orientation when undirected), as the official generator does."""
    perm = list(range(n))
    rng.shuffle(perm)
    out = []
    for u, v, *w in edges:
        a, b = perm[u], perm[v]
        if not directed and rng.random() < 0.5:
            a, b = b, a
        out.append([a, b, *w])
    rng.shuffle(out)
    return perm, out


def _undirected_key(u, v):
    return (min(u, v), max(u, v))


def _connected_graph(rng, n, m):
    """A random connected simple graph: a random tree plus m - (n - 1) extra edges (canonical labels)."""
    tree = {_undirected_key(u, v) for u, v in _random_tree(rng, list(range(n)))}
    extra = _pairs(rng, n, m - len(tree), lambda u, v: u < v, tree)
    return None if extra is None else sorted(tree) + extra


def build_connectivity(rng, m, yes, cap):
    n = max(6, round(m / DENSITY["connectivity"]))
    k = rng.randint(2, 4)
    nodes = list(range(n))
    rng.shuffle(nodes)
    groups = [nodes[i::k] for i in range(k)]
    edges = [e for grp in groups for e in _random_tree(rng, grp)]
    if m < len(edges):
        return None
    group_of = {u: i for i, grp in enumerate(groups) for u in grp}
    existing = {_undirected_key(u, v) for u, v in edges}
    extra = _pairs(rng, n, m - len(edges), lambda u, v: u < v and group_of[u] == group_of[v], existing)
    if extra is None:
        return None
    if yes:
        s, t = rng.sample(groups[0], 2)
    else:
        s, t = rng.choice(groups[0]), rng.choice(groups[1])
    perm, edges = _relabel(rng, n, edges + extra)
    return {"n": n, "edges": edges, "query": [perm[s], perm[t]]}


def build_cycle(rng, m, yes, cap):
    k = rng.randint(1, 3)
    n = m + k - (1 if yes else 0)          # a forest on n nodes with k trees has n - k edges
    if n < 2 * k + 2:
        return None
    nodes = list(range(n))
    rng.shuffle(nodes)
    trees = [nodes[i::k] for i in range(k)]
    edges = [e for tree in trees for e in _random_tree(rng, tree)]
    if yes:                                  # one extra edge inside the first tree closes exactly one cycle
        existing = {_undirected_key(u, v) for u, v in edges}
        tree = set(trees[0])
        extra = _pairs(rng, n, 1, lambda u, v: u < v and u in tree and v in tree, existing)
        if extra is None:
            return None
        edges += extra
    return {"n": n, "edges": _relabel(rng, n, edges)[1]}


def build_topology(rng, m, yes, cap):
    n = max(4, min(round(m / DENSITY["topology"]), cap))
    if m < n - 1 or m > n * (n - 1) // 2:
        return None
    # Canonical labels follow a random topological order: every edge goes from a smaller to a larger label, and
    # every node but the first has an incoming edge, so all of them take part.
    backbone = {(rng.randrange(v), v) for v in range(1, n)}
    extra = _pairs(rng, n, m - len(backbone), lambda u, v: u < v, backbone)
    if extra is None:
        return None
    return {"n": n, "edges": _relabel(rng, n, sorted(backbone) + extra, directed=True)[1]}


def build_shortest_path(rng, m, yes, cap):
    n = max(5, round(m / DENSITY["shortest_path"]))
    edges = _connected_graph(rng, n, m)
    if edges is None:
        return None
    perm, edges = _relabel(rng, n, [(u, v, rng.randint(1, 10)) for u, v in edges])
    s = rng.randrange(n)
    adjacent = solvers.adjacency(n, edges)[s] | {s}
    far = [v for v in range(n) if v not in adjacent]   # the official generator asks for non-adjacent pairs
    if not far:
        return None
    return {"n": n, "edges": edges, "query": [s, rng.choice(far)]}


def build_flow(rng, m, yes, cap):
    n = max(5, round(m / DENSITY["flow"]))
    arcs = _pairs(rng, n, m, lambda u, v: u != v)
    if arcs is None:
        return None
    perm, edges = _relabel(rng, n, [(u, v, rng.randint(1, 10)) for u, v in arcs], directed=True)
    adj = solvers.adjacency(n, edges, directed=True)
    for s in rng.sample(range(n), min(n, 20)):
        reach = sorted(solvers.reachable(adj, s) - adj[s] - {s})   # non-adjacent targets the source can reach
        if reach:
            return {"n": n, "edges": edges, "query": [s, rng.choice(reach)]}
    return None


def build_matching(rng, m, yes, cap):
    n_app = max(3, min(round(m / DENSITY["matching"]), cap))
    n_job = max(2, round(n_app * rng.uniform(0.7, 1.3)))
    pairs = _pairs(rng, max(n_app, n_job), m, lambda a, j: a < n_app and j < n_job)
    if pairs is None:
        return None
    # The official prompt lists edges applicant by applicant.
    return {"n": n_app, "n_jobs": n_job, "edges": sorted([a, j] for a, j in pairs)}


def build_hamilton(rng, m, yes, cap):
    n = max(5, min(round(m / DENSITY["hamilton"]), cap))
    if m < n - 1 or m > n * (n - 1) // 2:
        return None
    path = list(range(n))                      # planted: canonical labels 0..n-1 in order, hidden by relabelling
    backbone = {(i, i + 1) for i in range(n - 1)}
    extra = _pairs(rng, n, m - len(backbone), lambda u, v: u < v, backbone)
    if extra is None:
        return None
    perm, edges = _relabel(rng, n, sorted(backbone) + extra)
    return {"n": n, "edges": edges, "planted_path": [perm[u] for u in path]}


def build_gnn(rng, m, yes, cap):
    n = max(4, min(round(m / DENSITY["GNN"]), cap))
    edges = _connected_graph(rng, n, m) if n - 1 <= m <= n * (n - 1) // 2 else None
    if edges is None:
        return None
    return {"n": n, "edges": _relabel(rng, n, edges)[1],
            "embeddings": [[rng.randint(0, 1), rng.randint(0, 1)] for _ in range(n)]}


BUILDERS = {"connectivity": build_connectivity, "cycle": build_cycle, "topology": build_topology,
            "shortest_path": build_shortest_path, "flow": build_flow, "matching": build_matching,
            "hamilton": build_hamilton, "GNN": build_gnn}


def gold_answer(task: str, g: dict, meta: dict) -> str:
    """The official gold wording for our solvers' solution."""
    if task == "connectivity":
        return f"The answer is {'yes' if meta['label'] else 'no'}."
    if task == "cycle":
        return "Yes, there is a cycle in this graph." if meta["label"] else "No, there is no cycle in this graph."
    if task == "topology":
        return "The solution is: " + ",".join(map(str, solvers.topological_order(g["n"], g["edges"]))) + "."
    if task == "shortest_path":
        s, t = g["query"]
        weight, path = solvers.shortest_path(g["n"], g["edges"], s, t)
        return (f"The shortest path from node {s} to node {t} is {','.join(map(str, path))} "
                f"with a total weight of {weight}")
    if task == "flow":
        s, t = g["query"]
        return f"The maximum flow from node {s} to node {t} is {meta['optimum']}."
    if task == "matching":
        match = solvers.max_matching(g["n"], g["n_jobs"], g["edges"])
        return "".join(f"applicant {a}: job {j}\n" for a, j in sorted(match.items())) + \
            f"{len(match)} applicants can find the job they are interested in."
    if task == "hamilton":
        return "Yes. The path can be: " + ",".join(map(str, g["planted_path"]))
    if task == "GNN":
        return "The answer is:\n" + "".join(f"node {i}: [{x},{y}]\n" for i, (x, y) in enumerate(meta["gold"]))
    raise TaskError(f"unknown NLGraph task {task!r}")


@register_generator("nlgraph_gen")
def nlgraph_gen(ctx, *, task: str):
    if task not in BUILDERS:
        raise TaskError(f"nlgraph_gen: unknown task {task!r}; known: {', '.join(BUILDERS)}")
    if ctx.budget is None:
        raise TaskError(f"task {ctx.task}: nlgraph_gen fills a context length; give one")
    graph_seed, yes = ctx.rng.getrandbits(64), ctx.rng.random() < 0.5   # content first, then size
    answer_room = ctx.length - ctx.budget
    cap = int(answer_room * 0.5 / ANSWER_TOKENS_PER_NODE.get(task, 1e-9))

    def build(m):
        return BUILDERS[task](random.Random(graph_seed), m, yes, cap)

    def fits(g):
        return ctx.count_tokens(ctx.render({"question": graphs.render(task, g)})) <= ctx.budget

    # Double the edge count until the prompt overflows (a size the builder cannot make, e.g. too few nodes for the
    # query, is skipped), then bisect; a size that cannot be built during bisection counts as too big.
    best, m = None, 8
    while m <= ctx.budget:
        g = build(m)
        if g is not None:
            if not fits(g):
                break
            best = (m, g)
        m *= 2
    if best is None:
        raise TaskError(f"task {ctx.task}: a budget of {ctx.budget} tokens is too small for a {task} graph")
    lo, hi = best[0], m
    while hi - lo > 1:
        mid = (lo + hi) // 2
        g = build(mid)
        if g is not None and fits(g):
            best, lo = (mid, g), mid
        else:
            hi = mid
    g = best[1]
    meta = {"task": task, "graph": g, **checker_metadata(task, g)}
    answer = gold_answer(task, g, meta)
    if ctx.count_tokens(answer) > answer_room:
        raise TaskError(f"task {ctx.task}: the reference answer needs {ctx.count_tokens(answer)} tokens, more than "
                        f"max_new_tokens={answer_room} (raise it, or lower ANSWER_TOKENS_PER_NODE's cap)")
    return SampleDraft(fields={"question": graphs.render(task, g)}, answers=[answer], metadata=meta)
