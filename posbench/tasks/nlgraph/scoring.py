"""NLGraph scoring: the official validity checkers (`Arthur-Heng/NLGraph evaluation/<task>.py`) and the RePo authors'
lenient substring metric (OLMES `nlgraph.py`).

Official rules accept any valid solution: they check the model's path/order/matching against the graph in
`sample.metadata["graph"]`. Quirks that define the official number are reproduced on purpose and marked QUIRK:
  * integers are read digit by digit and recorded only when a non-digit follows, so a number that ends the text is
    dropped (topology, shortest_path, hamilton);
  * cycle: the middle graph of each difficulty (2*index == g_num) is never counted correct;
  * topology: only the listed nodes are checked, and all in-degrees must reach 0, so nodes that become free without
    being listed (sinks, isolated nodes) may be left out;
  * hamilton: the last node is left out of the repeated-node check;
  * matching: the repeated-applicant/job check skips adjacent pairs, and pairs that are not edges are ignored.
shortest_path scores the script's first flag (a valid path whose total weight is optimal); its second flag reads a
number after "total length", a phrase only the city-prompt exemplars use. Where the official script crashes or
keeps a stale result (an out-of-range node in topology, too few numbers in GNN), we score 0.
"""
import re

from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_metric


def read_ints(text: str, start: int, stop_after=None, stop_at_value=None) -> list:
    """The official `process_ans` loop: digits accumulate; a number is recorded when a non-digit follows it (QUIRK:
    never at the end of the text). Stops after `stop_after` numbers or once `stop_at_value` is recorded."""
    out, num, in_number = [], 0, False
    for ch in text[start:]:
        if "0" <= ch <= "9":
            num, in_number = num * 10 + int(ch), True
            continue
        if in_number:
            out.append(num)
            if len(out) == stop_after or num == stop_at_value:
                break
        num, in_number = 0, False
    return out


def _connectivity(ans, g, meta):
    s, t = g["query"]
    says_yes = "the answer is yes" in ans or f"there is a path between node {s} and node {t}" in ans
    return says_yes == meta["label"]


def _cycle(ans, g, meta):
    if meta.get("never_counted"):  # QUIRK: 2*idx == g_num satisfies neither branch of the official test
        return False
    p_no, p_yes = ans.find("there is no cycle"), ans.find("there is a cycle")
    p_no, p_yes = (10**6 if p == -1 else p for p in (p_no, p_yes))
    return p_yes < p_no if meta["label"] else p_no < p_yes


class _OfficialCrash(Exception):
    """Where the official script raises (and keeps a stale result), we score 0."""


def _valid_topological(order, g):
    n = g["n"]
    succ = [set() for _ in range(n)]
    for u, v in g["edges"]:
        succ[u].add(v)
    indeg = [0] * n
    for u in range(n):
        for v in succ[u]:
            indeg[v] += 1
    for node in order:
        if node >= n:
            raise _OfficialCrash  # deg[node] raises IndexError in the official check()
        if indeg[node] > 0:
            return False
        for v in succ[node]:
            indeg[v] -= 1
    return all(d == 0 for d in indeg)


def _topology(ans, g, meta):
    pos = ans.find("solution")
    if pos == -1:
        pos = max(ans.find("yes"), ans.find("in the following order"))
    if pos == -1:
        return False
    try:  # the official evaluate() checks the list read after `pos`, then the one read from the start
        return any([_valid_topological(read_ints(ans, start, stop_after=g["n"]), g) for start in (pos, 0)])
    except _OfficialCrash:
        return False


def _shortest_path(ans, g, meta):
    s, t = g["query"]
    phrase = f"the shortest path from node {s} to node {t}"
    pos = ans.find(phrase)
    if pos == -1:
        return False
    path = read_ints(ans, pos + len(phrase) + 1, stop_at_value=t)
    weight = {}
    for u, v, w in g["edges"]:
        weight[(u, v)] = weight[(v, u)] = w
    if any((u, v) not in weight for u, v in zip(path, path[1:], strict=False)):
        return False
    # The start node is not checked (official); a path of fewer than two nodes weighs 0 and never matches.
    return sum(weight[(u, v)] for u, v in zip(path, path[1:], strict=False)) == meta["optimum"]


def _first_number(ans, start):
    """The flow script: skip non-digits, read one run of digits; no digits reads as 0."""
    i = start
    while i < len(ans) and not ans[i].isdigit():
        i += 1
    j = i
    while j < len(ans) and ans[j].isdigit():
        j += 1
    return int(ans[i:j]) if j > i else 0


def _flow(ans, g, meta):
    s, t = g["query"]
    phrase = f"the maximum flow from node {s} to node {t}"
    pos = ans.find(phrase)
    return pos != -1 and _first_number(ans, pos + len(phrase) + 1) == meta["optimum"]


def _matching_pairs(ans):
    i, j = ans.find("applicant"), ans.find("job")
    job_first = j < i            # also true when "job" is missing (j == -1): then i becomes -1 below
    if job_first:
        i = j
    if i == -1:
        return None
    i = max(i, ans.find("make the following assignments"))
    end = ans.find("this way")
    end = len(ans) if end == -1 else end
    pairs = []
    numbers = [int(m.group()) for m in re.finditer(r"\d+", ans[i:end])]
    for a, b in zip(numbers[0::2], numbers[1::2], strict=False):  # a trailing unpaired number is dropped, as officially
        pairs.append((b, a) if job_first else (a, b))
    return pairs


def _matching(ans, g, meta):
    pairs = _matching_pairs(ans)
    if pairs is None:
        return False
    edges = {(a, j) for a, j in g["edges"]}
    hits = sum(p in edges for p in pairs)  # pairs that are not edges are ignored, not penalised (official)
    for x in range(len(pairs)):
        for y in range(x - 1):  # QUIRK: range(i - 1) never compares adjacent pairs
            if pairs[x][0] == pairs[y][0] or pairs[x][1] == pairs[y][1]:
                return False
    return hits == meta["optimum"]


def _hamilton(ans, g, meta):
    pos = ans.find("the path can be")
    neg = ans.find("no ")
    if pos == -1 or (neg != -1 and neg < pos):
        return False
    path = read_ints(ans, pos, stop_after=g["n"])
    if len(path) != g["n"]:
        return False
    adjacent = {(u, v) for u, v in g["edges"]} | {(v, u) for u, v in g["edges"]}
    if any((u, v) not in adjacent for u, v in zip(path, path[1:], strict=False)):
        return False
    body = path[:-1]  # QUIRK: the official distinctness loop stops before the last node
    return len(set(body)) == len(body)


def _gnn(ans, g, meta):
    pos = ans.rfind("node 0")
    if pos == -1:
        return False
    numbers = re.findall(r"\d+", ans[pos:])
    for i, row in enumerate(meta["gold"]):
        for k, value in enumerate(row):
            idx = i * (len(row) + 1) + k + 1   # skip the node index before each embedding
            if idx >= len(numbers) or abs(float(numbers[idx]) - value) > 0.01:
                return False
    return True


CHECKERS = {"connectivity": _connectivity, "cycle": _cycle, "topology": _topology, "shortest_path": _shortest_path,
            "flow": _flow, "matching": _matching, "hamilton": _hamilton, "GNN": _gnn}


def official_correct(prediction: str, meta: dict) -> bool:
    """The official per-task rule on the lowercased model output."""
    return CHECKERS[meta["task"]](prediction.lower(), meta["graph"], meta)


@register_metric("nlgraph_official")
def nlgraph_official(prediction, sample) -> float:
    if "task" not in sample.metadata or "graph" not in sample.metadata:
        raise TaskError(f"task {sample.task} sample {sample.index}: nlgraph_official needs metadata 'task' and "
                        f"'graph' (an NLGraph loader or generator sample)")
    return float(official_correct(prediction, sample.metadata))


# ---- the RePo authors' lenient metric --------------------------------------------------------------------------------

def repo_extract(task: str, text: str) -> str:
    """OLMES `_extract_answer`: one string per task from the lowercased text; '' when nothing matches."""
    text = text.lower()
    if task == "connectivity":
        return "yes" if "answer is yes" in text else "no"
    if task == "cycle":
        return "yes" if "there is a cycle in this graph" in text else "no"
    patterns = {"flow": (r"maximum flow from node (\d+) to node (\d+) is (\d+)", 3),
                "hamilton": (r"(\d+(?:,\d+)*)", 1),
                "shortest_path": (r"shortest path from node \d+ to node \d+ is ([\d,]+)", 1),
                "topology": (r"the solution is: ([\d,]+)\.", 1)}
    if task in patterns:
        pattern, group = patterns[task]
        m = re.search(pattern, text)
        return m.group(group) if m else ""
    if task == "matching":
        return ",".join(f"{a}:{j}" for a, j in re.findall(r"applicant\s+(\d+):\s+job\s+(\d+)", text))
    if task == "GNN":
        # OLMES splits on "So the answer is:" first; the text is already lowercased, so that split never fires.
        rows = re.findall(r"node\s+(\d+):\s*\[(\d+),\s*(\d+)\]", text)
        return "\n".join(f"node {i}: [{x}, {y}]" for i, x, y in rows)
    raise TaskError(f"unknown NLGraph task {task!r}")


@register_metric("nlgraph_repo_substring")
def nlgraph_repo_substring(prediction, sample) -> float:
    """1 if the gold answer's extraction is a substring of the prediction's (plain `in`; '' is in everything)."""
    task = sample.metadata["task"]
    return float(repo_extract(task, sample.answers[0]) in repo_extract(task, prediction))
