"""Load a tokenizer from a local model folder or a bare `tokenizer.json` file. Never downloads, never runs remote code."""
from pathlib import Path


class TokenizerError(ValueError):
    """The tokenizer path is missing or unreadable; the message names the path."""


def load_tokenizer(path):
    """A Hugging Face tokenizer from `path`: a folder (AutoTokenizer, local files only) or a tokenizer.json file."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    p = Path(path)
    if not p.exists():
        raise TokenizerError(f"tokenizer path {p} does not exist; pass a model folder or a tokenizer.json file")
    try:
        if p.is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(p))
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise TokenizerError(f"cannot load a tokenizer from {p}: {err}") from None
