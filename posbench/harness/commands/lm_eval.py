"""`eval.py lm-eval ...` (and `posbench lm-eval ...`): lm-evaluation-harness's own command line with posbench's model
registered. lm-eval 0.4.13 (the newest release) has no entry point for model plugins, so this command is the way to
reach `--model posbench`; every argument after `lm-eval` is lm-eval's (see harness/integrations/lm_eval_cli.py).
"""

EPILOG = """\
examples:
  posbench lm-eval --model posbench --model_args pretrained=DIR,scheme=repo,max_length=4096 \\
      --tasks posbench_arc_easy,posbench_mmlu --batch_size 8
  python eval.py lm-eval --tasks list          # lm-eval's own options work as with `lm_eval`

posbench's lm-eval tasks (posbench_*) are included unless --include_path is given; --data NAME=PATH supplies
hellaswag, mmlu_pro or triviaqa files. Needs the lm-eval extra: pip install -e ".[lm-eval]".
"""


def register(sub):
    p = sub.add_parser("lm-eval", help="run lm-evaluation-harness with --model posbench (lm-eval's arguments)",
                       description="lm-evaluation-harness's command line with posbench's model and tasks registered. "
                       "Everything after `lm-eval` goes to lm-eval unchanged.", epilog=EPILOG,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("lm_eval_args", nargs="*", metavar="LM_EVAL_ARG", help="lm-eval's arguments (`lm_eval --help`)")
    p.set_defaults(func=run)


def run(args):
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        from posbench.harness.errors import UserError
        raise UserError("lm-eval is not installed: pip install -e \".[lm-eval]\" (lm-eval==0.4.13)") from None
    from posbench.harness.integrations.lm_eval_cli import main
    return main(args.lm_eval_args)
