"""LongBench v1: official jsonl loader, prompts (in the YAML files), metrics, LongBench-E and the RePo variant."""
from posbench.tasks.longbench import loader, metrics  # noqa: F401  (registers the loader and metrics)
