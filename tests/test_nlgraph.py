"""NLGraph: question parsing against every official record, our solvers against the official answers, the official
checkers (valid-but-different solutions accepted, invalid ones rejected, documented quirks), the RePo authors'
lenient metric, the loader, and the length-filling generator."""
import itertools
import json
import random

import pytest

from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import TaskError, build_samples, score_sample
from posbench.tasks.nlgraph import graphs, solvers
from posbench.tasks.nlgraph.scoring import official_correct, repo_extract
from posbench.tasks.registry import METRICS, ensure_imported
from posbench.tasks.schema import Sample
from tests.data_testing import needs_data, require_data  # noqa: E402

SHARED = default_data_root()
NLGRAPH = SHARED / "nlgraph"


@pytest.fixture(scope="module")
def official(registry, tokenizer):
    """Every official task's samples (the loader cross-checks our solvers with each official answer)."""
    require_data("nlgraph")
    return {spec.name: (spec, build_samples(spec, tokenizer, data_paths={"data": str(SHARED)}))
            for spec in registry.resolve("nlgraph")}


def check(task, text, **meta):
    return official_correct(text, {"task": task, **meta})


# ---- parsing and solvers on the official data ------------------------------------------------------------------------

@needs_data("nlgraph")
def test_every_official_question_round_trips():
    count = 0
    for task in graphs.TASKS:
        for rec in json.loads((NLGRAPH / task / "main.json").read_text()).values():
            assert graphs.render(task, graphs.parse(task, rec["question"])) == rec["question"]
            count += 1
    assert count == 6022


def test_official_tasks_load_every_record(official):
    assert len(official) == 19
    total = sum(len(samples) for _, samples in official.values())
    assert total == 6022                                     # main.json, all difficulties
    spec, samples = official["nlgraph_connectivity_easy"]
    assert samples[0].prompt == json.loads((NLGRAPH / "connectivity" / "main.json").read_text())["0"]["question"]
    assert spec.new_tokens(None) == 256 and official["nlgraph_gnn_hard"][0].new_tokens(None) == 2000
    assert official["nlgraph_flow_easy"][0].new_tokens(None) == 400


def test_gold_answers_pass_the_official_checkers(official):
    for name, (spec, samples) in official.items():
        for s in samples:
            got = score_sample(spec, s, s.answers[0])["nlgraph_official"]
            if name.startswith("nlgraph_hamilton"):
                # QUIRK: the gold text ends with the last node, which the digit reader never records...
                assert got == 0.0
                assert score_sample(spec, s, s.answers[0] + ".")["nlgraph_official"] == 1.0
            elif s.metadata.get("never_counted"):
                assert got == 0.0 and s.metadata["key"] in ("75", "450", "950")   # the middle graph per level
            else:
                assert got == 1.0, (name, s.index)


def test_cycle_middle_graph_is_never_counted(official):
    counted = [s.index for s in official["nlgraph_cycle_easy"][1] if s.metadata.get("never_counted")]
    assert counted == [75]                                   # 2 * 75 == g_num 150


def test_solvers_on_small_cases():
    assert solvers.connected(4, [[0, 1], [2, 3]], 0, 1) and not solvers.connected(4, [[0, 1], [2, 3]], 0, 3)
    assert solvers.has_cycle(3, [[0, 1], [1, 2], [2, 0]]) and not solvers.has_cycle(3, [[0, 1], [1, 2]])
    with pytest.raises(ValueError):
        solvers.topological_order(2, [[0, 1], [1, 0]])
    # antiparallel arcs 1->2 and 2->1 must not cancel: 0->1 (3), 1->2 (2), 2->1 (5), 1->3 (1), 2->3 (4): flow 3
    assert solvers.max_flow(4, [[0, 1, 3], [1, 2, 2], [2, 1, 5], [1, 3, 1], [2, 3, 4]], 0, 3) == 3
    assert solvers.shortest_path(3, [[0, 1, 1], [1, 2, 1], [0, 2, 5]], 0, 2) == (2, [0, 1, 2])
    assert solvers.hamilton_path(4, [[0, 1], [0, 2], [0, 3]]) is None          # a star has none
    assert solvers.gnn_sum(2, [[0, 1]], [[1, 0], [0, 1]]) == [[1, 0], [0, 1]]   # two swaps


def test_max_matching_equals_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        a, j = rng.randint(1, 5), rng.randint(1, 5)
        edges = [[x, y] for x in range(a) for y in range(j) if rng.random() < 0.4]
        best = max((k for k in range(min(a, j) + 1) for combo in itertools.combinations(edges, k)
                    if len({e[0] for e in combo}) == k == len({e[1] for e in combo})), default=0)
        match = solvers.max_matching(a, j, edges)
        assert len(match) == best and all([u, v] in edges for u, v in match.items())
        assert len(set(match.values())) == len(match)


# ---- the official checkers: hand-made outputs ------------------------------------------------------------------------

def test_connectivity_phrases():
    g = {"n": 3, "edges": [[0, 1], [1, 2]], "query": [0, 2]}
    assert check("connectivity", "The answer is yes.", graph=g, label=True)
    assert check("connectivity", "Yes, there is a path between node 0 and node 2.", graph=g, label=True)
    assert not check("connectivity", "There is a path between node 2 and node 0.", graph=g, label=True)  # order
    assert check("connectivity", "No.", graph=g, label=False)                 # silence counts as "no"
    assert not check("connectivity", "the answer is yes", graph=g, label=False)


def test_cycle_first_phrase_wins():
    g = {"n": 3, "edges": [[0, 1], [1, 2], [2, 0]]}
    assert check("cycle", "Yes, there is a cycle in this graph.", graph=g, label=True)
    assert not check("cycle", "At first there is no cycle... wait, there is a cycle.", graph=g, label=True)
    assert not check("cycle", "I cannot tell.", graph=g, label=True)
    assert check("cycle", "No, there is no cycle in this graph.", graph=g, label=False)


TOPO = {"n": 4, "edges": [[0, 1], [0, 2]]}                   # node 3 is isolated


@pytest.mark.parametrize("text, ok", [
    ("The solution is: 0,1,2,3.", True),
    ("The solution is: 0,2,1,3.", True),                     # another valid order
    ("The solution is: 3,0,2,1.", True),
    ("The solution is: 0,1,2.", True),                       # QUIRK: nodes whose in-degree reaches 0 without
    ("The solution is: 0.", True),                           #   being listed (sinks, isolated) may be left out
    ("The solution is: 1,0,2,3.", False),                    # 1 before its predecessor 0
    ("The solution is: 3,1,0,2.", False),
    ("Yes: 0,2,1,3.", True),                                 # no 'solution': read after 'yes'
    ("0,1,2,3 works", False),                                # neither 'solution' nor 'yes': wrong
    ("The solution is: 0,1,7,2.", False),                    # node 7 does not exist (the official script crashes)
])
def test_topology_orders(text, ok):
    assert check("topology", text, graph=TOPO) == ok


SP = {"n": 5, "edges": [[0, 1, 1], [1, 2, 1], [0, 3, 1], [3, 2, 1], [0, 2, 5]], "query": [0, 2]}


@pytest.mark.parametrize("text, ok", [
    ("The shortest path from node 0 to node 2 is 0,1,2 with a total weight of 2", True),
    ("The shortest path from node 0 to node 2 is 0,3,2.", True),          # a different optimal path
    ("The shortest path from node 0 to node 2 is 0,2.", False),           # valid but weight 5, not optimal
    ("The shortest path from node 0 to node 2 is 0,4,2.", False),         # (0,4) is not an edge
    ("The shortest path from node 0 to node 2 is 0,1,2", False),          # QUIRK: trailing '2' is dropped
    ("The shortest path from node 0 to node 2 is 0,1,2,3,2.", True),      # reading stops at the first 2
    ("The shortest path is 0,1,2.", False),                               # the phrase must name both nodes
])
def test_shortest_paths(text, ok):
    assert check("shortest_path", text, graph=SP, optimum=2) == ok


@pytest.mark.parametrize("text, ok", [
    ("The maximum flow from node 0 to node 3 is 7.", True),
    ("The maximum flow from node 0 to node 3 is 7 units", True),
    ("The maximum flow from node 0 to node 3 is 17.", False),
    ("The maximum flow from node 0 to node 3 is unknown", False),          # no digits read as 0
    ("The flow is 7.", False),
])
def test_flow_value(text, ok):
    assert check("flow", text, graph={"n": 4, "edges": [], "query": [0, 3]}, optimum=7) == ok


MATCH = {"n": 3, "n_jobs": 2, "edges": [[0, 0], [0, 1], [1, 0], [2, 1]]}   # maximum matching size 2


@pytest.mark.parametrize("text, ok", [
    ("applicant 0: job 0\napplicant 2: job 1\n2 applicants can find the job they are interested in.", True),
    ("applicant 1: job 0\napplicant 0: job 1", True),                     # a different maximum matching
    ("job 0: applicant 1, job 1: applicant 2", True),                      # job-first order is detected
    ("applicant 0: job 0", False),                                         # not maximum
    ("applicant 0: job 0\napplicant 1: job 0", True),                      # QUIRK: adjacent pairs never compared
    ("applicant 0: job 0\napplicant 2: job 1\napplicant 1: job 0", False), # pairs 0 and 2 share job 0
    ("applicant 0: job 0\napplicant 1: job 1\napplicant 2: job 1", True),  # non-edge (1,1) ignored; QUIRK again
    ("nobody gets a job", False),                                          # no 'applicant': wrong
])
def test_matching(text, ok):
    assert check("matching", text, graph=MATCH, optimum=2) == ok


HAM = {"n": 4, "edges": [[0, 1], [1, 2], [2, 3], [0, 2]]}


@pytest.mark.parametrize("text, ok", [
    ("Yes. The path can be: 0,1,2,3.", True),
    ("Yes. The path can be: 1,0,2,3.", True),              # another Hamilton path
    ("Yes. The path can be: 3,2,1,0.", True),
    ("Yes. The path can be: 0,1,3,2.", False),             # (1,3) is not an edge
    ("No path exists, but the path can be 0,1,2,3.", False),  # 'no ' before the phrase
    ("Yes. The path can be: 0,1,2,3", False),              # QUIRK: the final node ends the text and is dropped
    ("Yes. The path can be: 0,1,2,0.", True),              # QUIRK: the last node escapes the repeat check
    ("Yes. The path can be: 0,2,0,1.", False),             # a repeat before the last node is caught
])
def test_hamilton(text, ok):
    assert check("hamilton", text, graph=HAM) == ok


def test_gnn_values():
    g = {"n": 2, "edges": [[0, 1]], "embeddings": [[1, 0], [0, 1]]}
    gold = [[1, 0], [0, 1]]
    assert check("GNN", "The answer is:\nnode 0: [1,0]\nnode 1: [0,1]", graph=g, gold=gold)
    assert check("GNN", "node 0: [9,9] first try\nnode 0: [1,0]\nnode 1: [0,1]", graph=g, gold=gold)  # last 'node 0'
    assert not check("GNN", "node 0: [1,0]\nnode 1: [1,1]", graph=g, gold=gold)
    assert not check("GNN", "node 0: [1,0]", graph=g, gold=gold)          # too few numbers (official crash)


# ---- the RePo authors' lenient metric --------------------------------------------------------------------------------

def repo(task, prediction, gold):
    ensure_imported()
    s = Sample(task="t", index=0, length=None, seed=0, prompt="", answer_prefix="", answers=[gold], max_new_tokens=1,
               stop=[], token_count=0, metadata={"task": task})
    return METRICS["nlgraph_repo_substring"](prediction, s)


def test_repo_metric_leniencies_and_strictness():
    flow_gold = "The maximum flow from node 0 to node 3 is 7."
    assert repo("flow", "The maximum flow from node 0 to node 3 is 17.", flow_gold) == 1.0      # '7' in '17'
    sp_gold = "The shortest path from node 0 to node 2 is 0,3,2 with a total weight of 2"
    assert repo("shortest_path", "the shortest path from node 0 to node 2 is 0,3,2,5", sp_gold) == 1.0  # prefix
    assert repo("connectivity", "", "The answer is no.") == 1.0                    # silence defaults to "no"
    assert repo("topology", "anything", "The solution is 0,1") == 1.0              # gold extraction fails -> ''
    # only the reference solution counts: a valid different Hamilton path scores 0 (the official checker: 1)
    assert repo("hamilton", "Yes. The path can be: 1,0,2,3.", "Yes. The path can be: 0,1,2,3") == 0.0
    assert check("hamilton", "Yes. The path can be: 1,0,2,3.", graph=HAM)
    assert repo_extract("GNN", "So the answer is:\nnode 0: [1, 2]\nnode 1: [3,4]") == "node 0: [1, 2]\nnode 1: [3, 4]"
    assert repo_extract("matching", "applicant 0: job 1\napplicant 2:  job 0") == "0:1,2:0"


@needs_data("nlgraph")
def test_repo_tasks_use_the_train_split(registry, tokenizer):
    spec = registry.get("nlgraph_repo_cycle_easy")
    samples = build_samples(spec, tokenizer, data_paths={"data": str(SHARED)})
    assert len(samples) == 125 and spec.new_tokens(None) == 512 and spec.stop[0] == "\n\n"
    assert spec.metrics == ("nlgraph_repo_substring",) and len(registry.resolve("nlgraph_repo")) == 19


@needs_data("nlgraph")
def test_loader_errors(registry, tokenizer, tmp_path):
    spec = registry.get("nlgraph_flow_easy")
    (tmp_path / "nlgraph" / "flow").mkdir(parents=True)
    from posbench.tasks import MissingData
    with pytest.raises(MissingData, match="flow/main.json not found"):
        build_samples(spec, tokenizer, data_paths={"data": str(tmp_path)})
    rec = json.loads((NLGRAPH / "flow" / "main.json").read_text())["0"]
    (tmp_path / "nlgraph" / "flow" / "main.json").write_text(json.dumps({"0": rec | {"answer": rec["answer"]
                                                                                     .replace("is 7.", "is 8.")}}))
    with pytest.raises(TaskError, match="record 0: the answer states optimum 8 but the graph gives 7"):
        build_samples(spec, tokenizer, data_paths={"data": str(tmp_path)})


# ---- the generator ---------------------------------------------------------------------------------------------------

GEN_LENGTHS = [4096, 8192, 16384]


@pytest.mark.parametrize("length", GEN_LENGTHS)
def test_generated_graphs_fill_the_length_and_their_answers_check(registry, tokenizer, length):
    for spec in registry.resolve("nlgraph_long"):
        (s,) = build_samples(spec, tokenizer, length=length, indices=[1])
        budget = length - s.max_new_tokens
        assert 0.97 * budget <= s.token_count <= budget, (spec.name, s.token_count, budget)
        assert len(tokenizer.encode(s.answers[0], add_special_tokens=False)) <= s.max_new_tokens / 1.5
        assert graphs.render(s.metadata["task"], graphs.parse(s.metadata["task"], s.prompt)) == s.prompt
        scores = score_sample(spec, s, s.answers[0] + "\n")
        assert scores == {"nlgraph_official": 1.0, "nlgraph_repo_substring": 1.0}, spec.name


def test_generated_alternative_solutions_are_accepted(registry, tokenizer):
    topo, ham = (build_samples(registry.get(f"nlgraph_gen_{t}"), tokenizer, length=4096, indices=[0])[0]
                 for t in ("topology", "hamilton"))
    g = topo.metadata["graph"]
    other = _largest_first_order(g)                     # the gold answer takes the smallest ready node first
    assert other != solvers.topological_order(g["n"], g["edges"])
    assert official_correct(f"The solution is: {','.join(map(str, other))}.", topo.metadata)
    path = ham.metadata["graph"]["planted_path"][::-1]  # the planted path, reversed
    assert official_correct(f"Yes. The path can be: {','.join(map(str, path))}.", ham.metadata)
    repeated = path[:-2] + [path[0], path[-1]]          # node path[0] twice, one node never visited
    assert not official_correct(f"Yes. The path can be: {','.join(map(str, repeated))}.", ham.metadata)


def _largest_first_order(g):
    import heapq
    succ = solvers.adjacency(g["n"], g["edges"], directed=True)
    indeg = [0] * g["n"]
    for u in range(g["n"]):
        for v in succ[u]:
            indeg[v] += 1
    ready = [-u for u in range(g["n"]) if indeg[u] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        u = -heapq.heappop(ready)
        order.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, -v)
    return order


def test_generator_is_deterministic_and_balanced(registry, tokenizer):
    spec = registry.get("nlgraph_gen_connectivity")
    a = build_samples(spec, tokenizer, length=4096, num_samples=8)
    b = build_samples(spec, tokenizer, length=4096, num_samples=8)
    assert [s.to_json() for s in a] == [s.to_json() for s in b]
    assert {s.metadata["label"] for s in a} == {True, False}
    cyc = build_samples(registry.get("nlgraph_gen_cycle"), tokenizer, length=4096, num_samples=8)
    assert {s.metadata["label"] for s in cyc} == {True, False}
    with pytest.raises(TaskError, match="length-controlled"):
        build_samples(spec, tokenizer)
