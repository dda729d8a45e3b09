"""A small byte-level BPE tokenizer trained on the training data (Hugging Face `tokenizers`).

GPT-2-style byte-level pre-tokenisation, with every digit its own token (7-digit needles become 7 tokens the model
copies one by one, instead of arbitrary 3-digit chunks it must learn one by one). Two special tokens: `<|endoftext|>`
ends every document and sample (eos), `<|pad|>` pads (pad); no BOS, like OLMo-2's tokenizer.
"""
import hashlib
from pathlib import Path

EOS, PAD = "<|endoftext|>", "<|pad|>"


def train_bpe(texts, vocab_size: int):
    """A PreTrainedTokenizerFast with at most vocab_size tokens, trained on an iterable of strings."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)


def tokenizer_hash(tokenizer) -> str:
    """A fingerprint of what a tokenizer does (its serialised model, normaliser and special tokens)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def save_tokenizer(tokenizer, folder) -> Path:
    """Write the tokenizer files into folder (atomically: a half-written tokenizer is never read)."""
    import os
    import shutil
    import tempfile

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    tokenizer.save_pretrained(str(tmp))
    try:
        os.rename(tmp, folder)
    except OSError:  # another process finished first: theirs is the same tokenizer
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def tokenizer_for_config(cfg, data_paths: dict, out, log=print):
    """Train the BPE a config's `tokenizer: {train: ...}` describes, or load it if it was trained before: in
    data.cache (named by a fingerprint of the tokenizer spec, the text files' bytes and the synthetic sources, so
    runs on the same data share it), else in OUT/tokenizer.

    Two passes: a BPE trained on the text sources sizes `synthetic_samples` samples of every synthetic source (at
    its longest length, seed data.seed), then the final BPE is trained on the text and those samples, so the
    vocabulary knows the templates and needles the model will read.
    """
    from posbench.harness.core.checkpoint import load_tokenizer
    from posbench.harness.training.data import encode_sample, task_specs, text_documents

    spec = cfg.tokenizer["train"]
    folder = Path(out) / "tokenizer"
    if cfg.data["cache"]:
        folder = Path(cfg.data["cache"]) / f"tokenizer-{_fingerprint(cfg, data_paths)}"
    if (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    docs = [doc for source_docs in text_documents(cfg, data_paths).values() for doc in source_docs]
    texts = list(docs)
    specs = task_specs(cfg)
    if specs and spec["synthetic_samples"]:
        from posbench.harness.training.config import TrainConfigError
        from posbench.tasks import TaskError, build_samples

        provisional = train_bpe(docs, spec["vocab_size"])
        for name, task in specs.items():
            source = next(s for s in cfg.task_sources if s.name == name)
            try:
                samples = build_samples(task, provisional, max(source.lengths), seed=cfg.data["seed"],
                                        data_paths=data_paths, indices=range(spec["synthetic_samples"]),
                                        sampling="fill")   # what training draws (data.py)
            except TaskError as err:
                raise TrainConfigError(f"{cfg.path}: tokenizer.train, data source {name!r}: {err}") from None
            for sample in samples:
                ids, _ = encode_sample(provisional, sample, source.answer_join)
                texts.append(provisional.decode(ids, skip_special_tokens=True))
    tokenizer = train_bpe(texts, spec["vocab_size"])
    log(f"tokenizer: trained a byte-level BPE of {len(tokenizer)} tokens on {len(docs)} documents and "
        f"{len(texts) - len(docs)} synthetic samples -> {folder}")
    save_tokenizer(tokenizer, folder)
    return load_tokenizer(folder)


def _fingerprint(cfg, data_paths: dict) -> str:
    import dataclasses
    import json

    from posbench.harness.training.data import resolve_files

    digest = hashlib.sha256()
    for i, source in enumerate(cfg.text_sources):
        for path in resolve_files(source, data_paths, f"{cfg.path}: data.sources[{i}]"):
            digest.update(path.read_bytes())
    key = {"train": cfg.tokenizer["train"], "seed": cfg.data["seed"], "text": digest.hexdigest(), "format": 1,
           "sources": [dataclasses.asdict(s) for s in cfg.sources]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
