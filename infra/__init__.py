"""The machinery behind the method's files, not a concept of the method; each piece is called through one function
and tested against the plain computation it replaces. Command-line config and errors (cli.py), checkpoints
(checkpoint.py), the bf16 optimizer (optim.py), the KV-cache keyword across transformers versions (compat.py), our
decode loop (fast_sampler.py), the prompt prefill (prefill.py), the chunked output layer (chunked_head.py), the
update's fast scoring (fast_scoring.py), time and memory per phase and malloc tuning (memory.py) and the tiny offline
model (tiny.py)."""
