"""Every real-shape benchmark of this project on a GPU, in one call, writing the rows for BENCHMARKS.md.

    python benchmarks/cuda_all.py                      # on a machine with a CUDA GPU (an H100: about 8 minutes)
    python benchmarks/cuda_all.py --dry_run            # the commands it would run, anywhere

(from the repository root). It runs, each with --device=cuda and its own share of --budget seconds (a step past
its share is stopped and reported as such; the next one runs):
  1. head_memory.py: the output layer's log-probs at the 0.5B width, before and after the chunks;
  2. head_memory.py --mode=update: one update of 8 rows x 1,024 tokens at the 0.5B shape;
  3. real_shapes.py at tiny, 0.5b, 1.5b, 7b: each phase's time and peak, beside the memory model's prediction
     (the configs' precisions: bf16-mixed, bfloat16 at 7B);
  4. prefill.py: generate with each prompt's prefill repeated per rollout and run once;
  5. alternate_shape.py at 0.5b: our RL step and TRL's GRPOTrainer in turn (when trl is importable);
  6. vllm_sampler.py at 0.5b: our RL step with --sampler=vllm and --sampler=generate in turn (when vllm is
     importable: pip install vllm==0.33.0, docs/real_models.md).
Each step's output goes to --out/<name>.log; the markdown rows and every step's last JSON line to --out/rows.md
(paste them into BENCHMARKS.md with the GPU's name and the date). Random-weight models are written to
--out/models, on the GPU (benchmarks/shapes.py --device=cuda), once.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (name, command after `python`, share of the budget)
STEPS = [
    ("head", ["benchmarks/head_memory.py", "--device=cuda", "--max_gb=30", "--repeats=3"], 0.05),
    ("update", ["benchmarks/head_memory.py", "--mode=update", "--device=cuda"], 0.05),
    ("real_shapes", ["benchmarks/real_shapes.py", "--device=cuda", "--shapes=tiny,0.5b,1.5b,7b", "--lock="], 0.5),
    ("prefill", ["benchmarks/prefill.py", "--device=cuda", "--sizes=9,15", "--new_tokens=64", "--repeats=2"], 0.1),
    ("trl", ["benchmarks/alternate_shape.py", "--device=cuda", "--shape=0.5b", "--micro_batch=8", "--rounds=1",
             "--lock="], 0.2),
    ("vllm", ["benchmarks/vllm_sampler.py", "--device=cuda", "--shape=0.5b", "--rounds=1", "--lock="], 0.1),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/cuda_all")
    parser.add_argument("--budget", type=float, default=560.0, help="seconds for all steps together")
    parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    models = os.path.join(args.out, "models")
    commands = []
    for name, command, share in STEPS:
        if name == "real_shapes":
            command = command + [f"--work={models}"]
        if name in ("trl", "vllm"):
            command = command + [f"--out={models}"]
        commands.append((name, [sys.executable, *command], share * args.budget))
    if args.dry_run:
        for name, command, seconds in commands:
            print(f"{name} ({seconds:.0f} s): {' '.join(command[1:])}")
        return commands
    import torch

    if not torch.cuda.is_available():
        parser.error("no CUDA device: run it on a GPU machine (--dry_run prints the commands)")
    os.makedirs(models, exist_ok=True)
    rows = [f"## {torch.cuda.get_device_name()}, {time.strftime('%Y-%m-%d')}", ""]
    for name, command, seconds in commands:
        if name in ("trl", "vllm") and importlib.util.find_spec(name) is None:
            rows += [f"### {name}: skipped, {name} is not importable", ""]
            continue
        log_path = os.path.join(args.out, f"{name}.log")
        start = time.perf_counter()
        with open(log_path, "w") as log:
            try:
                code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=seconds).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        lines = open(log_path, errors="replace").read().strip().splitlines()
        table = [line for line in lines if line.startswith("|")]
        last = lines[-1] if lines else ""
        rows += [f"### {name}: exit {code}, {time.perf_counter() - start:.0f} s (`python {' '.join(command[1:])}`)", "",
                 *table, "", f"    {last if last.startswith('{') else json.dumps({'last_line': last})}", ""]
        print(f"{name}: exit {code}", flush=True)
    with open(os.path.join(args.out, "rows.md"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print("\n".join(rows))
    return rows


if __name__ == "__main__":
    main()
