"""RULER (NVIDIA/RULER, Hsieh et al. 2024): the 13 synthetic tasks, generated per tokenizer and context length.
Importing this package registers the generators (fill sampling), the official samplers, the metrics and the
prediction filter the YAML files name."""
from posbench.tasks.ruler import (  # noqa: F401  (registration)
    common_words,
    freq_words,
    metrics,
    niah,
    official,
    qa,
    variable_tracking,
)
