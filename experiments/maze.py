"""Reproduce the paper's maze findings at small scale: grids of train.py runs, seeds included.

    python experiments/maze.py --primary --dry-run      # the pre-declared primary family (RESULTS.md): 70 runs
    python experiments/maze.py --primary                # run it: 3.6 hours on 2 cores (measured, RESULTS.md)
    python experiments/maze.py --tune                   # tune the entropy and noise baselines first (2 seeds)
    python experiments/maze.py --long                   # the 5-seed long-protocol grid (110 runs, exploratory)
    python experiments/maze.py --long --only k          # one group (and the runs it depends on)
    python experiments/maze.py --tasks                  # Pass@1 vs Pass@k on reasoning-gym tasks
    python experiments/maze.py --replication --seeds 0,1        # the family replicated from the shipped start, a chunk
    python experiments/maze.py --replication --rerun passk_analytical --seeds 3   # rerun one row, diff it with its line
    python -m lab.plots experiments/results/long.jsonl      # figures + tables of a grid's record

Every run is one `python train.py ...` subprocess with its own out_dir,
experiments/runs/<mode>/<group>/<name>-seed<s>/ (metrics.jsonl, eval.json, ckpt/, log.txt,
command.txt, wall.json), run by compare.run_pool, two at a time (--workers), each on one thread, seed by seed.
Those folders stay out of git: as each run ends, the grid's record, one line per complete run (lab/records.py's
compact_runs), is rewritten to experiments/results/<mode>.jsonl, and `python -m lab.plots` redraws every figure and
table from it. The grid runs a copy of the code (the top-level modules and infra/) taken when it first starts,
experiments/runs/<mode>/code/ (VERSION says which commit), so
edits made meanwhile change no run. Stop the script any time and start it again: a run whose eval.json exists is
complete and skipped, an unfinished one is continued from its last checkpoint (--resume=True), and a run already
in the record is skipped too, so a grid started in one clone is finished in another (its run folders gone) once
the record is committed. Each line holds the fingerprint of the weights the run started from (start_weights)
and the commit of the code it ran (code): a recorded run counts only when the warm start rebuilt here has the
same fingerprint (up to float rounding), and the remaining runs run that commit's code. A warm start rebuilt
to other weights (another CPU: 1,200 SFT steps amplify its rounding) stops the grid with an error, since its
runs would not pair with the recorded ones; --rerun_other_starts runs them again and replaces them. The
replication and H11's test start from the shipped assets/tiny-maze-start instead (their --model), which no CPU
rebuilds: any clone resumes them, and --rerun reruns any of their rows and diffs it with its line.

What is fixed and what varies: every run of a grid starts from the same warm-started tiny model (tiny.py;
copied from out/tiny-warmstart, or built once with train.py's default split; the primary family builds its own
on its own split) and uses the same train and test items (split seed 0). The seed (train.py --seed) changes
the prompt order, the rollout sampling, the bootstrap groups / noise flips and the evaluation's sampling.

Groups of the short grids (--quick 40 steps, --full 150; paper figures in brackets; docs/history.md):
  estimators  pass1, passk_full, passk_bootstrap, passk_analytical at N=16 rollouts, k=4   [fig 3-5, tab 7]
  k           passk_analytical with k=2, 8 (k=4 is estimators/passk_analytical), and k=8 with 2x, 4x lr [fig 8]
  implicit    passk_exceeding, passk_combination, passk_adaptive, pass1_no_easy          [fig 10-13]
  baselines   noise_rewards 0.1/0.3/0.5, pass1 + entropy regularisation                  [fig 6]
  continual   passk_analytical T steps then pass1 T steps, against pass1 (and passk) 2T [tab 2]
The long grid adds the objectives group (issue 13's estimators); lab/grids.py holds what each grid is drawn as.

The code: this file runs the grids (the warm starts, the pool, the command line); experiments/modes.py says what
each run of a mode is, experiments/record.py keeps the record and reruns a row, experiments/start.py builds the
shipped start policy (assets/tiny-maze-start) and fingerprints weights.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script (python experiments/maze.py): the repository's modules live in ROOT
    sys.path.insert(0, ROOT)

from experiments import modes  # noqa: E402  (RUNS, RESULTS, SHIPPED_STARTS: read as modes.X, so tests can move them)
from experiments.modes import (COMMON, H11_TEST, LONG, MODES, PRIMARY, PRIMARY_BASELINES, PRIMARY_TEST,  # noqa: E402,F401
                               PRIMARY_WARMSTART, SEEDS, WARMSTART, grid, is_complete, read_config,
                               run_dir, select, task_grid, task_warmstart, train_args)
from experiments.record import (IGNORED, adopt_recorded_snapshot, committed_starts, is_code, read_record,  # noqa: E402,F401
                                record_differences, recorded_runs, rerun_row, restore_snapshot, snapshot_code,
                                snapshot_commit, unshipped_lines, write_commit_code, write_grid_record)
from experiments.start import BUILD_COMMAND, recorded_fingerprint, same_start, weights_fingerprint  # noqa: E402,F401
from infra.cli import CommandError  # noqa: E402
def ensure_warmstart(mode=None):
    """The shared starting policy: copy out/tiny-warmstart, or build it once with train.py's defaults. Mode
    "tasks": each task's, built once with train.py on the task's train split (its default warm start)."""
    if mode == "tasks":
        train = MODES["tasks"]["train"]
        for _, _, overrides, _ in task_grid():
            if not os.path.exists(os.path.join(overrides["model"], "config.json")):
                print(f"warm start of {overrides['task']}: building it (a few minutes)", flush=True)
                subprocess.run([sys.executable, "train.py", f"--out_dir={os.path.dirname(overrides['model'])}",
                                f"--task={overrides['task']}", f"--task_options={overrides['task_options']!r}",
                                f"--n_train={train['n_train']}", f"--n_test={train['n_test']}", "--max_steps=0",
                                "--eval_every=0", "--show_progress=False"], cwd=ROOT, check=True)
        return
    if mode in MODES and "warmstart" in MODES[mode]:  # a warm start of its own, on the mode's own split
        folder, train = MODES[mode]["warmstart"], MODES[mode]["train"]
        shipped = modes.SHIPPED_STARTS.get(mode)
        if shipped == folder and not os.path.exists(os.path.join(folder, "config.json")):
            raise CommandError(f"the shipped start {folder} of mode {mode!r} is missing: check out the repository's "
                               f"assets/, or build it with: {BUILD_COMMAND}")
        if not os.path.exists(os.path.join(folder, "config.json")) and shipped and os.path.exists(shipped):
            print(f"warm start for {mode}: copying the shipped {shipped}", flush=True)
            shutil.copytree(shipped, folder)
        if not os.path.exists(os.path.join(folder, "config.json")):
            print(f"warm start for {mode}: building it on its split (a few minutes)", flush=True)
            split = [f"--{key}={train[key]!r}" if isinstance(train[key], (dict, tuple)) else f"--{key}={train[key]}"
                     for key in ("train_sizes", "n_train", "test_sizes", "n_test") if key in train]
            subprocess.run([sys.executable, "train.py", f"--out_dir={os.path.dirname(folder)}", *split, "--max_steps=0",
                            "--eval_every=0", "--show_progress=False"], cwd=ROOT, check=True)
        return
    if os.path.exists(os.path.join(WARMSTART, "config.json")):
        return
    existing = os.path.join("out", "tiny-warmstart")
    if os.path.exists(os.path.join(existing, "warm_start.json")):
        print(f"warm start: copying {existing}")
        shutil.copytree(existing, WARMSTART)
        return
    print("warm start: building it with train.py's default mazes (about 3 minutes)")
    build_dir = os.path.dirname(WARMSTART)
    subprocess.run([sys.executable, "train.py", f"--out_dir={build_dir}", "--max_steps=0", "--eval_every=0",
                    "--show_progress=False"], cwd=ROOT, check=True)



def summary_line(path):
    with open(os.path.join(path, "eval.json")) as f:
        evals = json.load(f)
    after = evals["after"]["average"]
    ks = sorted(int(key[len("pass@"):]) for key in after if re.fullmatch(r"pass@\d+", key))  # 1 and the eval's k
    return "avg " + " ".join(f"pass@{k} {after[f'pass@{k}']:.3f}" for k in dict.fromkeys((ks[0], ks[-1])))


def run_grid(jobs, workers, dry_run=False, recorded=(), after_each=None):
    """Run the jobs `workers` at a time (dependencies first) with compare.run_pool; skip complete ones and those
    in `recorded` ({(run, seed): record}); call after_each() as each run completes. Returns the run folders that
    failed or were skipped."""
    from compare import run_pool

    done = [job for job in jobs if is_complete(job["dir"]) or (job["key"], job["seed"]) in recorded]
    todo = [job for job in jobs if job not in done]
    in_record = sum(not is_complete(job["dir"]) for job in done)
    note = f"; {in_record} of them known from the record only" if in_record else ""
    print(f"{len(jobs)} runs: {len(done)} complete (skipped{note}), {len(todo)} to run, {workers} at a time")
    if dry_run:
        for job in todo:
            print(" ".join(["python", job.get("script", "train.py"), *job["args"]]))
        return []
    failed, finished, durations, grid_start = set(), [0], [], time.time()
    for job in todo:
        job["command"] = [sys.executable, job.get("script", "train.py"), *job["args"]]
        job["log"] = os.path.join(job["dir"], "log.txt")
        job["name"] = f"{job['key']}-seed{job['seed']}"

    def ready(job):
        if any(dep in failed for dep in job["deps"]):
            failed.add(job["dir"])
            print(f"skip {job['name']}: a run it needs failed", flush=True)
            return "a run it needs failed"
        return all(is_complete(dep) for dep in job["deps"])  # a recorded run has no checkpoint to start from

    def starting(job):
        os.makedirs(job["dir"], exist_ok=True)
        with open(os.path.join(job["dir"], "command.txt"), "w") as f:
            f.write(" ".join(["python", *job["command"][1:]]) + "\n")
        print(f"start {job['name']}", flush=True)

    def on_finished(job, returncode, seconds):
        finished[0] += 1
        if returncode == 0 and is_complete(job["dir"]):
            durations.append(seconds)
            with open(os.path.join(job["dir"], "wall.json"), "w") as f:
                json.dump({"wall_seconds": seconds}, f)
            left = len(todo) - finished[0]
            eta = sum(durations) / len(durations) * left / workers / 60
            print(f"[{finished[0]}/{len(todo)}] done {job['name']} in {seconds:.0f}s: {summary_line(job['dir'])}  "
                  f"(elapsed {(time.time() - grid_start) / 60:.1f} min, about {eta:.0f} min left)", flush=True)
            if after_each:
                after_each()
            return
        failed.add(job["dir"])
        with open(job["log"]) as f:
            tail = f.read()[-1500:]
        print(f"FAILED {job['name']} (exit {returncode}); log tail:\n{tail}", flush=True)

    for job in run_pool(todo, workers, ready, starting, on_finished):
        failed.add(job["dir"])
        if job.get("skipped") == "dependencies incomplete":
            print(f"skip {job['name']}: dependencies incomplete", flush=True)
    print(f"grid wall time {(time.time() - grid_start) / 60:.1f} min; {len(failed)} failed/skipped", flush=True)
    return sorted(failed)


def main(argv=None):
    from infra.cli import add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--quick", dest="mode", action="store_const", const="quick")
    parser.add_argument("--full", dest="mode", action="store_const", const="full")
    parser.add_argument("--smoke", dest="mode", action="store_const", const="smoke")
    parser.add_argument("--long", dest="mode", action="store_const", const="long")
    parser.add_argument("--tasks", dest="mode", action="store_const", const="tasks")
    parser.add_argument("--primary", dest="mode", action="store_const", const="primary")
    parser.add_argument("--tune", dest="mode", action="store_const", const="tune")
    parser.add_argument("--h11", dest="mode", action="store_const", const="h11")
    parser.add_argument("--replication", dest="mode", action="store_const", const="replication")
    parser.add_argument("--only", default="", help="comma-separated groups (estimators,k,implicit,baselines,objectives,continual) "
                                                   "or runs (estimators/pass1)")
    parser.add_argument("--seeds", default="", help="comma-separated; default 0,1,2 (long: 0,1,2,3,4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--rerun_other_starts", action="store_true",
                        help="run again (and replace in the record) the recorded runs whose start policy differs "
                             "from the warm start built here; without it such a record is an error")
    parser.add_argument("--rerun", metavar="RUN", default="",
                        help="run one recorded row (RUN, e.g. pass1, with one --seeds) again in a temporary folder, "
                             "from the shipped start and the code its record names, and compare its record line with "
                             "the committed one (exit 1 on a difference)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.rerun:
        if not args.seeds.strip().isdigit():
            usage_error(f"--rerun needs one seed (--seeds=S), got --seeds={args.seeds!r}")
        differences, compared, seconds, exact = rerun_row(args.mode, args.rerun, int(args.seeds))
        for path, recorded, rerun in differences[:20]:
            print(f"  {path}: recorded {recorded!r}, rerun {rerun!r}")
        largest = max((abs(a - b) / max(abs(a), 1e-12) for _, a, b in exact
                       if all(isinstance(x, (int, float)) for x in (a, b))), default=0.0)
        print(f"{compared} values compared (wall and step times aside): {len(differences)} differ beyond the "
              f"tolerance (rtol 1e-4, atol 1e-6), {len(exact)} at all (largest relative difference {largest:.3g}); "
              f"the rerun took {seconds:.0f} s")
        return 1 if differences else 0
    groups = [group for group in args.only.split(",") if group] or list(MODES[args.mode].get("groups", [])) or None
    known = {group for group, *_ in grid(2, args.mode)} | {f"{group}/{name}" for group, name, *_ in grid(2, args.mode)}
    if groups and set(groups) - known:
        parser.error(f"unknown group(s) or run(s) {sorted(set(groups) - known)}; known: {sorted(known)}")
    args.seeds = args.seeds or ",".join(map(str, MODES[args.mode].get("seeds", SEEDS)))
    if not all(seed.strip().isdigit() for seed in args.seeds.split(",")):
        usage_error(f"--seeds={args.seeds!r} must be comma-separated non-negative integers, e.g. 0,1,2")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if len(set(seeds)) < len(seeds):
        usage_error(f"--seeds={args.seeds!r} repeats a seed: two runs would share one folder")
    if args.workers < 1:
        usage_error(f"--workers={args.workers} must be >= 1")
    script = "train.py"
    # the grid's record, the file the lab and RESULTS.md read (the run folders stay out of git)
    results = os.path.join(modes.RESULTS, f"{args.mode}.jsonl")
    if not args.dry_run:
        ensure_warmstart(args.mode)
        shipped = modes.SHIPPED_STARTS.get(args.mode)
        if shipped and weights_fingerprint(shipped) != recorded_fingerprint(shipped):
            usage_error(f"{shipped} is not the start its warm_start.json names ({recorded_fingerprint(shipped)}): "
                        f"restore the committed one (git checkout -- {shipped})")
        adopt_recorded_snapshot(args.mode, results)
        script = snapshot_code(args.mode)
    jobs = select(args.mode, groups, seeds, script)
    recorded = recorded_runs(jobs, results, verify=not args.dry_run)
    other_starts = {(job["key"], job["seed"]) for job in jobs} & set(read_record(results)) - set(recorded)
    if other_starts and not args.rerun_other_starts:
        usage_error(f"{results}: {len(other_starts)} recorded runs started from other (or unrecorded) weights than "
                    f"the warm start built here (another CPU rounds the warm start's training differently, or its "
                    f"recipe changed); running the grid would run them again and replace them. Run it where the "
                    f"record was made, or pass --rerun_other_starts to replace them.")
    record = lambda: write_grid_record(args.mode, jobs, recorded, results)  # noqa: E731
    failed = run_grid(jobs, args.workers, args.dry_run, recorded, after_each=record)
    if not args.dry_run:
        print(f"{len(record())} runs recorded in {results}; figures and tables: python -m lab.plots {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    from infra.cli import run

    run(main)
