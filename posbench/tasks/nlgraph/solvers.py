"""Small exact solvers for the eight NLGraph problems (no networkx): they label generated graphs and cross-check the
official answers. Graphs are plain lists: `edges` of (u, v) or (u, v, weight/capacity) with nodes 0..n-1."""
import heapq
from collections import deque


def adjacency(n: int, edges, directed=False) -> list:
    adj = [set() for _ in range(n)]
    for u, v, *_ in edges:
        adj[u].add(v)
        if not directed:
            adj[v].add(u)
    return adj


def reachable(adj: list, s: int) -> set:
    """Every node BFS reaches from s (s included)."""
    seen, queue = {s}, deque([s])
    while queue:
        for v in adj[queue.popleft()] - seen:
            seen.add(v)
            queue.append(v)
    return seen


def connected(n: int, edges, s: int, t: int) -> bool:
    """BFS reachability in an undirected graph."""
    return t in reachable(adjacency(n, edges), s)


def has_cycle(n: int, edges) -> bool:
    """Undirected cycle detection by union-find (repeated edges count once, as in a simple graph)."""
    parent = list(range(n))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for u, v in {(min(u, v), max(u, v)) for u, v, *_ in edges}:
        ru, rv = root(u), root(v)
        if ru == rv:
            return True
        parent[ru] = rv
    return False


def topological_order(n: int, edges) -> list:
    """Kahn's algorithm, smallest ready node first (deterministic); raises ValueError on a cycle."""
    adj = adjacency(n, edges, directed=True)
    indeg = [0] * n
    for u in range(n):
        for v in adj[u]:
            indeg[v] += 1
    ready = [u for u in range(n) if indeg[u] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        u = heapq.heappop(ready)
        order.append(u)
        for v in adj[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, v)
    if len(order) != n:
        raise ValueError("graph has a directed cycle")
    return order


def weighted_adjacency(n: int, edges) -> list:
    """Undirected {neighbour: weight}; a repeated pair keeps the last weight (networkx Graph.add_edge semantics)."""
    adj = [dict() for _ in range(n)]
    for u, v, w in edges:
        adj[u][v] = w
        adj[v][u] = w
    return adj


def shortest_path(n: int, edges, s: int, t: int):
    """Dijkstra: (total weight, one shortest path as a node list), or (None, None) when t is unreachable."""
    adj = weighted_adjacency(n, edges)
    dist, prev = {s: 0}, {}
    heap = [(0, s)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        if u == t:
            break
        for v, w in sorted(adj[u].items()):
            if d + w < dist.get(v, float("inf")):
                dist[v], prev[v] = d + w, u
                heapq.heappush(heap, (d + w, v))
    if t not in dist:
        return None, None
    path = [t]
    while path[-1] != s:
        path.append(prev[path[-1]])
    return dist[t], path[::-1]


def max_flow(n: int, edges, s: int, t: int) -> int:
    """Edmonds-Karp on a residual graph; antiparallel edges share one residual pair, which keeps the value exact.
    A repeated directed edge keeps its last capacity (networkx DiGraph.add_edge semantics)."""
    cap = {(u, v): c for u, v, c in edges}
    residual = [dict() for _ in range(n)]
    for (u, v), c in cap.items():
        residual[u][v] = residual[u].get(v, 0) + c
        residual[v].setdefault(u, 0)
    total = 0
    while True:
        prev = {s: None}
        queue = deque([s])
        while queue and t not in prev:
            u = queue.popleft()
            for v, c in residual[u].items():
                if c > 0 and v not in prev:
                    prev[v] = u
                    queue.append(v)
        if t not in prev:
            return total
        path, v = [], t
        while prev[v] is not None:
            path.append((prev[v], v))
            v = prev[v]
        push = min(residual[u][v] for u, v in path)
        for u, v in path:
            residual[u][v] -= push
            residual[v][u] += push
        total += push


def max_matching(n_left: int, n_right: int, edges) -> dict:
    """Hopcroft-Karp maximum bipartite matching: {left: right}."""
    adj = [sorted({j for i, j in edges if i == u}) for u in range(n_left)]
    match_l, match_r = [-1] * n_left, [-1] * n_right
    inf = float("inf")

    def bfs():
        dist = [inf] * n_left
        queue = deque(u for u in range(n_left) if match_l[u] == -1)
        for u in queue:
            dist[u] = 0
        found = False
        while queue:
            u = queue.popleft()
            for v in adj[u]:
                w = match_r[v]
                if w == -1:
                    found = True
                elif dist[w] == inf:
                    dist[w] = dist[u] + 1
                    queue.append(w)
        return found, dist

    def dfs(u, dist):
        # Iterative DFS along the BFS layers (recursion would overflow on long augmenting paths).
        stack, path = [(u, iter(adj[u]))], []
        while stack:
            x, it = stack[-1]
            for v in it:
                w = match_r[v]
                if w == -1 or (dist[w] == dist[x] + 1):
                    path.append((x, v))
                    if w == -1:
                        for a, b in path:
                            match_l[a], match_r[b] = b, a
                        return True
                    stack.append((w, iter(adj[w])))
                    break
            else:
                dist[x] = inf
                stack.pop()
                if path:
                    path.pop()
        return False

    while True:
        found, dist = bfs()
        if not found:
            break
        for u in range(n_left):
            if match_l[u] == -1:
                dfs(u, dist)
    return {u: v for u, v in enumerate(match_l) if v != -1}


def hamilton_path(n: int, edges, max_steps: int = 1_000_000):
    """A Hamiltonian path by backtracking (fewest-unvisited-neighbours first), or None if there is none. Raises
    RuntimeError past `max_steps` expansions: use it on small graphs; generators plant a path instead."""
    adj = [sorted(a) for a in adjacency(n, edges)]
    steps = 0
    for start in sorted(range(n), key=lambda u: len(adj[u])):
        path, on_path = [start], [False] * n
        on_path[start] = True
        stack = [iter(sorted(adj[start], key=lambda v: len(adj[v])))]
        while stack:
            if len(path) == n:
                return path
            steps += 1
            if steps > max_steps:
                raise RuntimeError(f"hamilton_path: more than {max_steps} steps on a {n}-node graph")
            nxt = next((v for v in stack[-1] if not on_path[v]), None)
            if nxt is None:
                stack.pop()
                on_path[path.pop()] = False
                continue
            path.append(nxt)
            on_path[nxt] = True
            stack.append(iter(sorted(adj[nxt], key=lambda v: len(adj[v]))))
    return None


def gnn_sum(n: int, edges, embeddings, layers: int = 2) -> list:
    """`layers` rounds of simple graph convolution: each node becomes the sum of its neighbours' embeddings."""
    adj = adjacency(n, edges)
    x = [list(e) for e in embeddings]
    for _ in range(layers):
        x = [[sum(x[v][k] for v in adj[u]) for k in range(len(x[u]))] for u in range(n)]
    return x
