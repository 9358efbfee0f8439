"""train.py with --sampler=vllm against --sampler=generate at a real Qwen2.5 shape, in fresh processes taken in turn.

    python benchmarks/vllm_sampler.py --shape=0.5b --prompts=2 --rollouts=8 --max_new_tokens=64 --rounds=2
    python benchmarks/vllm_sampler.py --shape=0.5b --layers=2 --prompts=1 --rollouts=4 --max_new_tokens=8 --rounds=1 --warmup=1 --steps=1

(from the repository root, with the python of a venv that has vLLM: requirements-vllm.txt; the second line is a
smoke run on 2 of the 24 layers). The work is benchmarks/alternate_shape.py's (the same train.py command, its
config, prompts, noise_rewards advantages, one update per step), run --rounds times with each sampler in turn,
each a fresh process; the first --warmup steps of a run are not timed (vLLM's engine is made in the first one).

Per run: s/step, the generation phase (for vllm: vLLM's sampling and the trainer's entropy forward), the update,
the weight sync (vllm), and peak memory: the process's peak RSS, which on the CPU holds vLLM's copy of the
weights and its KV cache (vllm_kv_cache_gib) beside the trainer's state. Each round prints the vllm / generate
ratios (target: generation <= 0.5x); the last line is JSON. TRL's step is benchmarks/alternate_shape.py's.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.alternate_shape import (LOCK, SHAPES, config_path, model_folder, outcome, our_command,  # noqa: E402
                                        read_config, read_ours, run_child, write_model)

SAMPLERS = ("vllm", "generate")


def run_sampler(sampler, args, config, folder, index):
    """One train.py run with `sampler`: its row, as alternate_shape.run_side's, plus the weight sync's seconds."""
    out_dir = os.path.join(args.out, f"{sampler}-round{index}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    log_path = out_dir + ".log"
    command = our_command(argparse.Namespace(**{**vars(args), "sampler": sampler}), config, folder, out_dir)
    command += [f"--vllm_kv_cache_gib={args.kv_cache_gib}"]
    code, peak_rss_mb, wall = run_child(command, log_path, {**os.environ, "OMP_NUM_THREADS": str(args.threads)},
                                        args.lock)
    row = dict(sampler=sampler, round=index, status=outcome(code, log_path), peak_rss_mb=peak_rss_mb, wall_s=wall)
    if row["status"] == "ok":
        row.update(read_ours(out_dir, args.warmup, args.device))
        records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))][args.warmup:]
        for key in ("weight_sync_time", "sampler_mismatch_mean", "sampler_mismatch_max"):
            if key in records[0]:
                row[key] = round(max(r[key] for r in records), 7 if "mismatch" in key else 3)
    shutil.rmtree(out_dir, ignore_errors=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="0.5b", choices=SHAPES)
    parser.add_argument("--layers", type=int, default=0, help="cut the model to this many layers (0: the shape's)")
    parser.add_argument("--config", default="")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--micro_batch", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kv_cache_gib", type=float, default=1.0, help="train.py's vllm_kv_cache_gib (CPU)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", default="/tmp/vllm_sampler")
    parser.add_argument("--lock", default=LOCK)
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be >= 1: the first step makes vLLM's engine")
    args.config = args.config or config_path(args.shape)
    config = read_config(args.config)
    args.micro_batch = args.micro_batch or config["micro_batch"]
    os.makedirs(args.out, exist_ok=True)
    folder = write_model(model_folder(args.out, args.shape, args.layers, args.device), args.shape, args.layers,
                         args.device, args.lock)
    print(f"work: {json.dumps({k: v for k, v in vars(args).items() if k not in ('out', 'lock')})}", flush=True)
    print(f"{'round':<6}{'sampler':<10}{'s/step':>9}{'gen s':>8}{'update s':>10}{'sync s':>8}{'peak MB':>10}"
          f"{'RSS MB':>10}{'resp len':>9}", flush=True)
    runs, ratios = [], []
    for index in range(1, args.rounds + 1):
        rows = {}
        for sampler in SAMPLERS:
            row = rows[sampler] = run_sampler(sampler, args, config, folder, index)
            runs.append(row)
            if row["status"] != "ok":
                print(f"{index:<6}{sampler:<10}did not fit (peak RSS {row['peak_rss_mb']:.0f} MB)", flush=True)
                continue
            print(f"{index:<6}{sampler:<10}{row['seconds_per_step']:>9.2f}{row['generation_s']:>8.2f}"
                  f"{row['update_s']:>10.2f}{row.get('weight_sync_time', 0):>8.2f}{row['peak_memory_mb']:>10.0f}"
                  f"{row['peak_rss_mb']:>10.0f}{row['response_length']:>9.1f}", flush=True)
        if all(row["status"] == "ok" for row in rows.values()):
            ratio = {name: round(rows["vllm"][key] / rows["generate"][key], 3) for name, key in
                     (("generation", "generation_s"), ("step", "seconds_per_step"), ("memory", "peak_rss_mb"))}
            ratios.append(dict(round=index, **ratio))
            print(f"round {index}: vllm / generate: generation {ratio['generation']:.2f}x (target <= 0.5x), step "
                  f"{ratio['step']:.2f}x, peak RSS {ratio['memory']:.2f}x", flush=True)
    print(json.dumps(dict(runs=runs, ratios=ratios)))
    return runs, ratios


if __name__ == "__main__":
    main()
