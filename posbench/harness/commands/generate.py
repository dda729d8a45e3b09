"""`eval.py generate`: write the samples of tasks as JSON lines, exactly what a model will see and how it is scored."""
import sys

from posbench.harness.evaluation.data import ROOT_HELP


def register(sub):
    p = sub.add_parser(
        "generate", help="write task samples as JSON lines (prompt, answers, token count, metadata)",
        description="Build the samples of one or more tasks (or groups) for a tokenizer and context length, one JSON "
        "line per sample (Sample.to_json: prompt with answer prefix, answers, token_count, metadata such as needle "
        "depths and offsets). Lines go to --out or stdout; a summary per task and length goes to stderr. Tasks "
        "whose data is missing are skipped with a message naming the `eval.py data download` to run.")
    p.add_argument("tasks", metavar="TASK", help="task or group name; several separated by commas")
    p.add_argument("--tokenizer", required=True, metavar="PATH",
                   help="model folder or tokenizer.json whose tokens fill the context")
    p.add_argument("--length", type=int, action="append", metavar="L",
                   help="context length in tokens, prompt + new tokens (repeatable; default: the task's lengths)")
    p.add_argument("--samples", type=int, metavar="N", help="samples per task and length (default: the task's)")
    p.add_argument("--seed", type=int, metavar="S", help="seed (default: the task's)")
    p.add_argument("--out", metavar="FILE.jsonl", help="output file (default: stdout)")
    p.add_argument("--format", choices=["posbench", "ruler"], default="posbench",
                   help="posbench: Sample.to_json lines; ruler: RULER's own validation.jsonl records (index, input, "
                   "outputs, length, length_w_model_temp, answer_prefix[, token_position_answer]), byte for byte as "
                   "NVIDIA/RULER's prepare.py writes them, to diff against its files (RULER tasks)")
    p.add_argument("--sampling", choices=["official", "fill"],
                   help="RULER tasks: official (NVIDIA/RULER's own draws and sizes, the default) or fill (every "
                   "sample filled to the budget, the same content at every length); other tasks have one way")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR",
                   help="extra folder of task YAML files (repeatable)")
    p.add_argument("--data-root", metavar="DIR", help=ROOT_HELP)
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                   help="a named data file or folder, e.g. squad=dev-v2.0.json (repeatable)")
    p.set_defaults(func=run)


def _build(spec, tokenizer, length, n, seed, paths, sampling):
    """Fill-sampled generator tasks one sample at a time (for the progress bar); loader tasks and official sampling
    (one stream for the whole dataset) in one call."""
    from tqdm import tqdm

    from posbench.tasks import build_samples
    from posbench.tasks.schema import sampling_mode
    kw = dict(length=length, seed=seed, data_paths=paths, sampling=sampling)
    if spec.source_kind != "generator" or sampling_mode(spec, sampling) == "official":
        return build_samples(spec, tokenizer, num_samples=n, **kw)
    bar = tqdm(range(n), desc=f"{spec.name} @ {length}", unit="sample", file=sys.stderr, leave=False,
               disable=None if n >= 20 else True)
    return [build_samples(spec, tokenizer, indices=[i], **kw)[0] for i in bar]


def _summary(spec, length, samples, seconds) -> str:
    tokens = [s.token_count for s in samples]
    line = (f"{spec.name} length={length}: {len(samples)} samples, prompt tokens min/mean/max "
            f"{min(tokens)}/{sum(tokens) / len(tokens):.1f}/{max(tokens)}, {samples[0].max_new_tokens} new tokens")
    if samples[0].metadata.get("sampling"):
        line += f", {samples[0].metadata['sampling']} sampling"
    if length:
        fills = [(s.token_count + s.max_new_tokens) / length for s in samples]
        line += f", fill {min(fills):.4f}-{max(fills):.4f} of L"
    skipped = sum(s.skip_reason is not None for s in samples)
    return line + (f", {skipped} over budget (skipped)" if skipped else "") + f", {seconds:.2f}s"


def run(args):
    import os
    import time

    from posbench.harness.core.checkpoint import load_tokenizer
    from posbench.harness.errors import UserError
    from posbench.harness.evaluation.data import data_paths
    from posbench.harness.evaluation.sweep import MAX_LENGTH
    from posbench.tasks import MissingData, TaskRegistry

    try:
        paths = data_paths(args.data_root, args.data)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.samples is not None and args.samples <= 0:
        raise UserError(f"--samples must be positive, got {args.samples}")
    if any(length <= 0 for length in args.length or []):
        raise UserError(f"--length must be positive, got {args.length}")
    if any(length > MAX_LENGTH for length in args.length or []):   # prompt building is linear in the length
        raise UserError(f"--length must be at most {MAX_LENGTH} tokens, got {max(args.length)}")
    specs = TaskRegistry(include_paths=args.include_path).resolve(args.tasks)
    if args.format == "ruler":
        from posbench.tasks.ruler.records import ruler_line
        not_ruler = [s.name for s in specs if not s.source_name.startswith("ruler_")]
        if not_ruler:
            raise UserError(f"--format ruler: RULER records need RULER tasks; not RULER: {', '.join(not_ruler)}")
    tokenizer = load_tokenizer(args.tokenizer)

    # Write to a temporary file and rename at the end, so a failure never leaves a half-written --out.
    tmp = f"{args.out}.partial" if args.out else None
    out = open(tmp, "w", encoding="utf-8") if tmp else sys.stdout
    generated = 0
    try:
        for spec in specs:
            lengths = args.length or (list(spec.context_lengths) if spec.length_controlled else [None])
            n = args.samples or spec.num_samples
            for length in lengths:
                start = time.perf_counter()
                try:
                    samples = _build(spec, tokenizer, length, n, args.seed, paths, args.sampling)
                except MissingData as err:
                    print(f"skipped: {err}", file=sys.stderr)
                    break
                for s in samples:
                    out.write(ruler_line(s) if args.format == "ruler" else s.to_json() + "\n")
                out.flush()
                generated += 1
                print(_summary(spec, length, samples, time.perf_counter() - start), file=sys.stderr)
    except BaseException:
        if tmp:
            out.close()
            os.remove(tmp)
        raise
    if tmp:
        out.close()
        os.replace(tmp, args.out)
    if not generated:
        print("error: nothing was generated (every task was skipped)", file=sys.stderr)
        return 1
    return 0
