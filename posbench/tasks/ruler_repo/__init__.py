"""The RePo authors' RULER (SakanaAI/repo: OLMES tasks + HELMET loader), as named variants of posbench/tasks/ruler:
their
templates and generation lengths, scored on answer prefix + generation. Importing registers their metrics."""
from posbench.tasks.ruler_repo import metrics  # noqa: F401  (registration)
