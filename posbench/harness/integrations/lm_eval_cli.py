"""lm-evaluation-harness's own command line, with posbench's model registered and nothing downloaded.

    posbench lm-eval --model posbench \\          (or: python eval.py lm-eval ...)
        --model_args pretrained=DIR,scheme=repo,max_length=4096 --batch_size 8 \\
        --tasks posbench_arc_easy,posbench_mmlu --limit 4

Every argument is lm-eval's (`lm_eval --help`), plus posbench's `--data NAME=PATH` for the user-supplied data sets
(hellaswag, mmlu_pro, triviaqa), which becomes $POSBENCH_DATA_<NAME>. `--include_path posbench/tasks/general/lm_eval`
is added
when no --include_path is given. HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1 are set unless already set.

Why a wrapper: lm-eval 0.4.13 (the newest release) resolves `--model` before it imports any task file and has no
plugin entry point (its registry never reads installed entry points), so the `posbench` model must be registered by
importing posbench.harness.integrations.lm_eval_model first. Plain `lm_eval --model posbench` does not know it.
"""
import os
import sys
from pathlib import Path

LM_EVAL_TASKS = Path(__file__).resolve().parents[2] / "tasks" / "general" / "lm_eval"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rest = []
    while argv:
        arg = argv.pop(0)
        if arg == "--data" or arg.startswith("--data="):
            value = arg.partition("=")[2] or (argv.pop(0) if argv else "")
            name, sep, path = value.partition("=")
            if not sep or not name or not path:
                print(f"error: --data expects NAME=PATH, got {value!r}", file=sys.stderr)
                return 2
            os.environ[f"POSBENCH_DATA_{name.upper()}"] = path
        else:
            rest.append(arg)
    if not any(a == "--include_path" or a.startswith("--include_path=") for a in rest):
        rest += ["--include_path", str(LM_EVAL_TASKS)]

    from lm_eval.__main__ import cli_evaluate

    import posbench.harness.integrations.lm_eval_model  # noqa: F401  (registers --model posbench)
    sys.argv = ["lm_eval"] + rest
    cli_evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
