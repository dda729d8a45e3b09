"""HybridQA scores: the official `evaluate_script.py` EM and F1 (SQuAD normalisation, one gold per question), and the
RePo authors' OLMES `substring_exact_match`. Reports can split them by `metadata["answer_source"]` (table / passage,
from `dev_reference.json`), as the official script does."""
from posbench.tasks.metrics.squad import best_over, squad_exact, squad_f1, substring_match
from posbench.tasks.registry import register_metric


@register_metric("hybridqa_em")
def hybridqa_em(prediction, sample) -> float:
    return best_over(sample.answers, squad_exact, prediction)


@register_metric("hybridqa_f1")
def hybridqa_f1(prediction, sample) -> float:
    return best_over(sample.answers, squad_f1, prediction)


@register_metric("hybridqa_substring")
def hybridqa_substring(prediction, sample) -> float:
    """Normalised gold inside normalised prediction (an empty normalised gold always matches, as in OLMES)."""
    return best_over(sample.answers, substring_match, prediction)
