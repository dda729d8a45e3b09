"""posbench's import graph: no cycles, and every part imports only what its README allows.

Every `import` and `from ... import` counts, at module level or inside a function (a lazy import still couples the
two modules), plus the CLI's import of each command module by name. Plugin discovery is the one exception: the task
registry imports posbench/tasks/<family>/ packages by name so they can register themselves, which is not followed.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# part -> the parts it may import (itself always). A part is a package under posbench/, a harness subfolder, or one of
# the harness's top-level modules. See the README.md of each folder.
ALLOWED = {
    "kernels": set(),
    "config": set(),  # posbench/config.py: the strict YAML/dataclass loader, shared by tasks and harness
    "position_schemes": {"kernels"},
    "tasks": {"config"},
    "harness.errors": set(),
    "harness.files": {"harness.errors"},
    "harness.core": {"kernels", "position_schemes", "harness.errors", "harness.files"},
    "harness.evaluation": {"harness.core", "position_schemes", "tasks", "config", "harness.errors", "harness.files"},
    "harness.reporting": {"harness.evaluation", "position_schemes", "harness.errors", "harness.files"},
    "harness.training": {"harness.core", "harness.evaluation", "position_schemes", "tasks", "config",
                         "harness.errors", "harness.files"},
    "harness.analysis": {"harness.core", "harness.evaluation", "harness.reporting", "position_schemes", "tasks",
                         "harness.errors", "harness.files"},
    "harness.integrations": {"harness.core", "harness.evaluation", "tasks", "harness.errors"},
    "harness.bounds": {"harness.core", "harness.evaluation"},
    "harness.bench": {"harness.core", "harness.evaluation", "harness.bounds", "kernels", "harness.errors",
                      "harness.files"},
    "harness.commands": {"harness.core", "harness.evaluation", "harness.reporting", "harness.training",
                         "harness.integrations", "harness.bench", "harness.bounds", "harness.analysis",
                         "position_schemes", "tasks", "kernels", "config", "harness.errors", "harness.files"},
    "harness.cli": {"harness.commands", "harness.errors"},
    "results": {"harness.reporting"},  # posbench/results.py: the public results API over the reporting frames
}
# Cycles that exist and belong to another change: each entry must still be a cycle (remove it once fixed).
KNOWN_CYCLES = []


def modules() -> dict:
    """{dotted name: file} for every posbench module (a package by its __init__.py)."""
    out = {}
    for path in sorted((ROOT / "posbench").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict:
    """{module: set of posbench modules it imports}."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                # `from pkg import sub` imports the submodule when there is one
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names)
        graph[name] = {t for t in targets if t in mods and t != name}
    from posbench.harness.cli import COMMANDS
    graph["posbench.harness.cli"] |= {f"posbench.harness.commands.{c.replace('-', '_')}" for c in COMMANDS}
    return graph


def part(module: str) -> str | None:
    pieces = module.split(".")[1:]
    if not pieces:
        return None
    if pieces[0] == "harness" and len(pieces) > 1:
        return f"harness.{pieces[1]}"
    return pieces[0] if pieces[0] != "harness" else None


def cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    found = cycles(import_graph())
    assert [c for c in found if c not in KNOWN_CYCLES] == [], "import cycles among posbench modules"
    assert all(c in found for c in KNOWN_CYCLES), "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_every_part_imports_only_what_it_may():
    graph = import_graph()
    assert set(ALLOWED) <= {part(m) for m in graph}, "ALLOWED names a part that does not exist"
    wrong = []
    for module, targets in graph.items():
        source = part(module)
        for target in targets:
            other = part(target)
            if source in ALLOWED and other not in (None, source) and other not in ALLOWED[source]:
                wrong.append(f"{module} imports {target} ({source} may import: {sorted(ALLOWED[source]) or 'none'})")
    assert wrong == []


def test_the_checks_catch_a_cycle_and_a_forbidden_direction():
    graph = {"posbench.tasks.a": {"posbench.tasks.b"}, "posbench.tasks.b": {"posbench.tasks.a"},
             "posbench.kernels.k": set()}
    assert cycles(graph) == [{"posbench.tasks.a", "posbench.tasks.b"}]
    assert part("posbench.harness.core.model") == "harness.core" and part("posbench.kernels.fused") == "kernels"
    assert "harness.core" not in ALLOWED["tasks"] and ALLOWED["kernels"] == set()
