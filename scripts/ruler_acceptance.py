#!/usr/bin/env python
"""RULER acceptance check: `eval.py generate --sampling fill` for the 13 RULER tasks at 4K/8K/16K with the OLMo-2
tokenizer (official sampling is checked against RULER's own files by tests/test_ruler_official.py).

Every sample must satisfy prompt tokens + max new tokens <= L, and >= 0.9 L for the haystack tasks. qa_1/qa_2 run
on stand-in SQuAD v2.0 / HotpotQA files in the official formats, built here from the essay haystack (large enough to
fill 16K). Prints a table (task, length, min/max fill, seconds) and exits 1 on any violation.

    python scripts/ruler_acceptance.py [--samples 5] [--keep DIR]
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TOKENIZER = DATA / "tokenizers" / "olmo2_dolma2_tokenizer.json"
TASKS = ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
         "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"]
LENGTHS = [4096, 8192, 16384]


def essay_paragraphs(n_words=90):
    words = " ".join(p.read_text(encoding="utf-8") for p in sorted((DATA / "haystack" / "pg_essays").glob("*.txt")))
    words = words.split()
    return [" ".join(words[i:i + n_words]) for i in range(0, len(words) - n_words, n_words)]


def write_fixtures(folder: Path):
    paras = essay_paragraphs()
    squad = {"version": "v2.0", "data": []}
    for a in range(20):                          # 20 articles x 25 paragraphs, one answerable question each
        article = {"title": f"essay_{a}", "paragraphs": []}
        for p in range(25):
            text = paras[a * 25 + p]
            answer = text.split()[5]
            article["paragraphs"].append({"context": text, "qas": [
                {"id": f"{a}-{p}", "question": f"What is the sixth word of passage {a}-{p}?", "is_impossible": False,
                 "answers": [{"text": answer, "answer_start": text.index(answer)}]}]})
        squad["data"].append(article)
    (folder / "dev-v2.0.json").write_text(json.dumps(squad))
    hotpot = []
    for q in range(40):                          # 40 questions x 10 paragraphs
        context = [[f"Essay part {q}-{p}", [s + " " for s in paras[600 + q * 10 + p].split(". ")]] for p in range(10)]
        hotpot.append({"_id": str(q), "question": f"Which part starts with '{context[3][1][0][:20]}'?",
                       "answer": f"Essay part {q}-3", "supporting_facts": [[context[3][0], 0]], "context": context,
                       "type": "bridge", "level": "hard"})
    (folder / "hotpot_dev_distractor_v1.json").write_text(json.dumps(hotpot))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--keep", metavar="DIR", help="write the samples and fixtures here (default: a temporary folder)")
    args = ap.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="ruler_acceptance_"))
    folder.mkdir(parents=True, exist_ok=True)
    write_fixtures(folder)
    failures, rows = [], []
    for task in TASKS:
        out = folder / f"{task}.jsonl"
        cmd = [sys.executable, "eval.py", "generate", task, "--sampling", "fill", "--tokenizer", str(TOKENIZER),
               "--samples", str(args.samples), "--out", str(out), "--data", f"squad={folder / 'dev-v2.0.json'}",
               "--data", f"hotpotqa={folder / 'hotpot_dev_distractor_v1.json'}"]
        for length in LENGTHS:
            cmd += ["--length", str(length)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            failures.append(f"{task}: exit {proc.returncode}: {proc.stderr.strip()}")
            continue
        seconds = {int(m[0]): float(m[1]) for m in re.findall(r"length=(\d+): .*, ([\d.]+)s$", proc.stderr, re.M)}
        samples = [json.loads(line) for line in out.read_text().splitlines()]
        for length in LENGTHS:
            got = [s for s in samples if s["length"] == length]
            fills = [(s["token_count"] + s["max_new_tokens"]) / length for s in got]
            for s, f in zip(got, fills):
                if f > 1 or f < 0.9:
                    failures.append(f"{task} @ {length} sample {s['index']}: fill {f:.4f}")
            rows.append((task, length, len(got), min(fills), max(fills), seconds.get(length, float("nan"))))
    print("| task | L | n | min fill | max fill | seconds (n samples) |\n|---|---|---|---|---|---|")
    for task, length, n, lo, hi, secs in rows:
        print(f"| {task} | {length} | {n} | {lo:.4f} | {hi:.4f} | {secs:.2f} |")
    print(f"\nsamples and fixtures in {folder}")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
