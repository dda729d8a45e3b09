"""Reports from result files (README.md). Only this constant lives here: `eval.py --help` reads it without importing
pandas, matplotlib or torch."""
FORMATS = ("md", "csv", "tex", "html")
