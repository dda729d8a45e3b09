"""posbench results as pandas DataFrames, for your own analyses (docs/results_api.md): the report is computed from
exactly these frames.

    res = posbench.results.load("runs/a", "runs/b")     # merged; res.samples, res.cells, res.manifests, res.models ...
    res.paired("repo", "rope", length=4096)             # paired difference on the same samples, with its interval
"""
from posbench.harness.reporting.frames import ReportError, Results
from posbench.harness.reporting.frames import load as _load
from posbench.harness.reporting.report import columns, group_scores, headline, main_frame

__all__ = ["load", "Results", "ReportError", "columns", "group_scores", "headline", "main_frame"]


def load(*run_dirs, baseline=None) -> Results:
    """Load and merge run directories (one by one or a list); `baseline`: the default model `paired` compares with."""
    if len(run_dirs) == 1 and isinstance(run_dirs[0], (list, tuple)):
        run_dirs = tuple(run_dirs[0])
    return _load(list(run_dirs), baseline=baseline)
