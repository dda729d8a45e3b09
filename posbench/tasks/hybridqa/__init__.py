"""HybridQA: official questions with their tables and linked passages, official EM/F1, the RePo authors' substring
metric, and a generator of table-plus-passage questions at any length."""
from posbench.tasks.hybridqa import generator, loader, metrics  # noqa: F401  (registers the loader, generator and metrics)
