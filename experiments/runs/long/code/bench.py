"""Benchmark of the RL step: runs train.py itself on a fixed workload and prints where the time goes.

    python bench.py                       # default workload, then the n_rollouts and maze-size tables
    python bench.py --quick               # default workload only (with each sampler)
    python bench.py --quick --samplers=fast
    python bench.py --steps=10 --warmup=2
    python bench.py --quick --threads=1   # on a busy machine: 2 threads on loaded cores time the scheduler
    python bench.py --estimators-only     # only the advantage estimators (ms per call, 128 x 32 rewards)

Default workload (our issue #5): 8 prompts x 16 rollouts, at most 32 new tokens, the warm-started tiny
model, 2 threads, fp32, one update per step (mini_batch = prompt_batch), clip-higher DAPO loss, no KL,
no evaluation, the fast sampler (the tiny model's). The first `warmup` steps are dropped; the rest are
averaged from train.py's own metrics.jsonl (generation / reward / advantage / update seconds, generated
and trained tokens, peak memory). The default workload then runs with each sampler of --samplers (fast:
our KV-cached loop, generate: HF generate; rollout.py), one line each; both draw the same tokens, so
only the times differ. The last line printed is one JSON object: the default workload's figures per
sampler, {"fast": {...}, "generate": {...}, "workload": {...}}.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT = dict(prompt_batch=8, mini_batch=8, n_rollouts=16, k=4, max_new_tokens=32, threads=2,
               train_sizes=(7,), n_train=500, test_sizes=(5,), n_test=1, sampler="fast")


def run_workload(model_dir, steps, warmup, device="cpu", **overrides):
    """Run train.py for warmup + steps steps on the workload; return the mean figures of the timed steps."""
    settings = {**DEFAULT, **overrides}
    with tempfile.TemporaryDirectory() as out_dir:
        args = [sys.executable, "train.py", f"--model={model_dir}", f"--out_dir={out_dir}", "--prompt_template=compact",
                f"--max_steps={warmup + steps}", "--eval_every=0", "--checkpoint_every=1000000",
                "--show_progress=False", f"--device={device}"]
        args += [f"--{key}={value!r}" if isinstance(value, tuple) else f"--{key}={value}" for key, value in settings.items()]
        subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,  # train.py's banner; errors go to stderr
                       env={**os.environ, "OMP_NUM_THREADS": str(settings["threads"])})
        records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    timed = [r for r in records if "step_time" in r][warmup:]
    mean = lambda key: sum(r[key] for r in timed) / len(timed)
    step_time = mean("step_time")
    return {
        "seconds_per_step": round(step_time, 4),
        "generated_tokens_per_s": round(mean("generated_tokens") / step_time, 1),
        "trained_tokens_per_s": round(mean("trained_tokens") / step_time, 1),
        "generation_s": round(mean("generation_time"), 4),
        "reward_s": round(mean("reward_time"), 4),
        "advantage_s": round(mean("advantage_time"), 4),
        "update_s": round(mean("update_time"), 4),
        "peak_memory_mb": round(max(r["peak_memory_mb"] for r in timed), 1),
        "response_length": round(mean("response_length"), 1),
        "reward": round(mean("reward"), 3),
        "steps_timed": len(timed),
    }


def time_advantages(n_prompts=128, n_rollouts=32, k=8, repeats=50):
    """Milliseconds per call of every registered estimator on (n_prompts, n_rollouts) binary rewards."""
    import time

    import torch

    from advantage import ADVANTAGES, compute_advantages
    rewards = (torch.rand(n_prompts, n_rollouts, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    context = dict(k=k, entropies=torch.rand(n_prompts), generator=torch.Generator().manual_seed(0),
                   sequence_logprobs=-10 * torch.rand(n_prompts, n_rollouts))  # unlikeliness ranks by these
    timings = {}
    for name in ADVANTAGES:
        compute_advantages(name, rewards, **context)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            compute_advantages(name, rewards, **context)
        timings[name] = round(1000 * (time.perf_counter() - start) / repeats, 3)
    return timings


def main(argv=None):
    from cli import add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the default workload only")
    parser.add_argument("--estimators-only", action="store_true", help="time the advantage estimators only")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cpu or cuda (cuda runs bf16)")
    parser.add_argument("--model", default="", help="HF folder; default: out/tiny-warmstart (the tiny model)")
    parser.add_argument("--samplers", default="fast,generate", help="train.py samplers to time on the default workload")
    parser.add_argument("--threads", type=int, default=DEFAULT["threads"],
                        help="torch CPU threads (the workload's 2; 1 compares fairly on a busy machine)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    for name, least in (("steps", 1), ("warmup", 0), ("threads", 1)):
        if getattr(args, name) < least:
            usage_error(f"--{name}={getattr(args, name)} must be >= {least}")
    if args.model and not os.path.isfile(os.path.join(args.model, "config.json")):
        usage_error(f"--model={args.model!r} is not a Hugging Face model folder (no config.json there)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            usage_error("--device=cuda but torch sees no CUDA device")
    if not set(args.samplers.split(",")) <= {"fast", "generate"}:
        usage_error(f"--samplers={args.samplers}: a comma-separated list of fast and generate")
    if args.estimators_only:
        print(json.dumps(time_advantages()))
        return
    model_dir = args.model or os.path.join(ROOT, "out", "tiny-warmstart")
    if not os.path.isdir(model_dir):  # no warm-started tiny model yet (python train.py makes one): make one
        from tiny import load_or_train_tiny
        model_dir = load_or_train_tiny(os.path.join(ROOT, "out"))

    print(f"advantage estimators on 128 prompts x 32 rollouts, k=8 (ms per call): {time_advantages()}", flush=True)
    if not args.quick:
        print(f"{'workload (fast sampler)':<28}{'s/step':>8}{'gen tok/s':>11}{'gen s':>8}{'update s':>10}"
              f"{'resp len':>10}")
        for name, overrides in [*[(f"n_rollouts={n}", dict(n_rollouts=n)) for n in (8, 16, 32)],
                                *[(f"maze {s}x{s}", dict(train_sizes=(s,))) for s in (5, 7, 9, 11)]]:
            if name.startswith("maze 5x5"):
                overrides["n_train"] = 150  # 5x5 has ~220 distinct mazes
            r = run_workload(model_dir, args.steps, args.warmup, args.device, threads=args.threads, **overrides)
            print(f"{name:<28}{r['seconds_per_step']:>8.3f}{r['generated_tokens_per_s']:>11.0f}"
                  f"{r['generation_s']:>8.3f}{r['update_s']:>10.3f}{r['response_length']:>10.1f}", flush=True)
    results = {}
    print(f"{'sampler':<28}{'s/step':>8}{'gen tok/s':>11}{'gen s':>8}{'update s':>10}{'resp len':>10}")
    for sampler in args.samplers.split(","):
        r = results[sampler] = run_workload(model_dir, args.steps, args.warmup, args.device, threads=args.threads,
                                            sampler=sampler)
        print(f"{sampler:<28}{r['seconds_per_step']:>8.3f}{r['generated_tokens_per_s']:>11.0f}"
              f"{r['generation_s']:>8.3f}{r['update_s']:>10.3f}{r['response_length']:>10.1f}", flush=True)
    results["workload"] = {**{key: value for key, value in DEFAULT.items() if key != "sampler"},
                           "threads": args.threads, "device": args.device}
    print(json.dumps(results))


if __name__ == "__main__":
    from cli import run

    run(main)  # a failed train.py run has printed its reason; cli.run adds one line and exits 1
