"""A toy synthetic task for the training tests (RULER's tasks live on another branch): one key-value needle among
filler lines, fitted to the token budget like RULER's niah. Importing this module registers generator `toy_kv` and
metric `toy_contains`; `write_task(folder)` writes the task file `toy_kv.yaml`."""
from pathlib import Path

from posbench.tasks import SampleDraft, register_generator, register_metric

KEYS = ["apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "piano", "amber", "lemon", "cedar", "comet"]
FILLER = "The sky is blue."
TASK = """\
task: toy_kv
description: "toy retrieval: the 4-digit code of one key among filler lines"
source: {generator: toy_kv}
template: "{context}\\nWhat is the code for {key}?"
answer_prefix: " The code for {key} is"
max_new_tokens: 8
metrics: [toy_contains]
num_samples: 8
seed: 42
context_lengths: [128]
"""


@register_generator("toy_kv")
def toy_kv(ctx):
    key, value = ctx.rng.choice(KEYS), str(ctx.rng.randint(1000, 9999))
    depth = ctx.rng.random()

    def fields(n):
        lines = [FILLER] * n
        lines.insert(int(depth * n), f"The code for {key} is {value}.")
        return {"context": "\n".join(lines), "key": key}

    n = 1
    while ctx.count_tokens(ctx.render(fields(n + 1))) <= ctx.budget:
        n += 1
    return SampleDraft(fields=fields(n), answers=[value])


@register_metric("toy_contains")
def toy_contains(prediction, sample) -> float:
    return float(all(a in prediction for a in sample.answers))


def write_task(folder) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy_kv.yaml").write_text(TASK)
    return folder
