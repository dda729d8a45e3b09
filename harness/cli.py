"""The `eval.py` command line: a thin dispatcher over harness/commands/*.

Command modules are imported when the parser is built, so they must keep torch and other heavy imports
inside their run functions: `eval.py --help` should answer instantly.
"""
import argparse
import importlib
import sys

from harness.tokenizer import TokenizerError
from tasks.errors import TaskError

# Order is the order shown by --help.
COMMANDS = ["list", "generate"]

EPILOG = """\
examples:
  python eval.py list tasks                      # every task and group
  python eval.py list schemes                    # position schemes and their parameters
  python eval.py info --model DIR                # what a checkpoint is and which scheme each layer uses
  python eval.py generate niah_single_1 --tokenizer DIR --length 4096 --samples 3

Everything loads from local paths; nothing is downloaded.
"""


class UserError(Exception):
    """A problem with the user's input: printed as one clear message, without a traceback."""


# Errors that mean bad input (a task file, a data file, a tokenizer path): one line, no traceback.
USER_ERRORS = (UserError, TaskError, TokenizerError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval.py",
        description="posbench: does this position scheme help at 4K, 8K and 16K tokens, on which kind of "
        "context, and at what cost?",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
