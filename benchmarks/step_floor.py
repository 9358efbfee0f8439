"""How much of an RL step is arithmetic? train.py's step on bench.py's workload, timed, then profiled.

    python benchmarks/step_floor.py                       # ~1 min: train.py twice, 2 warm-up + 8 timed steps each
    PYTHONPATH=.trl python benchmarks/step_floor.py       # ~2 min: also TRL's s/step, and the target

Issue 21 asks for an RL step at most 0.15x TRL's s/step. This measures what that leaves for everything that is
not arithmetic. It runs train.py on bench.py's default workload twice:
  1. unprofiled (`bench.run_workload`): the s/step, generation and update seconds from its metrics.jsonl;
  2. under torch.profiler, in this process: the self time of the kernels that do the step's arithmetic (matrix
     products and fused attention, `ARITHMETIC`) per step. The matrix shapes, the rows that leave the batch,
     the length chunks and the skipped rows are those train.py itself runs, backward included.
The kernel time is a floor for this code on this machine in fp32: the step cannot be faster than its matrix
products while they run as they do. The profiler also counts the products' floating-point operations, and a large
square product measures the machine's peak rate: the products at that peak are the floor of any fp32 code.
The rest of the step (elementwise ops, sampling, autograd, AdamW, Python) is `other`. With trl importable,
TRL's GRPOTrainer runs the same workload (benchmarks/trl_grpo.py) and the target 0.15x is printed against
both. Profiling slows the ops around the kernels, not the kernels, so `other` comes from the unprofiled run.
The last line printed is one JSON object.
"""
import argparse
import json
import os
import runpy
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from benchmarks import bench  # noqa: E402

# the aten kernels whose self time is the step's arithmetic (linear layers, attention products, their backward)
ARITHMETIC = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")
TARGET = 0.15  # issue 21: our s/step at most 0.15x TRL's


def profile_kernels(model_dir, steps, warmup, threads):
    """Run train.py in this process under torch.profiler; return {kernel: self seconds per step}, the floating-point
    operations of the matrix products per step (the profiler counts mm, addmm, bmm; not fused attention) and the
    number of steps run."""
    with tempfile.TemporaryDirectory() as out_dir:
        argv = ["train.py", *bench.workload_args(model_dir, out_dir, warmup + steps, threads=threads)]
        saved_argv, saved_cwd = sys.argv, os.getcwd()
        try:
            sys.argv = argv
            os.chdir(ROOT)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True) as profiler:
                runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
        finally:
            sys.argv = saved_argv
            os.chdir(saved_cwd)
        records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    n_steps = sum("step_time" in record for record in records)
    if n_steps == 0:
        raise SystemExit("train.py logged no steps under the profiler")
    seconds, flops = Counter(), 0
    for event in profiler.key_averages():
        seconds[event.key] += event.self_cpu_time_total / 1e6
        flops += event.flops if event.key in ARITHMETIC else 0
    if flops == 0:
        raise SystemExit("the profiler recorded no matrix products: is train.py's model running on the CPU?")
    # train.py's setup (loading the model, building the mazes) runs no matrix products: all are in its steps
    return {key: seconds[key] / n_steps for key in ARITHMETIC if seconds[key] > 0}, flops / n_steps, n_steps


def peak_matmul_flops(size=2048, repeats=10):
    """This machine's fp32 matrix-product rate (FLOP/s) on a large square product at the current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=bench.SHIPPED, help="HF folder of the tiny model (default: shipped)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=bench.DEFAULT["threads"])
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("need --steps >= 1, --warmup >= 0, --threads >= 1")
    timed = bench.run_workload(args.model, args.steps, args.warmup, threads=args.threads)
    torch.set_num_threads(args.threads)
    kernels, flops, n_steps = profile_kernels(args.model, args.steps, args.warmup, args.threads)
    arithmetic, peak = sum(kernels.values()), peak_matmul_flops()
    products = sum(value for key, value in kernels.items() if "attention" not in key)  # the kernels counted in flops
    step = timed["seconds_per_step"]
    figures = {"threads": args.threads, "seconds_per_step": step, "generation_s": timed["generation_s"],
               "update_s": timed["update_s"], "arithmetic_s": round(arithmetic, 4),
               "other_s": round(step - arithmetic, 4), "profiled_steps": n_steps, "product_gflop": round(flops / 1e9, 3),
               "product_gflops": round(flops / products / 1e9, 1), "peak_gflops": round(peak / 1e9, 1),
               "products_at_peak_s": round(flops / peak, 4),
               "kernels_s": {key: round(value, 4) for key, value in kernels.items()}}
    print(f"train.py: {step:.3f} s/step (generation {timed['generation_s']:.3f}, update {timed['update_s']:.3f})")
    print(f"arithmetic kernels: {arithmetic:.3f} s/step ({arithmetic / step:.0%} of the step); "
          f"everything else: {step - arithmetic:.3f} s")
    for key, value in sorted(kernels.items(), key=lambda item: -item[1]):
        print(f"  {key:60s} {value * 1e3:7.1f} ms/step")
    print(f"matrix products: {flops / 1e9:.2f} GFLOP/step at {flops / products / 1e9:.0f} GFLOP/s; this machine's "
          f"peak (2048^2 product) {peak / 1e9:.0f} GFLOP/s, at which they would take {flops / peak * 1e3:.1f} ms")
    trl = bench.run_trl(args.model, args.steps, args.warmup, args.threads)
    if trl is not None:
        target = TARGET * trl["seconds_per_step"]
        figures.update(trl_seconds_per_step=trl["seconds_per_step"], ours_over_trl=round(step / trl["seconds_per_step"], 3),
                       target_s=round(target, 4), target_over_arithmetic=round(target / arithmetic, 2),
                       target_leaves_other_s=round(target - arithmetic, 4),
                       target_over_products_at_peak=round(target * peak / flops, 2))
        print(f"TRL: {trl['seconds_per_step']:.3f} s/step; ours/TRL {step / trl['seconds_per_step']:.2f}; "
              f"target {TARGET}x = {target:.3f} s/step = {target / arithmetic:.2f}x the arithmetic kernels, "
              f"leaving {target - arithmetic:.3f} s for the rest (today {step - arithmetic:.3f} s)")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
