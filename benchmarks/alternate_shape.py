"""Our RL step (train.py) against TRL's GRPOTrainer at a real Qwen2.5 shape, in fresh processes taken in turn.

    PYTHONPATH=.trl python benchmarks/alternate_shape.py --shape=0.5b --prompts=2 --rollouts=8 --max_new_tokens=64 --micro_batch=8 --rounds=2
    PYTHONPATH=.trl python benchmarks/alternate_shape.py --shape=0.5b --config=CONFIG --prompts=1 --rollouts=8 --max_new_tokens=1024 --micro_batch=8 --rounds=1 --warmup=0 --steps=1
    PYTHONPATH=.trl python benchmarks/alternate_shape.py --shape=0.5b --layers=2 --prompts=1 --rollouts=4 --max_new_tokens=8 --micro_batch=4 --rounds=1 --warmup=0 --steps=1

(from the repository root; the first is the side-by-side at 0.5B, the second the config's response length, where
it says which side fits (CONFIG: the 0.5B config with gradient_checkpointing = True, which 8 rows of 1,024 tokens
need on a 24 GB CPU machine: a file that execs config/maze_qwen2.5_0.5b.py, then sets it), the third a smoke run
on 2 of the 24 layers). trl is not a dependency of this project:
PYTHONPATH names a folder where trl 1.16 is installed. Do not run it under `flock /tmp/bigmem.lock`: it takes that
lock itself around each process that holds a model (the model folder's writer, then every run), so other big jobs
can go between runs (--lock='' to take none).

It writes a random-weight model of the shape once (benchmarks/shapes.py; float32 on CPU, kept in --out for the
next call), then runs, --rounds times, train.py with the shape's config (`config/maze_qwen2.5_<shape>.py`) and
benchmarks/trl_grpo.py --shape on the same work, one after the other, each a fresh process. It prints a row per
run (s/step, generation and update seconds, peak memory) and each round's ratios ours / TRL; the last line is JSON.

The work, the same on both sides: the config's maze prompts (its train split, `paper` template through the chat
template), the --prompts of each step drawn as train.py draws them (`step_prompts`), --rollouts responses each in
ONE generate call (ours: rollout_batch=0), at most --max_new_tokens, temperature 1.0, top_p 1.0, no top-k and no
repetition penalty; one optimizer update per step over all rows in micro-batches of --micro_batch rows (0: the
config's); DAPO's token-level loss with clip-higher (eps 0.2 / 0.28), no KL, no entropy term;
fused AdamW (torch.optim.AdamW(fused=True); TRL: optim=adamw_torch_fused), lr 1e-6, weight decay 0, grad-norm clip
1.0; gradient checkpointing as the config says (off at 0.5B, on at 1.5B and 7B), for both. CPU: float32 weights,
no autocast, --threads torch threads. CUDA (--device=cuda): float32 master weights under bf16 autocast (ours:
the config's bf16-mixed; TRL: bf16=True), peak memory = torch.cuda.max_memory_allocated.

Rewards: a random model's rewards are all 0, so every advantage would be 0 and our update would skip every row
(TRL's would run them with a zero loss). So ours runs --advantage=noise_rewards (advantage.py: each 0 reward
becomes 1 with probability --noise, then pass1's group normalisation) and TRL's reward function returns the same
0/1 rewards: the same flips, drawn by `reward_flips` from the generator train.py gives noise_rewards at that step.
Both then update every row whose group is mixed; at 2 prompts x 8 rollouts, noise 0.5 and seed 0 every group of
the first 10 steps is mixed. The `trained` column is the share of our generated tokens that our update trained
(1.00 = every row).

Differences TRL forces: its advantage divides by the Bessel-corrected std (ours: the population std), it computes
each token's entropy in the training forward (for its logs), and its steps time from the Trainer's on_step_begin
to on_step_end, ours from train.py's step_time (the step's generation, reward, advantage and update; neither
counts checkpoint saving: train.py saves one at its last step, outside step_time). Both load float32 weights; the
first --warmup steps of each run are dropped. Peak memory on CPU is the process's peak RSS (ours: its logged
peak_memory_mb; both: the kernel's count at exit, `peak RSS`), which includes loading the model.

Fitting: each run is a child process that the kernel's OOM killer takes first (oom_score_adj 1000). A child
killed by SIGKILL (the OOM killer's signal), or one that stops on an out-of-memory error, "did not fit": its row
says so, with the peak RSS it reached, and the driver goes on.
"""
import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = ("0.5b", "1.5b", "7b")  # shapes.CONFIGS, without importing transformers here
LOCK = "/tmp/bigmem.lock"
# train.py's defaults of the values the work reads; a config file's assignments replace them
TRAIN_DEFAULTS = dict(task="maze", task_options={}, train_sizes=(5, 7), n_train={5: 150, 7: 10000},
                      test_sizes=(5, 7, 9, 11), n_test=30, split_seed=0, seed=0, prompt_template="", k=4,
                      micro_batch=64, gradient_checkpointing=False, learning_rate=1e-4, lr_warmup_steps=10,
                      weight_decay=0.0, grad_clip=1.0, eps_low=0.2, eps_high=0.28, temperature=1.0, top_p=1.0)
OUT_OF_MEMORY = ("out of memory", "outofmemoryerror", "can't allocate memory", "cannot allocate memory")


def config_path(shape):
    return os.path.join(ROOT, "config", f"maze_qwen2.5_{shape}.py")


def read_config(path):
    """train.py's values after a config file: TRAIN_DEFAULTS, then the file's assignments (run from the repository
    root, as train.py runs it)."""
    sys.path.insert(0, ROOT)  # run as a script from benchmarks/: the repository's modules
    from infra.cli import read_config_file

    return {**TRAIN_DEFAULTS, **read_config_file(path if os.path.isabs(path) else os.path.join(ROOT, path))}


def train_items(config):
    """(task, train split) of the config, as train.py makes them."""
    from tasks import make_task

    task = make_task(config["task"], config["task_options"], train_sizes=config["train_sizes"],
                     n_train=config["n_train"], test_sizes=config["test_sizes"], n_test=config["n_test"],
                     seed=config["split_seed"])
    return task, task.make_splits()["train"]


def step_prompts(seed, n_items, prompt_batch, step):
    """train.py's step_prompts: the positions in the train split of a step's prompts, a function of (seed, step)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(n_items, generator=generator)[:prompt_batch].tolist()


def reward_flips(seed, step, shape, noise):
    """(prompts, rollouts) bool: which rewards advantage.noise_rewards turns to 1 (where they are 0) at a step
    of train.py, drawn from the generator train.py gives compute_advantages at that step."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.rand(shape, generator=generator, dtype=torch.float64) < noise


def model_folder(out, shape, layers, device):
    """The folder name of a random-weight model of `shape` (cut to `layers` layers if > 0) in `out`."""
    return os.path.join(out, f"qwen2.5-{shape}{f'-{layers}layers' if layers else ''}-"
                             f"{'bfloat16' if device == 'cuda' else 'float32'}")


def write_model(folder, shape, layers, device, lock=""):
    """Write the random-weight model folder with benchmarks/shapes.py in a child process (so that no process
    measured here ever held it), unless it is there; returns folder. Both sides load it as float32 (bf16 files on
    cuda only save disk)."""
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "shapes.py"), f"--shape={shape}", f"--out={partial}",
               f"--dtype={'bfloat16' if device == 'cuda' else 'float32'}", f"--layers={layers}", f"--device={device}"]
    with holding(lock):
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    os.rename(partial, folder)
    return folder


@contextlib.contextmanager
def holding(lock):
    """flock(2) on the file `lock` (the lock `flock /tmp/bigmem.lock CMD` takes), or nothing if lock is ''."""
    if not lock:
        yield
        return
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {lock} (another big job holds it)", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kill_me_first():
    """In the child, before exec: be the OOM killer's first choice, so that an oversized run dies, not others."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def run_child(command, log_path, env, lock=""):
    """Run `command` from the repository root, stdout and stderr to log_path, under the lock. Returns
    (exit code, peak RSS in MB, wall seconds); a child killed by a signal has exit code minus that signal."""
    with open(log_path, "w") as log, holding(lock):
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 preexec_fn=kill_me_first)
        _, status, usage = os.wait4(child.pid, 0)  # the rusage of this child alone, even when it was killed
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, round(usage.ru_maxrss / 1024, 1), round(time.perf_counter() - start, 1)  # Linux: KiB


def outcome(code, log_path):
    """"ok", or "did not fit" for a child killed by SIGKILL (the OOM killer; flock(1) reports it as 137) or
    stopped by an out-of-memory error; any other failure stops the driver with the log's last lines."""
    if code == 0:
        return "ok"
    text = open(log_path, errors="replace").read()
    if code in (-9, 137) or any(marker in text.lower() for marker in OUT_OF_MEMORY):
        return "did not fit"
    tail = "\n".join(text.strip().splitlines()[-15:])
    raise SystemExit(f"{log_path}: the run failed with exit code {code}:\n{tail}")


def our_command(args, config, folder, out_dir):
    """train.py's command line for the work (see the module docstring)."""
    overrides = dict(model=folder, out_dir=out_dir, prompt_batch=args.prompts, mini_batch=args.prompts,
                     n_rollouts=args.rollouts, k=min(config["k"], args.rollouts), max_new_tokens=args.max_new_tokens,
                     micro_batch=args.micro_batch, rollout_batch=0, advantage="noise_rewards",
                     advantage_options={"noise": args.noise}, max_steps=args.warmup + args.steps, eval_every=0,
                     checkpoint_every=1_000_000, show_progress=False, device=args.device, sampler=args.sampler,
                     threads=args.threads)
    if args.device == "cpu":
        overrides["dtype"] = "float32"  # the configs' bf16-mixed is for a GPU
    return [sys.executable, "train.py", args.config, *(f"--{key}={value}" for key, value in overrides.items())]


def trl_command(args, folder, out_dir):
    return [sys.executable, os.path.join("benchmarks", "trl_grpo.py"), f"--shape={args.shape}", f"--model={folder}",
            f"--config={args.config}", f"--prompts={args.prompts}", f"--rollouts={args.rollouts}",
            f"--max_new_tokens={args.max_new_tokens}", f"--micro_batch={args.micro_batch}", f"--noise={args.noise}",
            f"--steps={args.steps}", f"--warmup={args.warmup}", f"--threads={args.threads}",
            f"--device={args.device}", f"--output_dir={out_dir}"]


def read_ours(out_dir, warmup, device):
    """The mean figures of train.py's timed steps, from its metrics.jsonl."""
    records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    steps = [r for r in records if "step_time" in r]
    timed = steps[warmup:]
    mean = lambda key: sum(r[key] for r in timed) / len(timed)
    return dict(seconds_per_step=round(mean("step_time"), 3), generation_s=round(mean("generation_time"), 3),
                update_s=round(mean("update_time"), 3), response_length=round(mean("response_length"), 1),
                peak_memory_mb=round(max(r["peak_memory_mb"] for r in steps), 1),
                trained=round(sum(r["trained_tokens"] for r in timed) / sum(r["generated_tokens"] for r in timed), 3),
                steps_timed=len(timed))


def read_trl(log_path):
    """trl_grpo.py's figures: the last line of its output, JSON."""
    return json.loads(open(log_path).read().strip().splitlines()[-1])


def run_side(side, args, config, folder, index):
    """One run of one side: its row (a dict) with status "ok" or "did not fit"."""
    out_dir = os.path.join(args.out, f"{side}-round{index}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    log_path = os.path.join(args.out, f"{side}-round{index}.log")
    command = our_command(args, config, folder, out_dir) if side == "ours" else trl_command(args, folder, out_dir)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    code, peak_rss_mb, wall = run_child(command, log_path, env, args.lock)
    row = dict(side=side, round=index, status=outcome(code, log_path), exit_code=code, peak_rss_mb=peak_rss_mb,
               wall_s=wall, log=log_path)
    if row["status"] == "ok":
        row.update(read_ours(out_dir, args.warmup, args.device) if side == "ours" else read_trl(log_path))
    shutil.rmtree(out_dir, ignore_errors=True)  # our checkpoint: 16 bytes a parameter
    return row


def print_row(row):
    if row["status"] != "ok":
        print(f"{row['round']:<6}{row['side']:<6}  did not fit (exit code {row['exit_code']}, peak RSS "
              f"{row['peak_rss_mb']:.0f} MB after {row['wall_s']:.0f} s; {row['log']})", flush=True)
        return
    trained = f"{row['trained']:.2f}" if "trained" in row else "-"
    print(f"{row['round']:<6}{row['side']:<6}{row['seconds_per_step']:>9.2f}{row['generation_s']:>8.2f}"
          f"{row['update_s']:>10.2f}{row['peak_memory_mb']:>10.0f}{row['peak_rss_mb']:>10.0f}"
          f"{row['response_length']:>9.1f}{trained:>8}", flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="0.5b", choices=SHAPES)
    parser.add_argument("--layers", type=int, default=0, help="cut the model to this many layers (0: the shape's)")
    parser.add_argument("--config", default="", help="train.py's config (default: config/maze_qwen2.5_<shape>.py)")
    parser.add_argument("--model", default="", help="a model folder to use instead of writing one")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step (and per optimizer update)")
    parser.add_argument("--rollouts", type=int, default=8, help="responses per prompt")
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--micro_batch", type=int, default=0, help="rows per forward/backward (0: the config's)")
    parser.add_argument("--noise", type=float, default=0.5, help="noise_rewards' flip probability (both sides)")
    parser.add_argument("--sampler", default="auto", choices=("auto", "fast", "generate", "vllm"),
                        help="our sampler (auto: the config's choice, HF generate for a Qwen model; vllm: a venv with vLLM); TRL's is generate")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="steps run first in each run and not timed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", default="/tmp/alternate_shape", help="model folder, logs and run folders")
    parser.add_argument("--lock", default=LOCK, help="the file to flock around each big process ('' for none)")
    args = parser.parse_args(argv)
    for name, least in (("prompts", 1), ("rollouts", 1), ("max_new_tokens", 1), ("steps", 1), ("warmup", 0),
                        ("rounds", 1), ("threads", 1), ("layers", 0), ("micro_batch", 0)):
        if getattr(args, name) < least:
            parser.error(f"--{name}={getattr(args, name)} must be >= {least}")
    if not 0 < args.noise < 1:
        parser.error(f"--noise={args.noise} must be between 0 and 1")
    args.config = args.config or config_path(args.shape)
    if not os.path.isfile(args.config):
        parser.error(f"--config={args.config}: no such file")
    if args.model and not os.path.isfile(os.path.join(args.model, "config.json")):
        parser.error(f"--model={args.model} is not a Hugging Face model folder (no config.json there)")
    if args.model and args.layers:
        parser.error("--layers cuts the model this writes: not with --model")
    config = read_config(args.config)
    args.micro_batch = args.micro_batch or config["micro_batch"]
    rows = args.prompts * args.rollouts
    if rows % args.micro_batch:
        parser.error(f"--micro_batch={args.micro_batch} must divide the step's {rows} rows (TRL's gradient "
                     "accumulation takes whole micro-batches)")
    return args, config


def main(argv=None):
    args, config = parse_args(argv)
    if importlib.util.find_spec("trl") is None:
        raise SystemExit("trl is not importable: run with PYTHONPATH=<a folder with trl 1.16>, e.g. PYTHONPATH=.trl")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device=cuda but torch sees no CUDA device")
    os.makedirs(args.out, exist_ok=True)
    folder = args.model or write_model(model_folder(args.out, args.shape, args.layers, args.device), args.shape,
                                       args.layers, args.device, args.lock)
    work = dict(shape=args.shape, layers=args.layers or "all", model=folder, config=os.path.relpath(args.config, ROOT),
                prompts=args.prompts, rollouts=args.rollouts, max_new_tokens=args.max_new_tokens,
                micro_batch=args.micro_batch, noise=args.noise, sampler=args.sampler, steps=args.steps,
                warmup=args.warmup, threads=args.threads, device=args.device,
                gradient_checkpointing=config["gradient_checkpointing"])
    print(f"work: {json.dumps(work)}", flush=True)
    memory = "peak MB" if args.device == "cpu" else "cuda MB"
    print(f"{'round':<6}{'side':<6}{'s/step':>9}{'gen s':>8}{'update s':>10}{memory:>10}{'RSS MB':>10}{'resp len':>9}"
          f"{'trained':>8}", flush=True)
    runs, ratios = [], []
    for index in range(1, args.rounds + 1):
        rows = {}
        for side in ("ours", "trl"):
            rows[side] = run_side(side, args, config, folder, index)
            print_row(rows[side])
            runs.append(rows[side])
        if rows["ours"]["status"] == rows["trl"]["status"] == "ok":
            ratio = dict(round=index, time=round(rows["ours"]["seconds_per_step"] / rows["trl"]["seconds_per_step"], 3),
                         memory=round(rows["ours"]["peak_memory_mb"] / rows["trl"]["peak_memory_mb"], 3))
            ratios.append(ratio)
            print(f"round {index}: ours / TRL: time {ratio['time']:.2f}x (target <= 0.5x), peak memory "
                  f"{ratio['memory']:.2f}x (target <= 0.6x)", flush=True)
    fits = {side: all(run["status"] == "ok" for run in runs if run["side"] == side) for side in ("ours", "trl")}
    print(f"at {args.max_new_tokens} new tokens: " + ", ".join(
        f"{'ours' if side == 'ours' else 'TRL'} {'fits' if fit else 'did not fit'}" for side, fit in fits.items()),
        flush=True)
    print(json.dumps(dict(work=work, runs=runs, ratios=ratios, fits=fits)))
    return runs, ratios, fits


if __name__ == "__main__":
    main()
