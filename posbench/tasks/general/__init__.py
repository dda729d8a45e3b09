"""General short-context benchmarks: ARC, BoolQ and MMLU as posbench multiple-choice tasks (loader.py and the YAML
files here), and the lm-evaluation-harness tasks in lm_eval/ (read by lm-eval only, never by posbench's registry)."""
from posbench.tasks.general import loader  # noqa: F401  (registers the loaders)
