"""The main demo: Pass@k Training against its Pass@1 baseline, side by side, offline on CPU.

    python compare.py                                        # analytical Pass@k (k=4) vs Pass@1, seed 0
    python compare.py --advantages=pkpo,pass1 --seed=1      # any advantages of advantage.py, another seed
    python compare.py --max_steps=200                       # any train.py config value goes through

One `train.py` run cannot show what the paper is about: its point is a difference between two runs. Pass@1
training (GRPO) raises pass@1 and narrows the policy: its pass@k at large k falls below the start policy's,
with its entropy and the diversity of its wrong answers. Pass@k training keeps more of it. This script warm-
starts the tiny model once (tiny.py, cached), runs one `python train.py --advantage=NAME` per advantage from
it with train.py's defaults (the long protocol, config/maze_tiny_long.py: 600 steps, pass@k curves from 128
samples per held-out maze), two at a time on one thread each, and prints the start policy and each run's end
side by side: pass@1/pass@8 per maze size, the pass@k curve, where each run's curve crosses the start's, and
how many held-out mazes each solves at all. It draws the curves to OUT/passk_curves.png (with matplotlib;
without it, the tables alone). Each run's own table, metrics.jsonl and eval.json stay in OUT/<advantage>/; a
finished run is reused, a stopped one resumes (train.py --resume).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.abspath(__file__))


def train_command(overrides, *settings):
    """python train.py with the user's overrides, then this script's settings (the later value of a key wins)."""
    return [sys.executable, os.path.join(ROOT, "train.py"), *overrides, *settings]


def run_pool(jobs, workers, ready=None, starting=None, finished=None, poll=1.0):
    """Run subprocesses `workers` at a time, each on one thread; the one pool of compare.py and experiments/maze.py.

    jobs: dicts with "command" (argv, run from the repository root) and "log" (a file its output is appended to).
    ready(job) says whether a pending job may start now (True), must wait (False), or is to be skipped (a string,
    the reason, stored as job["skipped"]); starting(job) runs just before a job starts (make its folder, note its
    command); finished(job, returncode, seconds) as each one ends. A job that nothing running can make ready is
    skipped ("dependencies incomplete"). Returns the jobs that failed or were skipped, in that order."""
    pending, running, failed = list(jobs), [], []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    while pending or running:
        for job in list(pending):
            if len(running) >= workers:
                break
            state = True if ready is None else ready(job)
            if state is False:
                continue
            pending.remove(job)
            if state is not True:
                job["skipped"] = state
                failed.append(job)
                continue
            if starting:
                starting(job)
            with open(job["log"], "a") as log:
                job["process"] = subprocess.Popen(job["command"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
            job["start"] = time.time()
            running.append(job)
        if not running and pending:  # nothing runs and nothing can start
            for job in pending:
                job["skipped"] = "dependencies incomplete"
            failed += pending
            break
        time.sleep(poll)
        for job in list(running):
            returncode = job["process"].poll()
            if returncode is None:
                continue
            running.remove(job)
            if returncode:
                failed.append(job)
            if finished:
                finished(job, returncode, time.time() - job["start"])
    return failed


def run_all(commands, workers, logs):
    """Run the train.py commands `workers` at a time, each writing to its log; raise if one fails (with the
    last line of its log: train.py's one-line reason)."""
    failed = run_pool([dict(command=command, log=log) for command, log in zip(commands, logs)], workers)
    if failed:
        with open(failed[0]["log"]) as f:
            tail = f.read().strip().splitlines()[-1:] or ["(no output)"]
        raise subprocess.CalledProcessError(failed[0]["process"].returncode, failed[0]["command"], output=tail[0])


def side_by_side(evals):
    """The printed comparison: {name: eval.json} -> text (start policy first)."""
    from evaluate import crossing_k, format_curves, format_table, solved_overlap

    names = list(evals)
    start = evals[names[0]]["before"]
    results = {"start": start, **{f"{name} end": evals[name]["after"] for name in names}}
    lines = [format_table(results), "", format_curves(results), "",
             "where each curve crosses the start policy's (k), and held-out items solved at all within n samples:"]
    for name in names:
        after = evals[name]["after"]
        k, kind = crossing_k({int(k): v for k, v in after["average_pass@k_curve"].items()},
                             {int(k): v for k, v in start["average_pass@k_curve"].items()})
        overlap = solved_overlap(start["correct"], after["correct"])
        crossing = f"k = {k:.1f}" if kind == "cross" else {"above": "never (above at every k)",
                                                            "below": "below from k = 1"}[kind]
        lines.append(f"  {name:<20} crosses at {crossing:<26} solved: start {overlap['a']}, run {overlap['b']}, "
                     f"both {overlap['both']} of {overlap['items']}")
    return "\n".join(lines)


def plot_curves(evals, path):
    """Draw the unbiased pass@k curves (as the paper's figure 7a: k on a log-2 axis) of the start policy and each
    run's end to a PNG at `path`; return `path`, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = list(evals)
    labels = {"passk_analytical": "Pass@k training (passk_analytical)", "pass1": "Pass@1 training (pass1, GRPO)"}
    curves = {"start policy": evals[names[0]]["before"]["average_pass@k_curve"],
              **{labels.get(name, f"{name} end"): evals[name]["after"]["average_pass@k_curve"] for name in names}}
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    colors = ("C0", "C3", "C2", "C1", "C4", "C5", "C6", "C7", "C8", "C9")  # blue, red, ...: the runs; black: the start
    for i, (label, curve) in enumerate(curves.items()):
        ks = sorted(int(k) for k in curve)
        style = dict(color="black", linestyle="--") if i == 0 else dict(color=colors[(i - 1) % len(colors)])
        ax.plot(ks, [100 * curve[str(k)] for k in ks], marker="o", markersize=4, label=label, **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples per problem, log scale)")
    ax.set_ylabel("pass@k (%)")
    ax.set_title("Unbiased pass@k on held-out problems, start and end of training", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None):
    from infra.cli import add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--advantages", default="passk_analytical,pass1", help="comma-separated advantage.py names")
    parser.add_argument("--out", default=os.path.join("out", "compare"), help="folder of the runs")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (each on one thread)")
    add_debug_option(parser)
    args, overrides = parser.parse_known_args(argv)
    from advantage import ADVANTAGES

    names = [name for name in args.advantages.split(",") if name]
    if len(names) < 2 or len(set(names)) < len(names) or set(names) - set(ADVANTAGES):
        usage_error(f"--advantages={args.advantages!r}: two or more distinct names of {', '.join(ADVANTAGES)}")
    if args.workers < 1:
        usage_error(f"--workers={args.workers} must be >= 1")
    for arg in overrides:
        if not arg.startswith("--") or "=" not in arg or arg.split("=")[0] in ("--advantage", "--out_dir", "--model"):
            usage_error(f"{arg!r}: pass train.py config values as --key=value (not advantage, out_dir or model)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        usage_error(f"--out={args.out!r} is a file, not a folder")

    os.makedirs(args.out, exist_ok=True)
    warm = os.path.join(args.out, "warmstart")
    start = time.time()
    print(f"warm start of the tiny model (cached in {warm}/tiny-warmstart) ...", flush=True)
    built = subprocess.run(train_command(overrides, f"--out_dir={warm}", "--max_steps=0", "--eval_every=0",
                                         "--show_progress=False"), cwd=ROOT, capture_output=True, text=True)
    if built.returncode:  # train.py's own one-line reason (a bad config value) is its last line
        raise subprocess.CalledProcessError(built.returncode, built.args, output=built.stderr.strip()[-2000:])
    commands, logs = [], []
    for name in names:
        out_dir = os.path.join(args.out, name)
        done = os.path.exists(os.path.join(out_dir, "eval.json"))
        command = train_command(overrides, f"--model={os.path.join(warm, 'tiny-warmstart')}", f"--out_dir={out_dir}",
                                f"--advantage={name}", "--threads=1", "--show_progress=False", "--resume=True")
        print(f"{'done already' if done else 'running'}: python train.py {' '.join(command[2:])}", flush=True)
        if not done:
            os.makedirs(out_dir, exist_ok=True)
            commands.append(command)
            logs.append(os.path.join(out_dir, "log.txt"))
    run_all(commands, args.workers, logs)
    evals = {}
    for name in names:
        with open(os.path.join(args.out, name, "eval.json")) as f:
            evals[name] = json.load(f)
    print(f"\n{side_by_side(evals)}\n")
    figure = plot_curves(evals, os.path.join(args.out, "passk_curves.png"))
    print(f"figure: {figure}" if figure else "figure skipped: matplotlib is not installed (pip install matplotlib)")
    print(f"{time.time() - start:.0f} s; runs in {args.out}/")


if __name__ == "__main__":
    from infra.cli import run

    run(main)
