"""The benchmarks: bench.py (the decode step, the samplers, the RL step against TRL) and the scripts beside it."""
