"""`eval.py report`: paper-style tables and plots from one or more run directories (result files only)."""
from posbench.harness.reporting import FORMATS


def register(sub):
    p = sub.add_parser("report", help="write report.md (tables), csv/tex tables, a self-contained report.html and "
                       "plots from run directories",
                       description="Merge one or more run directories into one report: a headline (best model per "
                       "length and its paired 95% interval against the baseline), a table per context length "
                       "(models as rows, task groups as columns, deltas against a baseline, best in bold), per-task "
                       "scores with 95% intervals (method named) and n, skipped samples with reasons, and PNG plots "
                       "(score vs length per group, one needle heatmap figure). Reads manifest.json, summary.csv, "
                       "samples/ and analysis/ only; the same numbers as DataFrames: posbench.results.load.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to merge (must not overlap)")
    p.add_argument("--baseline", metavar="LABEL",
                   help="model the deltas are against (default: the first rope model, else the first model)")
    p.add_argument("--format", default="md", metavar="md,csv,tex,html",
                   help=f"comma-separated output formats out of {','.join(FORMATS)} (default: md)")
    p.add_argument("--out", metavar="DIR", help="where to write (default: the first RUN_DIR)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from posbench.harness.files import OutputError
    from posbench.harness.reporting.report import write_report
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise OutputError(f"--out {args.out}: is a file; the report needs a folder")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    written = write_report(args.run_dirs, out=args.out, baseline=args.baseline, formats=formats,
                           plots=not args.no_plots)
    for path in written:
        print(path)
    md = [p for p in written if p.name == "report.md"]
    print(f"report: {md[0] if md else written[-1].parent}")
    return 0
