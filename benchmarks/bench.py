"""Benchmark: a decode step against its arithmetic limit, then the RL step (train.py itself) on a fixed workload.

    python benchmarks/bench.py                       # decode step, samplers, RL step, then the n_rollouts and maze-size tables
    python benchmarks/bench.py --quick               # decode step, samplers and the RL step only
    python benchmarks/bench.py --quick --samplers=fast
    python benchmarks/bench.py --decode-only         # the decode step and the samplers only (seconds)
    python benchmarks/bench.py --quick --threads=1   # on a busy machine: 2 threads on loaded cores time the scheduler
    python benchmarks/bench.py --device=cuda --shapes=tiny,0.5b,7b --decode-only   # random models of Qwen2.5's shapes, bf16
    python benchmarks/bench.py --estimators-only     # only the advantage estimators (ms per call, 128 x 32 rewards)

1. The decode step (`decode_step_times`): one step of the fast sampler's decoder (fast_sampler.DirectDecoder) for
   128 rows (8 prompts x 16 rollouts, 7x7 maze prompts of 57 tokens), against the same step through HF's
   forward with a DynamicCache (fast_sampler.HFDecoder, what the loop ran before) and against the arithmetic limit:
   the plain matmuls of the step at the same shapes, timed alone in the same process (every linear layer and
   lm_head on (128, hidden), and the attention products q.K and w.V of each row over its P + t columns), and
   the linear layers alone. Median of `repeats` runs of 16 steps each (t = 0..15), all rows generating.
2. The samplers end to end (`sampler_times`): rollout.generate_rollouts on the same 8 prompts x 16 rollouts,
   at most 32 new tokens, with the fast loop (DirectDecoder; rows leave the batch when they end), the fast
   loop through HF's forward, HF generate, and HF generate with a static cache (which transformers compiles on
   a GPU: the first call, compile included, is printed apart); the best of 2 calls after a first one; the
   same seed, so the same tokens (checked, printed).
3. The RL step: train.py on the default workload (our issue #5, benchmarks/trl_grpo.py is TRL's side):
   8 prompts x 16 rollouts, at most 32 new tokens, the shipped warm-started tiny model (assets/tiny-maze), 2
   threads, fp32, one update per step (mini_batch = prompt_batch), clip-higher DAPO loss, no KL, no
   evaluation. The first `warmup` steps are dropped; the rest are averaged from train.py's own metrics.jsonl
   (generation / reward / advantage / update seconds, generated and trained tokens, peak memory), once per
   sampler of --samplers (both draw the same tokens, so only the times differ). TRL's s/step on the same
   workload is measured when trl is importable (benchmarks/trl_grpo.py), else the ratio is taken against
   --trl_seconds (default: 2.9 s/step, TRL 1.16 measured in issue 21 on a 2-core x86 machine; not this one).
The last line printed is one JSON object with every figure. Nothing on CPU is compiled (no torch.compile);
on a GPU, generate_static's first call includes transformers' compile of the decode step.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script: the method's files live in the repository root
SHIPPED = os.path.join(ROOT, "assets", "tiny-maze")  # tiny.SHIPPED, without importing torch here
DEFAULT = dict(prompt_batch=8, mini_batch=8, n_rollouts=16, k=4, max_new_tokens=32, threads=2,
               train_sizes=(7,), n_train=500, test_sizes=(5,), n_test=1, sampler="fast")
# random-weight models of real shapes for the decode step (--shapes): Qwen2.5-0.5B and Qwen2.5-7B
SHAPES = {"0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151_936, tie_word_embeddings=True),
          "7b": dict(hidden_size=3584, intermediate_size=18_944, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, vocab_size=152_064, tie_word_embeddings=False)}
TRL_SECONDS = 2.9  # TRL 1.16 GRPOTrainer on this workload, issue 21 (2-core x86, 2.78-3.00 s/step)


def workload_args(model_dir, out_dir, n_steps, device="cpu", **overrides):
    """train.py's command-line arguments for n_steps steps of the workload (no evaluation, no checkpoint)."""
    settings = {**DEFAULT, **overrides}
    args = [f"--model={model_dir}", f"--out_dir={out_dir}", "--prompt_template=compact", f"--max_steps={n_steps}",
            "--eval_every=0", "--checkpoint_every=1000000", "--show_progress=False", f"--device={device}"]
    return args + [f"--{key}={value!r}" if isinstance(value, tuple) else f"--{key}={value}"
                   for key, value in settings.items()]


def run_workload(model_dir, steps, warmup, device="cpu", **overrides):
    """Run train.py for warmup + steps steps on the workload; return the mean figures of the timed steps."""
    settings = {**DEFAULT, **overrides}
    with tempfile.TemporaryDirectory() as out_dir:
        args = [sys.executable, "train.py", *workload_args(model_dir, out_dir, warmup + steps, device, **overrides)]
        subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,  # train.py's banner; errors go to stderr
                       env={**os.environ, "OMP_NUM_THREADS": str(settings["threads"])})
        records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    timed = [r for r in records if "step_time" in r][warmup:]
    mean = lambda key: sum(r.get(key, 0.0) for r in timed) / len(timed)  # train.py may log a time in another
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


def run_trl(model_dir, steps, warmup, threads):
    """TRL's GRPOTrainer on the same workload (benchmarks/trl_grpo.py): its JSON figures, or None without trl."""
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        return None
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "trl_grpo.py"), "--steps", str(steps),
                             "--warmup", str(warmup), "--model", model_dir, "--threads", str(threads)],
                            cwd=ROOT, check=True, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_advantages(n_prompts=128, n_rollouts=32, k=8, repeats=50):
    """Milliseconds per call of every registered estimator on (n_prompts, n_rollouts) binary rewards."""
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


def load_model(shape, device, model_dir):
    """(model, tokenizer or None): the tiny model from model_dir, or a random Qwen2 of SHAPES[shape] (bf16 on cuda)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from infra.tiny import load_tiny

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if shape == "tiny":
        model, tokenizer = load_tiny(model_dir)
        return model.to(device=device, dtype=dtype), tokenizer
    config = Qwen2Config(**SHAPES[shape], max_position_embeddings=4096, rope_parameters={"rope_type": "default",
                                                                                         "rope_theta": 1e6})
    with torch.device(device):
        model = Qwen2ForCausalLM._from_config(config, dtype=dtype)
    return model.eval(), None


def bench_prompts(model, tokenizer, n_prompts=8, prompt_length=57):
    """(prompt_ids, prompt_mask) (U, P) on the model's device: 7x7 maze prompts for the tiny model, random ids else."""
    import torch

    from mazes import format_prompt, make_mazes

    device = next(model.parameters()).device
    if tokenizer is None:
        ids = torch.randint(0, model.config.vocab_size, (n_prompts, prompt_length), generator=torch.Generator().manual_seed(0))
        return ids.to(device), torch.ones_like(ids).to(device)
    mazes = make_mazes((7,), {7: n_prompts}, (5,), 1, seed=0)["train"]["maze"]
    encoded = tokenizer([format_prompt(maze, "compact") for maze in mazes], padding=True, padding_side="left",
                        add_special_tokens=False, return_tensors="pt")
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


def timer(device):
    """A clock that waits for the device's queued work first."""
    import torch

    def now():
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()
    return now


def decode_step_times(model, prompt_ids, prompt_mask, n_rollouts=16, steps=16, repeats=5):
    """Milliseconds per decode step (median of `repeats` runs of `steps` steps, all U * n_rollouts rows
    generating): DirectDecoder, HFDecoder (HF forward + DynamicCache), and the arithmetic limit at the same
    shapes: `matmul` (every linear layer and lm_head, and each row's attention products over its P + t
    columns) and `linear` (the linear layers and lm_head only)."""
    import torch

    from infra.fast_sampler import DirectDecoder, HFDecoder
    from infra.prefill import prefill
    from rollout import attention_positions

    device = prompt_ids.device
    now, rows = timer(device.type), len(prompt_ids) * n_rollouts
    positions = prompt_mask.sum(-1).repeat_interleave(n_rollouts)  # (rows,)
    tokens = torch.full((rows,), 3, device=device)
    result = {}
    with torch.no_grad():
        for name, decoder_class in (("direct", DirectDecoder), ("hf_forward", HFDecoder)):
            times = []
            for _ in range(repeats + 1):  # the first run warms up
                cache, _ = prefill(model, prompt_ids, prompt_mask, attention_positions(prompt_mask))
                decoder = decoder_class(model, cache, prompt_mask, n_rollouts, steps)
                start = now()
                for step in range(steps):
                    decoder(tokens, positions + step)
                times.append((now() - start) / steps)
            result[name] = 1000 * statistics.median(times[1:])

        config, dtype = model.config, next(model.parameters()).dtype
        hidden, head_dim = config.hidden_size, config.hidden_size // config.num_attention_heads
        heads, kv = config.num_attention_heads, config.num_key_value_heads
        weight_shapes = [(heads * head_dim, hidden), (kv * head_dim, hidden), (kv * head_dim, hidden),
                         (hidden, heads * head_dim), (config.intermediate_size, hidden),
                         (config.intermediate_size, hidden), (hidden, config.intermediate_size)]
        weights = [torch.randn(shape, device=device, dtype=dtype) for shape in weight_shapes]
        lm_head = torch.randn(config.vocab_size, hidden, device=device, dtype=dtype)
        inputs = {shape[1]: torch.randn(rows, shape[1], device=device, dtype=dtype) for shape in weight_shapes}
        columns = prompt_ids.shape[1] + steps
        keys = torch.randn(rows * heads, columns, head_dim, device=device, dtype=dtype)
        query = torch.randn(rows * heads, 1, head_dim, device=device, dtype=dtype)
        for name, attention in (("matmul", True), ("linear", False)):
            times = []
            for _ in range(repeats + 1):
                start = now()
                for step in range(steps):
                    width = prompt_ids.shape[1] + step + 1
                    for _layer in range(config.num_hidden_layers):
                        for weight in weights:
                            inputs[weight.shape[1]] @ weight.T
                        if attention:
                            scores = torch.bmm(query, keys[:, :width].transpose(1, 2))  # (rows * heads, 1, width)
                            torch.bmm(scores, keys[:, :width])
                    inputs[hidden] @ lm_head.T
                times.append((now() - start) / steps)
            result[name] = 1000 * statistics.median(times[1:])
    return {key: round(value, 3) for key, value in result.items()}


def sampler_times(model, tokenizer, n_rollouts=16, max_new_tokens=32, seed=0):
    """Seconds of generate_rollouts on the benchmark prompts with each way of sampling, and whether they drew
    the same tokens (the same seed)."""
    from functools import partial

    import torch

    import rollout
    from infra.prefill import repeated_prompts
    from mazes import format_prompt, make_mazes

    now = timer(next(model.parameters()).device.type)
    prompts = [format_prompt(maze, "compact") for maze in make_mazes((7,), {7: 8}, (5,), 1, seed=0)["train"]["maze"]]
    result, drawn = {}, {}

    def generate_static(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, *args):  # the seam's signature
        inputs = repeated_prompts(model, prompt_ids, prompt_mask, n_rollouts, static_cache_tokens=max_new_tokens)
        return rollout.generate_from(model, inputs, max_new_tokens, *args)

    # the two variants join the sampler seam for the measurement: generate_rollouts runs them as it runs the others
    variants = {"fast_hf_forward": lambda: partial(rollout.SAMPLERS["fast"](), direct=False),
                "generate_static": lambda: generate_static}
    rollout.SAMPLERS.update(variants)
    try:
        for name in ("fast", "fast_hf_forward", "generate", "generate_static"):
            times = []
            for repeat in range(3):  # the first call warms up (and compiles, where generate compiles: counted apart)
                torch.manual_seed(seed)
                start = now()
                out = rollout.generate_rollouts(model, tokenizer, prompts, n_rollouts, max_new_tokens, sampler=name)
                times.append(now() - start)
            seconds = min(times[1:])
            drawn[name] = out.response_ids
            result[name] = dict(seconds=round(seconds, 4), first_call_seconds=round(times[0], 4),
                                steps=out.response_ids.shape[1], tokens=int(out.response_lengths.sum()),
                                ms_per_step=round(1000 * seconds / out.response_ids.shape[1], 2))
    finally:
        for variant in variants:
            rollout.SAMPLERS.pop(variant)
    result["same_tokens"] = all(torch.equal(drawn["fast"], ids) for ids in drawn.values())
    return result


def peak_memory_mb(device):
    import torch

    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kB


def machine():
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)


def bench_decode(shape, device, model_dir, results):
    """The decode step against its matmuls, and the samplers end to end, of one model shape: into results, printed."""
    model, tokenizer = load_model(shape, device, model_dir)
    prompt_ids, prompt_mask = bench_prompts(model, tokenizer)
    r = results[f"decode_step_{shape}"] = decode_step_times(model, prompt_ids, prompt_mask)
    r["ratio_to_matmul"] = round(r["direct"] / r["matmul"], 2)
    r["ratio_to_linear"] = round(r["direct"] / r["linear"], 2)
    print(f"decode step, {shape} model, {16 * len(prompt_ids)} rows, {prompt_ids.shape[1]}-token prompts (ms): "
          f"fast loop {r['direct']:.2f}, HF forward {r['hf_forward']:.2f}; arithmetic limit: matmuls "
          f"{r['matmul']:.2f} (linear layers {r['linear']:.2f}); fast / matmuls = {r['ratio_to_matmul']:.2f}x "
          f"(target <= 3x), fast / linear layers = {r['ratio_to_linear']:.2f}x", flush=True)
    if tokenizer is not None:
        s = results[f"samplers_{shape}"] = sampler_times(model, tokenizer)
        print("samplers, 8 prompts x 16 rollouts, <= 32 new tokens (s): " + ", ".join(
            f"{name} {s[name]['seconds']:.3f} ({s[name]['ms_per_step']:.1f} ms/step)"
            for name in ("fast", "fast_hf_forward", "generate", "generate_static"))
            + f"; same tokens: {s['same_tokens']}; first call of generate_static (compiles on a GPU): "
            f"{s['generate_static']['first_call_seconds']:.3f}", flush=True)
    del model


def bench_rl_steps(args, model_dir, results):
    """The advantage estimators, the RL step per sampler against TRL, and (unless --quick) other workloads."""
    print(f"advantage estimators on 128 prompts x 32 rollouts, k=8 (ms per call): {time_advantages()}", flush=True)
    print(f"{'RL step, sampler':<28}{'s/step':>8}{'gen tok/s':>11}{'gen s':>8}{'update s':>10}{'resp len':>10}"
          f"{'peak MB':>9}")
    for sampler in args.samplers.split(","):
        r = results[f"rl_step_{sampler}"] = run_workload(model_dir, args.steps, args.warmup, args.device,
                                                         threads=args.threads, sampler=sampler)
        print(f"{sampler:<28}{r['seconds_per_step']:>8.3f}{r['generated_tokens_per_s']:>11.0f}"
              f"{r['generation_s']:>8.3f}{r['update_s']:>10.3f}{r['response_length']:>10.1f}"
              f"{r['peak_memory_mb']:>9.0f}", flush=True)
    if "fast" in args.samplers.split(","):
        trl = run_trl(model_dir, args.steps, args.warmup, args.threads) if args.device == "cpu" else None
        trl_seconds = trl["seconds_per_step"] if trl else args.trl_seconds
        ours = results["rl_step_fast"]["seconds_per_step"]
        results["trl"] = dict(measured_here=trl is not None, seconds_per_step=trl_seconds, figures=trl,
                              ratio=round(ours / trl_seconds, 3))
        where = "measured here" if trl else "issue 21's figure from another 2-core machine (trl is not installed here)"
        print(f"RL step vs TRL GRPOTrainer: {ours:.3f} / {trl_seconds:.3f} s/step = {ours / trl_seconds:.3f}x "
              f"(target <= 0.15x; TRL: {where})", flush=True)
    if not args.quick:
        print(f"{'workload (fast sampler)':<28}{'s/step':>8}{'gen tok/s':>11}{'gen s':>8}{'update s':>10}"
              f"{'resp len':>10}")
        for name, overrides in [*[(f"n_rollouts={n}", dict(n_rollouts=n)) for n in (8, 16, 32)],
                                *[(f"maze {s}x{s}", dict(train_sizes=(s,))) for s in (5, 7, 9, 11)]]:
            if name.startswith("maze 5x5"):
                overrides["n_train"] = 150  # 5x5 has ~220 distinct mazes
            r = results[f"workload {name}"] = run_workload(model_dir, args.steps, args.warmup, args.device,
                                                           threads=args.threads, **overrides)
            print(f"{name:<28}{r['seconds_per_step']:>8.3f}{r['generated_tokens_per_s']:>11.0f}"
                  f"{r['generation_s']:>8.3f}{r['update_s']:>10.3f}{r['response_length']:>10.1f}", flush=True)


def main(argv=None):
    from infra.cli import add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="decode step, samplers and the default workload only")
    parser.add_argument("--decode-only", action="store_true", help="the decode step and the samplers only")
    parser.add_argument("--estimators-only", action="store_true", help="time the advantage estimators only")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cpu or cuda (cuda runs bf16)")
    parser.add_argument("--model", default="", help="HF folder of the tiny model; default: assets/tiny-maze")
    parser.add_argument("--shapes", default="tiny", help=f"decode-step models: tiny and/or {', '.join(SHAPES)} "
                                                          "(random weights of Qwen2.5's shapes)")
    parser.add_argument("--samplers", default="fast,generate", help="train.py samplers to time on the default workload")
    parser.add_argument("--threads", type=int, default=DEFAULT["threads"],
                        help="torch CPU threads (the workload's 2; 1 compares fairly on a busy machine)")
    parser.add_argument("--trl_seconds", type=float, default=TRL_SECONDS,
                        help="TRL's s/step to compare with when trl is not installed here")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    for name, least in (("steps", 1), ("warmup", 0), ("threads", 1)):
        if getattr(args, name) < least:
            usage_error(f"--{name}={getattr(args, name)} must be >= {least}")
    if args.model and not os.path.isfile(os.path.join(args.model, "config.json")):
        usage_error(f"--model={args.model!r} is not a Hugging Face model folder (no config.json there)")
    shapes = args.shapes.split(",")
    if not set(shapes) <= {"tiny", *SHAPES}:
        usage_error(f"--shapes={args.shapes}: a comma-separated list of tiny, {', '.join(SHAPES)}")
    if not set(args.samplers.split(",")) <= {"fast", "generate"}:
        usage_error(f"--samplers={args.samplers}: a comma-separated list of fast and generate")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        usage_error("--device=cuda but torch sees no CUDA device")
    if args.estimators_only:
        print(json.dumps(time_advantages()))
        return
    model_dir = args.model or SHIPPED
    torch.set_num_threads(args.threads)
    results = {"machine": machine()}
    print(f"machine: {results['machine']}", flush=True)

    for shape in shapes:
        bench_decode(shape, args.device, model_dir, results)
    results["peak_memory_mb_decode"] = peak_memory_mb(args.device)
    print(f"peak memory of the decode benchmarks: {results['peak_memory_mb_decode']} MB", flush=True)
    if args.decode_only:
        print(json.dumps(results))
        return

    bench_rl_steps(args, model_dir, results)
    results["workload"] = {**{key: value for key, value in DEFAULT.items() if key != "sampler"},
                           "threads": args.threads, "device": args.device}
    print(json.dumps(results))


if __name__ == "__main__":
    from infra.cli import run

    run(main)  # a failed train.py run has printed its reason; cli.run adds one line and exits 1
