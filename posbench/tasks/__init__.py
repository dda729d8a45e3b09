"""Tasks as YAML: see schema.py for the file format and README.md for what this package may import."""
from posbench.tasks.catalog import TaskRegistry
from posbench.tasks.errors import MissingData, TaskError
from posbench.tasks.registry import register_filter, register_generator, register_loader, register_metric
from posbench.tasks.schema import Sample, SampleContext, SampleDraft, TaskSpec, aggregate, build_samples, score_sample

__all__ = ["MissingData", "TaskError", "TaskRegistry", "register_filter", "register_generator", "register_loader",
           "register_metric", "Sample", "SampleContext", "SampleDraft", "TaskSpec", "aggregate", "build_samples",
           "score_sample"]
