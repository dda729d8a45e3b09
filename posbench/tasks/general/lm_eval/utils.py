"""Local data for posbench's lm-evaluation-harness tasks (`custom_dataset: !function utils.<name>`). Nothing is fetched.

lm-eval imports this file by path (not as part of the `tasks` package), so it only uses the standard library,
`datasets`, lm-eval itself and the installed posbench's data catalogue (for the default data root).

Catalogued data (ARC, BoolQ, MMLU: `eval.py data download arc boolq mmlu`) is read from the data root:
`--metadata '{"data_root": DIR}'`, else $POSBENCH_DATA, else ${XDG_DATA_HOME:-~/.local/share}/posbench/data.
User data (HellaSwag, MMLU-Pro, TriviaQA) comes from
`--metadata '{"hellaswag": PATH}'` or $POSBENCH_DATA_HELLASWAG (likewise MMLU_PRO, TRIVIAQA), else
`<data root>/<name>`; PATH is a file (.jsonl/.json/.parquet/.arrow) holding the evaluated split, or a folder with
`<split>/` (save_to_disk), `<split>.jsonl`, `<split>.parquet` or `**/<split>-*.parquet` (the Hub layout).
"""
import os
from pathlib import Path

# Prompt helpers are lm-eval's own (hellaswag/utils.py, mmlu_pro/utils.py), re-exported under names the YAML files
# can use as `utils.<name>`, so the prompts are exactly lm-eval's.
import lm_eval.tasks.hellaswag.utils as _hellaswag
import lm_eval.tasks.mmlu_pro.utils as _mmlu_pro

from posbench.tasks.data_catalogue import default_data_root

hellaswag_process_docs = _hellaswag.process_docs
mmlu_pro_doc_to_text = _mmlu_pro.doc_to_text
mmlu_pro_fewshot_to_text = _mmlu_pro.fewshot_to_text
mmlu_pro_fewshot_to_target = _mmlu_pro.fewshot_to_target

DOWNLOAD = "run `python eval.py data download arc boolq mmlu` (or pass --metadata '{\"data_root\": DIR}')"
MMLU_PRO_CATEGORIES = ("biology", "business", "chemistry", "computer science", "economics", "engineering",
                       "health", "history", "law", "math", "other", "philosophy", "physics", "psychology")
USER_DATA = {"hellaswag": "Rowan/hellaswag (validation split)", "mmlu_pro": "TIGER-Lab/MMLU-Pro (test and "
             "validation splits)", "triviaqa": "mandarjoshi/trivia_qa, config rc.nocontext (validation split)"}


def data_root(meta: dict) -> Path:
    return Path(meta.get("data_root") or default_data_root())


def _arrow_folder(folder: Path):
    import datasets
    shards = sorted(folder.glob("*.arrow"))
    if not shards:
        raise FileNotFoundError(f"posbench: no Arrow shards (*.arrow) in {folder}; {DOWNLOAD}")
    return datasets.concatenate_datasets([datasets.Dataset.from_file(str(s)) for s in shards])


def _file(path: Path):
    import datasets
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return datasets.Dataset.from_json(str(path))
    if suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(path))
    if suffix == ".arrow":
        return datasets.Dataset.from_file(str(path))
    raise ValueError(f"posbench: cannot read {path}: expected .jsonl, .json, .parquet or .arrow")


def _split(path: Path, split: str, single_file_ok: bool):
    if path.is_file():
        if not single_file_ok:
            raise ValueError(f"posbench: {path} is one file, but this task needs several splits; give a folder")
        return _file(path)
    if (path / split).is_dir():
        return _arrow_folder(path / split)
    for candidate in (path / f"{split}.jsonl", path / f"{split}.json", path / f"{split}.parquet"):
        if candidate.is_file():
            return _file(candidate)
    shards = sorted(path.rglob(f"{split}-*.parquet"))
    if shards:
        import datasets
        return datasets.concatenate_datasets([_file(s) for s in shards])
    raise FileNotFoundError(f"posbench: no {split!r} split under {path} (looked for {split}/, {split}.jsonl, "
                            f"{split}.json, {split}.parquet, **/{split}-*.parquet)")


def _user_path(name: str, meta: dict) -> Path:
    env = f"POSBENCH_DATA_{name.upper()}"
    path = Path(meta.get(name) or os.environ.get(env) or data_root(meta) / name)
    if not path.exists():
        raise FileNotFoundError(
            f"posbench_{name} needs local {USER_DATA[name]} data, which posbench does not ship or download: pass "
            f"--metadata '{{\"{name}\": \"PATH\"}}', set {env}=PATH, or put it at {path}")
    return path


# ---- custom_dataset functions: fn(**metadata) -> {split: Dataset} -----------------------------------------------

def arc_easy(**meta):
    return {"validation": _arrow_folder(data_root(meta) / "general/ai2_arc/ARC-Easy/validation")}


def arc_challenge(**meta):
    return {"validation": _arrow_folder(data_root(meta) / "general/ai2_arc/ARC-Challenge/validation")}


def boolq(**meta):
    return {"validation": _arrow_folder(data_root(meta) / "general/boolq/none/validation")}


def mmlu(**meta):
    import datasets
    root = data_root(meta) / "general/hails/mmlu_no_train"
    subjects = sorted(p for p in root.glob("*/test") if p.is_dir())
    if not subjects:
        raise FileNotFoundError(f"posbench: no MMLU subject folders (<subject>/test/) under {root}; {DOWNLOAD}")
    return {"test": datasets.concatenate_datasets([_arrow_folder(p) for p in subjects])}


def hellaswag(**meta):
    return {"validation": _split(_user_path("hellaswag", meta), "validation", single_file_ok=True)}


def triviaqa(**meta):
    return {"validation": _split(_user_path("triviaqa", meta), "validation", single_file_ok=True)}


def mmlu_pro(**meta):
    path = _user_path("mmlu_pro", meta)
    return {split: _split(path, split, single_file_ok=False) for split in ("test", "validation")}


for _c in MMLU_PRO_CATEGORIES:   # utils.mmlu_pro_process_<category>: lm-eval's per-category filters
    _key = _c.replace(" ", "_")
    globals()[f"mmlu_pro_process_{_key}"] = getattr(_mmlu_pro, f"process_{_key}")
