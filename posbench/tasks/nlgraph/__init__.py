"""NLGraph: the official questions with the official validity checkers, the RePo authors' lenient metric, and a
generator of the same eight problems sized to fill 4K/8K/16K-token prompts."""
from posbench.tasks.nlgraph import generator, loader, scoring  # noqa: F401  (registers the loader, generator and metrics)
