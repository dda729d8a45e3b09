"""The `eval.py` command line: a thin dispatcher over posbench/harness/commands/*.

Command modules are imported when the parser is built, so they must keep torch and other heavy imports
inside their run functions: `eval.py --help` should answer instantly.
"""
import argparse
import importlib
import os
import sys
import traceback
import warnings

from posbench.harness.errors import BUG_LINE, error_line, is_user_error

# Order is the order shown by --help.
COMMANDS = ["list", "info", "generate", "run", "analyze", "report", "bench", "train", "data", "lm-eval"]

EPILOG = """\
examples:
  python eval.py list tasks                      # every task and group
  python eval.py list schemes                    # position schemes and their parameters
  python eval.py info MODEL_DIR                  # what a checkpoint is and which scheme each layer uses
  python eval.py report RUN_DIR                  # paper-style tables and plots from a finished run

Everything loads from local paths; only `data download` goes online.
"""

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
        importlib.import_module(f"posbench.harness.commands.{name.replace('-', '_')}").register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"  # users need the message, not our source line


def main(argv=None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lm-eval"] and argv[1:2] not in (["-h"], ["--help"]):
        # lm-eval's options (--model, --tasks, ...) are not ours to parse: pass them through untouched.
        args = argparse.Namespace(func=importlib.import_module("posbench.harness.commands.lm_eval").run,
                                  lm_eval_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    args.argv = argv   # a command may start copies of itself (--gpus)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args) or 0
        sys.stdout.flush()   # a closed pipe shows here, not as an "Exception ignored" at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`eval.py data list | head`): not an error; stop writing to the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if not is_user_error(err):
            traceback.print_exc()
            print(BUG_LINE, file=sys.stderr)
            return 1
        print(error_line(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
