"""Teach lm-eval's own command line `--model posbench`, so that this works as typed:

    lm_eval --model posbench --model_args pretrained=DIR,scheme=repo,max_length=4096 --tasks posbench_arc_easy

lm-eval 0.4.13 finds models only in its registry and has no plugin entry point, and posbench is not an installed
package. So scripts/setup.sh runs `python -m harness.lm_eval_hook install`, which writes one line into the
environment's site-packages (posbench_lm_eval.pth). Python runs that line at every start-up; it does nothing unless
the program is lm-eval (`lm_eval`, `lm-eval` or `python -m lm_eval`) and its arguments name posbench. Only then does
it put this repository on sys.path and call activate(): the same set-up as harness.lm_eval_cli (offline, posbench's
lm-eval tasks on the include path, the model registered). No other program sees posbench's top-level names.

    python -m harness.lm_eval_hook install | remove | status
"""
import os
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PTH_NAME = "posbench_lm_eval.pth"
_active = False


def pth_line(repo: Path) -> str:
    """The .pth line: a cheap argv check, then the import. (.pth lines run only if they start with `import`.)"""
    return ("import sys; (lambda r, a, o: (sys.path.insert(0, r), __import__('harness.lm_eval_hook').lm_eval_hook"
            ".activate()) if ('posbench' in a or '--model=posbench' in a) and (a[0].replace('\\\\', '/')"
            ".rsplit('/', 1)[-1] in ('lm_eval', 'lm-eval', 'lm_eval.exe') or 'lm_eval' in o[:4]) else None)"
            f"({str(repo)!r}, sys.argv, getattr(sys, 'orig_argv', []))\n")


def activate():
    """Called from the .pth line in an lm-eval process that names posbench."""
    global _active
    if _active:
        return
    _active = True
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not any(a == "--include_path" or a.startswith("--include_path=") for a in sys.argv):
        sys.argv += ["--include_path", str(REPO / "tasks" / "general" / "lm_eval")]
    import harness.lm_eval_model  # noqa: F401  (registers "posbench")


def pth_path() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action = args[0] if args else "status"
    path = pth_path()
    if action == "install":
        path.write_text(pth_line(REPO))
        print(f"lm_eval --model posbench: enabled for {sys.prefix} ({path})")
    elif action == "remove":
        path.unlink(missing_ok=True)
        print(f"lm_eval --model posbench: removed ({path})")
    elif action == "status":
        state = "enabled" if path.exists() and path.read_text() == pth_line(REPO) else "not enabled"
        print(f"lm_eval --model posbench: {state} for this repository in {sys.prefix}")
    else:
        print(f"usage: python -m harness.lm_eval_hook install|remove|status (got {action!r})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
