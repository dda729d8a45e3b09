"""`eval.py data`: list, download and check the outside data the tasks read (posbench/tasks/data_catalogue.py)."""
from posbench.harness.evaluation.data import ROOT_HELP

EPILOG = """\
examples:
  python eval.py data list                 # every data set: what uses it, source, licence, size, present or not
  python eval.py data download essays      # fetch from the official source, verify size + sha256, lay out
  python eval.py data download all
  python eval.py data check                # hash what is there against the catalogue

Offline: copy a data root made by `data download` on another machine and point --data-root or $POSBENCH_DATA at it.
"""


def register(sub):
    p = sub.add_parser("data", help="list, download or check the data tasks read",
                       description="The outside data posbench's tasks read (benchmarks, essay haystack, tokenizer), "
                       "with its official source and licence. Tasks whose data is missing are skipped, never "
                       "scored 0.", epilog=EPILOG, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["list", "download", "check"])
    p.add_argument("names", nargs="*", metavar="NAME", help="data sets (default for list/check: all; "
                   "download needs NAME... or all)")
    p.add_argument("--data-root", metavar="DIR", help=ROOT_HELP)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a download fails")
    p.set_defaults(func=run)


def _size(n: int) -> str:
    return "?" if not n else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


def run(args):
    from pathlib import Path

    from posbench.harness.evaluation import data

    root = Path(args.data_root) if args.data_root else data.default_data_root()
    if args.action == "download" and not args.names:
        raise data.DataError("data download needs NAME... or all (see `python eval.py data list`)")
    chosen = data.entries(args.names)
    if args.action == "list":
        print(f"data root: {root}")
        for e in chosen:
            states = data.entry_status(root, e).values()
            have = sum(s != "missing" for s in states)
            state = "present" if have == len(e.files) else "missing" if not have else f"partial {have}/{len(e.files)}"
            pinned = "" if e.pinned else ", checksum recorded at first download"
            print(f"{e.name:10s} {state:12s} {len(e.files):3d} files {_size(e.size):>8s}  {e.used_by}\n"
                  f"{'':10s} source: {e.source}; licence: {e.licence}{pinned}")
        return 0
    if args.action == "download":
        for e in chosen:
            data.download(e, root, timeout=args.timeout)
        return 0
    bad = 0
    print(f"data root: {root}")
    for e in chosen:
        states = data.entry_status(root, e, verify=True)
        problems = {p: s for p, s in states.items() if s.startswith("corrupt")}
        missing = sum(s == "missing" for s in states.values())
        unverified = sum(s == "unverified" for s in states.values())
        verdict = ("corrupt" if problems else "missing" if missing == len(states)
                   else f"ok, {missing} missing" if missing else "ok")
        print(f"{e.name:10s} {verdict}" + (f" ({unverified} without a checksum)" if unverified else ""))
        for path, state in problems.items():
            print(f"  {path}: {state} (run `python eval.py data download {e.name}` to replace it)")
        bad += len(problems)
    return 1 if bad else 0
