"""`eval.py analyze`: learned positions, ablations and attention of a model on task samples (see analyze.py)."""
