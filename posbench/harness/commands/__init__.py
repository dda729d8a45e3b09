"""One module per `eval.py` subcommand. Each exposes `register(subparsers)`; heavy imports stay inside `run`."""
