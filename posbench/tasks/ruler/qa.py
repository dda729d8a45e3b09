"""RULER QA (`scripts/data/synthetic/qa.py`): a real question among its gold paragraph(s) and distractor paragraphs,
from SQuAD v2.0 dev (qa_1) or HotpotQA dev distractor (qa_2) in their official JSON formats. Sample i asks
question i."""
import functools
import json
import random
from pathlib import Path

from posbench.tasks.data_catalogue import missing_data
from posbench.tasks.errors import TaskError
from posbench.tasks.registry import register_generator
from posbench.tasks.ruler.common import DistinctDraws, check_choice, fit, fit_budget
from posbench.tasks.schema import SampleDraft

OFFICIAL = {
    "squad": ("SQuAD v2.0 dev", "dev-v2.0.json", "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json"),
    "hotpotqa": ("HotpotQA dev distractor", "hotpot_dev_distractor_v1.json",
                 "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"),
}
DOCUMENT = "Document {i}:\n{document}"


def _squad(data):
    """RULER's read_squad: answerable questions; docs = sorted unique paragraphs; a question's own doc, then the
    other paragraphs of its article."""
    docs = sorted({p["context"] for d in data["data"] for p in d["paragraphs"]})
    index = {c: i for i, c in enumerate(docs)}
    qas = []
    for d in data["data"]:
        article = [index[p["context"]] for p in d["paragraphs"]]
        for p in d["paragraphs"]:
            own = index[p["context"]]
            for q in p["qas"]:
                if not q["is_impossible"]:
                    qas.append((q["question"], [a["text"] for a in q["answers"]], [own],
                                [i for i in article if i != own]))
    return docs, qas


def _hotpot(data):
    """RULER's read_hotpotqa: doc = title + "\\n" + sentences joined; all 10 distractor-setting paragraphs are the
    question's own."""
    text = lambda title, sents: f"{title}\n{''.join(sents)}"  # noqa: E731
    docs = sorted({text(t, p) for d in data for t, p in d["context"]})
    index = {c: i for i, c in enumerate(docs)}
    qas = [(d["question"], [d["answer"]], [index[text(t, p)] for t, p in d["context"]], []) for d in data]
    return docs, qas


@functools.lru_cache(maxsize=4)
def _load(path: str, dataset: str, stamp) -> tuple:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TaskError(f"{path}: cannot read {OFFICIAL[dataset][0]} JSON: {err}") from None
    try:
        docs, qas = (_squad if dataset == "squad" else _hotpot)(data)
    except (KeyError, TypeError, ValueError) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise TaskError(f"{path}: not in the official {OFFICIAL[dataset][0]} format ({what})") from None
    if not qas:
        raise TaskError(f"{path}: no answerable questions in this {OFFICIAL[dataset][0]} file")
    return docs, qas


def load(task: str, dataset: str, path: str) -> tuple:
    label, name, _ = OFFICIAL[dataset]
    p = Path(path)
    if p.is_dir():
        p = p / name
    if not p.is_file():
        raise missing_data(dataset, f"task {task}: {label} file not found at {p} (or pass --data {dataset}=PATH)")
    st = p.stat()
    return _load(str(p), dataset, (st.st_mtime_ns, st.st_size))


@register_generator("ruler_qa")
def qa(ctx, *, dataset: str, path: str, fit_new_tokens: int = 0):
    check_choice(ctx.task, "dataset", dataset, tuple(OFFICIAL))
    docs, qas = load(ctx.task, dataset, path)
    if ctx.index >= len(qas):
        raise TaskError(f"task {ctx.task}: sample {ctx.index} asks question {ctx.index}, but {path} has only "
                        f"{len(qas)} answerable questions")
    question, answers, own, more = qas[ctx.index]
    rng = ctx.rng
    more_draws = DistinctDraws(len(more), rng.getrandbits(64))
    other_draws = DistinctDraws(len(docs), rng.getrandbits(64), exclude=own + more)

    def build(n):
        if n >= len(docs):
            chosen = list(range(len(docs)))
        elif n - len(own) > len(more):
            chosen = own + more + other_draws.take(n - len(own) - len(more))
        else:
            chosen = own + [more[j] for j in more_draws.take(max(0, n - len(own)))]
        random.Random(ctx.seed).shuffle(chosen)       # RULER: a fresh Random(random_seed) for every sample
        context = "\n\n".join(DOCUMENT.format(i=i + 1, document=docs[d]) for i, d in enumerate(chosen))
        fields = {"context": context, "query": question, "question": question}
        return ctx.count_tokens(ctx.render(fields)), (fields, chosen)

    n, (fields, chosen) = fit(ctx, build, fit_budget(ctx, fit_new_tokens), max(10, len(own)), "documents",
                              limit=len(docs))
    metadata = {"dataset": dataset, "question_index": ctx.index, "num_docs": len(chosen),
                "gold_documents": [chosen.index(d) + 1 for d in own]}
    return SampleDraft(fields=fields, answers=list(answers), metadata=metadata)
