"""The task catalogue: every task YAML file under posbench/tasks/ (and --include-path folders) by task name and by
group. Reading a file goes through schema.py, which checks its sources and metrics against registry.py's tables."""
from pathlib import Path

from posbench.tasks.errors import TaskError
from posbench.tasks.registry import BUILTIN_TASK_DIR
from posbench.tasks.schema import load_task_file


class TaskRegistry:
    """All task YAML files under posbench/tasks/ plus any --include-path folders, by task name and by group."""

    def __init__(self, include_paths=()):
        self._specs = {}
        folders = [BUILTIN_TASK_DIR] + [Path(p) for p in include_paths]
        for folder in folders:
            if not folder.is_dir():
                raise TaskError(f"task folder {folder} does not exist")
            for path in sorted(folder.rglob("*.yaml")):
                if "lm_eval" in path.relative_to(folder).parts[:-1]:
                    continue  # lm-evaluation-harness task files (posbench/tasks/general/lm_eval/), read by lm-eval only
                spec = load_task_file(path)
                if spec.name in self._specs:
                    other = self._specs[spec.name].path
                    raise TaskError(f"{path}: task {spec.name!r} is already defined in {other}")
                self._specs[spec.name] = spec

    def tasks(self):
        return sorted(self._specs.values(), key=lambda s: s.name)

    def groups(self) -> dict:
        out = {}
        for spec in self.tasks():
            for g in spec.groups:
                out.setdefault(g, []).append(spec.name)
        return dict(sorted(out.items()))

    def get(self, name: str):
        if name not in self._specs:
            raise TaskError(f"unknown task {name!r}; see `python eval.py list tasks`")
        return self._specs[name]

    def resolve(self, names) -> list:
        """Task or group names (a list or a comma-separated string) -> task specs, each once, in the given order."""
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        groups = self.groups()
        out = []
        for raw in names:
            name = raw.strip()
            if name in self._specs:
                members = [name]
            elif name in groups:
                members = groups[name]
            else:
                raise TaskError(f"unknown task or group {name!r}; see `python eval.py list tasks` "
                                f"and `python eval.py list groups`")
            out.extend(m for m in members if m not in out)
        return [self._specs[m] for m in out]
