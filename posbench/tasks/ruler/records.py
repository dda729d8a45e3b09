"""RULER's own record format (`validation.jsonl` as NVIDIA/RULER's prepare.py writes it), so posbench's samples can
be diffed line by line against files RULER generated (`eval.py generate ... --format ruler`)."""
import json


def ruler_record(sample) -> dict:
    """RULER's keys in RULER's order. Official samples carry RULER's index/length fields in metadata["ruler"]; fill
    samples use their own index, and length = prompt tokens + new tokens, as RULER computes it."""
    ruler = sample.metadata.get("ruler") or {}
    length = ruler.get("length", sample.token_count + sample.max_new_tokens)
    cut = len(sample.prompt) - len(sample.answer_prefix)
    out = {"index": ruler.get("index", sample.index), "input": sample.prompt[:cut], "outputs": sample.answers,
           "length": length, "length_w_model_temp": ruler.get("length_w_model_temp", length),
           "answer_prefix": sample.answer_prefix}
    position = ruler.get("token_position_answer", sample.metadata.get("token_position_answer"))
    if position is not None:      # niah records only
        out["token_position_answer"] = position
    return out


def ruler_line(sample) -> str:
    """One line exactly as RULER writes it: json.dump with its defaults (ASCII escapes, ", " and ": ")."""
    return json.dumps(ruler_record(sample)) + "\n"
