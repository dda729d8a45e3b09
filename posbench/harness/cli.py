"""The `eval.py` command line: a thin dispatcher over posbench/harness/commands/*.

Command modules are imported when the parser is built, so they must keep torch and other heavy imports
inside their run functions: `eval.py --help` should answer instantly.
"""
import argparse
import importlib
import sys
import warnings

# Order is the order shown by --help.
COMMANDS = ["list", "info", "generate", "run", "analyze", "report", "bench", "train"]

EPILOG = """\
examples:
  python eval.py list tasks                      # every task and group
  python eval.py list schemes                    # position schemes and their parameters
  python eval.py info MODEL_DIR                  # what a checkpoint is and which scheme each layer uses
  python eval.py report RUN_DIR                  # paper-style tables and plots from a finished run

Everything loads from local paths; nothing is downloaded.
"""

# posbench's packages. Every error class they define for bad input (TaskError, SchemeError, CheckpointError,
# SweepError, ReportError, ...) subclasses ValueError; those are printed as one `error:` line. A ValueError raised
# anywhere else (a bug, or a library) keeps its traceback.
OWN_PACKAGES = ("posbench",)


class UserError(ValueError):
    """A problem with the user's input: printed as one clear message, without a traceback."""


def is_user_error(err: BaseException) -> bool:
    cls = type(err)
    return isinstance(err, ValueError) and cls.__module__.split(".")[0] in OWN_PACKAGES


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
        importlib.import_module(f"posbench.harness.commands.{name}").register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"  # users need the message, not our source line


def main(argv=None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
