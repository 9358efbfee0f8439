"""Shared plumbing of the method's files, not a concept of the method: command-line config and errors (cli.py),
checkpoints (checkpoint.py), the bf16 optimizer (optim.py), the fast sampler (fast_sampler.py), the prompt
prefill (prefill.py) and the tiny offline model (tiny.py)."""
