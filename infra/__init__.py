"""Shared plumbing of the method's files, not a concept of the method: command-line config and errors (cli.py),
checkpoints (checkpoint.py), the bf16 optimizer (optim.py), the fast decode step (decoders.py), the chunked output
layer (chunked_head.py) and the update's fast scoring (fast_scoring.py), and the tiny offline model (tiny.py)."""
