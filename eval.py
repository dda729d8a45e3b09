#!/usr/bin/env python
"""posbench: compare positional-encoding schemes (RoPE, NoPE, hybrid, RePo) on long-context tasks.

Run `python eval.py --help` for the commands and `python eval.py COMMAND --help` for each one.
"""
import sys

from posbench.harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
