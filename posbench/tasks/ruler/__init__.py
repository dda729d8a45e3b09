"""RULER (NVIDIA/RULER, Hsieh et al. 2024): the 13 synthetic tasks, generated per tokenizer and context length.
Importing this package registers the generators, the metrics and the prediction filter the YAML files name."""
from posbench.tasks.ruler import common_words, freq_words, metrics, niah, qa, variable_tracking  # noqa: F401  (registration)
