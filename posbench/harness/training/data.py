"""Training data: text files and synthetic task samples packed into rows of seq_len + 1 tokens.

Every row is a pure function of (data.seed, row index), so a batch depends only on (seed, step) and a resumed run
reads exactly the batches an uninterrupted one would, whatever the number of workers or processes:

    optimizer step s reads global rows [s * G, (s + 1) * G), G = batch_size * grad_accum * world_size
    row r: rng = Random("{seed}:row:{r}"); draw a source by weight, then
      synthetic: a sample (index drawn from 0..samples-1, length from the source's lengths) = the prompt as the
                 evaluation engine encodes it + the answer text + EOS, starting at position 0 like an evaluation;
                 after it, draw again (another sample that fits, else text fills the rest of the row);
      text:      seq_len + 1 tokens from a random offset of the source's token stream (documents joined by EOS).
    Without text sources the rest of a row is padding, which carries no loss.

Synthetic samples come from `tasks.build_samples` with data.seed (never 42, the evaluation seed), so training and
evaluation samples share the generator and the template but not their needles, keys or values. A sample's answer
text is the gold answers joined by `answer_join`, after one space unless the prompt already ends in whitespace.

Per token the loader also returns its kind (KIND_*): the loss skips padding, may up-weight answer tokens, and the
logs report answer loss and accuracy separately.

Synthetic samples take milliseconds each (the generators search the haystack size by tokenising the prompt), so
they are generated in DataLoader workers, or once by `build_cache` in a process pool (`eval.py train --prepare`)
into data.cache, where concurrent runs on the same data share them: a cache entry is named by a fingerprint of
everything that defines its samples (tokenizer, task spec, length, seed, count, answer format).
"""
import glob
import gzip
import hashlib
import importlib
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from posbench.harness.training.config import TaskSource, TextSource, TrainConfigError

KIND_PAD, KIND_TEXT, KIND_PROMPT, KIND_ANSWER = 0, 1, 2, 3
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


# ---- text ---------------------------------------------------------------------------------------------------------

def resolve_files(source: TextSource, data_paths: dict, where: str) -> list:
    """The files a text source names (patterns with ${NAME} and globs), sorted; an empty match is an error."""
    def sub(m):
        if m.group(1) not in data_paths:
            raise TrainConfigError(f"{where}: unknown placeholder ${{{m.group(1)}}} in {source.files} (known: "
                                   f"{', '.join('${' + k + '}' for k in data_paths)})")
        return str(data_paths[m.group(1)])

    files = []
    for pattern in source.files:
        text = os.path.expanduser(_PLACEHOLDER.sub(sub, pattern))
        if any(c in text for c in "*?["):
            matched = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        else:
            matched = [Path(text)] if Path(text).is_file() else []
        if not matched:
            raise TrainConfigError(f"{where}: {pattern!r} matches no file ({text} does not exist)")
        files += matched
    return files


def read_documents(path: Path, text_key: str) -> list:
    """Documents of one file: a .txt file is one document; .json/.jsonl (optionally .gz) hold JSON lines or one
    JSON list of objects, each with a string under text_key."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        content = f.read()
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    if ".txt" in suffixes:
        return [content]
    if not ({".json", ".jsonl"} & set(suffixes)):
        raise TrainConfigError(f"{path}: unsupported text file type (use .txt, .json, .jsonl, optionally .gz)")
    if content.lstrip().startswith("["):
        try:
            records = json.loads(content)
        except json.JSONDecodeError as err:
            raise TrainConfigError(f"{path}:{err.lineno}: not a JSON list ({err.msg})") from None
    else:
        records = []
        for number, line in enumerate(content.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise TrainConfigError(f"{path}:{number}: not a JSON line ({err.msg})") from None
    docs = []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get(text_key), str):
            raise TrainConfigError(f"{path}: record {i} has no string under key {text_key!r} (set text_key)")
        docs.append(record[text_key])
    return docs


def text_stream(tokenizer, docs: list) -> np.ndarray:
    """All documents as one token array, each followed by EOS."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"] if docs else []
    return np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=np.int64)


# ---- synthetic samples --------------------------------------------------------------------------------------------

def import_task_modules(modules):
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise TrainConfigError(f"data.task_modules: cannot import {name!r} ({err})") from None


def encode_sample(tokenizer, sample, answer_join: str) -> tuple:
    """(token ids, number of answer tokens at the end incl. EOS) for a tasks.Sample."""
    prompt = tokenizer(sample.prompt, add_special_tokens=True)["input_ids"]  # as the engine encodes it
    sep = "" if sample.prompt[-1:].isspace() else " "
    answer = tokenizer(sep + answer_join.join(sample.answers), add_special_tokens=False)["input_ids"]
    return np.array(prompt + answer + [tokenizer.eos_token_id], dtype=np.int64), len(answer) + 1


class SyntheticSource:
    """One synthetic source: sample `index` at `length`, from its cache entry if there is one, else generated."""

    def __init__(self, source: TaskSource, spec, tokenizer, seed: int, data_paths: dict, tokenizer_id: str):
        self.source, self.spec, self.tokenizer, self.seed, self.data_paths = source, spec, tokenizer, seed, data_paths
        self.tokenizer_id = tokenizer_id
        self.cache = {}  # length -> (tokens, offsets, answer_lengths) memory maps

    @property
    def name(self):
        return self.source.name

    def generate(self, length: int, index: int) -> tuple:
        from posbench.tasks import build_samples

        # fill sampling: each training sample on its own (official sampling draws samples 0..index to reach one)
        sample = build_samples(self.spec, self.tokenizer, length, seed=self.seed, data_paths=self.data_paths,
                               indices=[index], sampling="fill")[0]
        return encode_sample(self.tokenizer, sample, self.source.answer_join)

    def tokens(self, length: int, index: int) -> tuple:
        if length in self.cache:
            tokens, offsets, answers = self.cache[length]
            return np.asarray(tokens[offsets[index]:offsets[index + 1]], dtype=np.int64), int(answers[index])
        return self.generate(length, index)

    def fingerprint(self, length: int) -> str:
        spec = {k: v for k, v in self.spec.describe().items() if k != "path"}
        from posbench.tasks.schema import resolve_data_paths
        spec["source_params"] = resolve_data_paths(self.spec.source_params, self.data_paths, self.spec.name)
        key = {"tokenizer": self.tokenizer_id, "spec": spec, "length": length, "seed": self.seed,
               "samples": self.source.samples, "answer_join": self.source.answer_join, "format": 1}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def cache_dir(self, root: Path, length: int) -> Path:
        return Path(root) / "samples" / f"{self.spec.name}-L{length}-{self.fingerprint(length)}"

    def open_cache(self, root: Path) -> list:
        """Memory-map the cache entries that exist; returns the lengths still missing."""
        missing = []
        for length in self.source.lengths:
            folder = self.cache_dir(root, length)
            if (folder / "meta.json").is_file():
                self.cache[length] = tuple(np.load(folder / f"{name}.npy", mmap_mode="r")
                                           for name in ("tokens", "offsets", "answers"))
            else:
                missing.append(length)
        return missing


_POOL_SOURCE = None


def _pool_init(source):
    global _POOL_SOURCE
    _POOL_SOURCE = source
    torch.set_num_threads(1)


def _pool_generate(job):
    return _POOL_SOURCE.generate(*job)


def build_cache(source: SyntheticSource, root: Path, length: int, workers: int, log=print) -> Path:
    """Generate samples 0..samples-1 at `length` with `workers` processes into root (atomically)."""
    import multiprocessing

    folder = source.cache_dir(root, length)
    n = source.source.samples
    start = time.perf_counter()
    jobs = [(length, i) for i in range(n)]
    if workers > 1:
        ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
        with ctx.Pool(workers, initializer=_pool_init, initargs=(source,)) as pool:
            results = list(pool.imap(_pool_generate, jobs, chunksize=max(1, min(64, n // (4 * workers)))))
    else:
        results = [source.generate(*job) for job in jobs]
    seconds = time.perf_counter() - start
    lengths = np.array([len(ids) for ids, _ in results], dtype=np.int64)
    dtype = np.uint16 if len(source.tokenizer) <= 65536 else np.int32
    tokens = np.concatenate([ids for ids, _ in results]).astype(dtype)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    answers = np.array([a for _, a in results], dtype=np.int32)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    for name, array in (("tokens", tokens), ("offsets", offsets), ("answers", answers)):
        np.save(tmp / f"{name}.npy", array)
    meta = {"task": source.spec.name, "length": length, "samples": n, "seed": source.seed,
            "tokens": int(tokens.size), "mean_tokens": float(lengths.mean()), "seconds": round(seconds, 2),
            "workers": workers, "samples_per_s": round(n / seconds, 1)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
        os.rename(tmp, folder)
    except OSError:  # a concurrent run wrote the same entry first
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"data cache: {source.name} at {length}: {n} samples in {seconds:.1f} s with {workers} workers "
        f"({n / seconds:.0f} samples/s, {n / seconds / workers:.0f} per worker)")
    return folder


# ---- rows ---------------------------------------------------------------------------------------------------------

class RowDataset(torch.utils.data.Dataset):
    """Row r -> (input ids [seq_len], target ids [seq_len], target kinds [seq_len]); see the module docstring."""

    def __init__(self, seq_len: int, seed: int, texts: list, synthetic: list, pad_id: int):
        # texts: [(TextSource, token stream)], synthetic: [SyntheticSource]
        self.seq_len, self.seed, self.pad_id = seq_len, seed, pad_id
        self.texts = texts
        self.synthetic = synthetic
        self.sources = [s for s, _ in texts] + [s.source for s in synthetic]
        self.weights = [s.weight for s in self.sources]
        self.by_name = {s.name: i for i, s in enumerate(self.sources)}
        self.n_text = len(texts)

    def _fill_text(self, rng, ids, kinds, pos, choice=None):
        if not self.texts:
            return
        source, stream = self.texts[choice] if choice is not None else \
            rng.choices(self.texts, [s.weight for s, _ in self.texts])[0]
        start = rng.randrange(len(stream))
        ids[pos:] = stream[(start + np.arange(len(ids) - pos)) % len(stream)]
        kinds[pos:] = KIND_TEXT

    def row(self, r: int) -> tuple:
        rng = random.Random(f"{self.seed}:row:{r}")  # str seeds hash with sha512: equal in every process
        n = self.seq_len + 1
        ids = np.full(n, self.pad_id, dtype=np.int64)
        kinds = np.zeros(n, dtype=np.uint8)
        pos = 0
        while pos < n:
            pick = rng.choices(range(len(self.sources)), self.weights)[0]
            if pick < self.n_text:
                self._fill_text(rng, ids, kinds, pos, choice=pick)
                break
            source = self.synthetic[pick - self.n_text]
            fitting = [length for length in source.source.lengths if length <= n - pos]
            if not fitting:
                self._fill_text(rng, ids, kinds, pos)
                break
            tokens, answer = source.tokens(rng.choice(fitting), rng.randrange(source.source.samples))
            k = min(len(tokens), n - pos)
            ids[pos:pos + k] = tokens[:k]
            kinds[pos:pos + k] = KIND_PROMPT
            kinds[pos + max(len(tokens) - answer, 0):pos + k] = KIND_ANSWER
            pos += k
        return ids, kinds

    def __getitem__(self, r: int):
        ids, kinds = self.row(r)
        ids = torch.from_numpy(ids)
        return ids[:-1], ids[1:], torch.from_numpy(kinds[1:])


class RowSampler(torch.utils.data.Sampler):
    """The global row indices this process reads, in order, from optimizer step `start` to `steps`."""

    def __init__(self, start: int, steps: int, batch_size: int, grad_accum: int, rank: int = 0, world: int = 1):
        self.start, self.steps, self.batch_size, self.grad_accum = start, steps, batch_size, grad_accum
        self.rank, self.world = rank, world

    def __iter__(self):
        B, A, W = self.batch_size, self.grad_accum, self.world
        for step in range(self.start, self.steps):
            for micro in range(A):
                first = step * B * A * W + (micro * W + self.rank) * B
                yield from range(first, first + B)

    def __len__(self):
        return (self.steps - self.start) * self.batch_size * self.grad_accum


# ---- everything a run reads ---------------------------------------------------------------------------------------

def text_documents(cfg, data_paths: dict) -> dict:
    """{text source name: [documents]} (missing files and bad records fail here)."""
    out = {}
    for i, source in enumerate(cfg.sources):
        if isinstance(source, TextSource):
            where = f"{cfg.path}: data.sources[{i}]"
            out[source.name] = [doc for path in resolve_files(source, data_paths, where)
                                for doc in read_documents(path, source.text_key)]
    return out


def task_specs(cfg) -> dict:
    """{synthetic source name: TaskSpec}; unknown tasks and non-generator tasks fail here."""
    from posbench.tasks import TaskError, TaskRegistry

    import_task_modules(cfg.data["task_modules"])
    try:
        registry = TaskRegistry(include_paths=cfg.data["task_paths"])
    except TaskError as err:
        raise TrainConfigError(f"{cfg.path}: data.task_paths: {err}") from None
    out = {}
    for i, source in enumerate(cfg.sources):
        if isinstance(source, TaskSource):
            where = f"{cfg.path}: data.sources[{i}]"
            try:
                spec = registry.get(source.task)
            except TaskError as err:
                raise TrainConfigError(f"{where}: {err}") from None
            if spec.source_kind != "generator":
                raise TrainConfigError(f"{where}: task {source.task} reads records (loader "
                                       f"{spec.source_name!r}); training uses generator tasks only")
            out[source.name] = spec
    return out


def load_data(cfg, tokenizer, data_paths: dict, tokenizer_id: str, *, workers: int = 1, build_missing=True,
              log=print) -> RowDataset:
    """The run's RowDataset. With data.cache, missing cache entries are built (build_missing) and the rest memory
    mapped; without it, sample 0 of every source and length is generated now, so a length that is too small or a
    generator error fails before training starts."""
    from posbench.tasks import TaskError

    docs = text_documents(cfg, data_paths)
    texts = [(s, text_stream(tokenizer, docs[s.name])) for s in cfg.text_sources]
    for source, stream in texts:
        if len(stream) == len(docs[source.name]):  # nothing but the EOS after each document
            raise TrainConfigError(f"{cfg.path}: data source {source.name!r} holds no text ({source.files})")
    synthetic = []
    for name, spec in task_specs(cfg).items():
        source = next(s for s in cfg.task_sources if s.name == name)
        synth = SyntheticSource(source, spec, tokenizer, cfg.data["seed"], data_paths, tokenizer_id)
        try:
            missing = synth.open_cache(cfg.data["cache"]) if cfg.data["cache"] else list(source.lengths)
            for length in missing:
                if cfg.data["cache"] and build_missing:
                    build_cache(synth, Path(cfg.data["cache"]), length, workers, log=log)
                else:
                    synth.generate(length, 0)
            if cfg.data["cache"]:
                synth.open_cache(cfg.data["cache"])
        except TaskError as err:
            raise TrainConfigError(f"{cfg.path}: data source {name!r}: {err}") from None
        synthetic.append(synth)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return RowDataset(cfg.train["seq_len"], cfg.data["seed"], texts, synthetic, pad)
