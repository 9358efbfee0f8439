"""Reproduce the paper's maze findings at small scale: grids of train.py runs, seeds included.

    python experiments/maze.py --primary --dry-run      # the pre-declared primary family (RESULTS.md): 70 runs
    python experiments/maze.py --primary                # run it: 3.6 hours on 2 cores (measured, RESULTS.md)
    python experiments/maze.py --tune                   # tune the entropy and noise baselines first (2 seeds)
    python experiments/maze.py --long                   # the 5-seed long-protocol grid (110 runs, exploratory)
    python experiments/maze.py --long --only k          # one group (and the runs it depends on)
    python experiments/maze.py --tasks                  # Pass@1 vs Pass@k on reasoning-gym tasks
    python experiments/maze.py --primary --rerun pass1 --seeds 0   # rerun one recorded row, compare its line
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
runs would not pair with the recorded ones; --rerun_other_starts runs them again and replaces them.

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
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join("experiments", "runs")  # paths are relative to ROOT: main() works from there
CODE_FOLDERS = ("", "infra")  # what a grid's code snapshot copies: the method's modules and the plumbing they import
RESULTS = os.path.join("experiments", "results")  # the grids' records, <mode>.jsonl (committed)
WARMSTART = os.path.join(RUNS, "warmstart", "tiny-warmstart")  # the policy every run starts from
SEEDS = (0, 1, 2)

# the settings every run shares (the lead's measured setting): N=16 rollouts, k=4, 8 prompts a step, one
# optimizer update a step (on-policy), lr 1e-4 with 10 warmup steps
COMMON = dict(model=WARMSTART, prompt_template="compact", n_rollouts=16, k=4, prompt_batch=8, mini_batch=8,
              learning_rate=1e-4, lr_warmup_steps=10, eval_k=8, threads=1, show_progress=False)



def read_config(path):
    """The assignments of a train.py config file, as a dict."""
    values = {}
    with open(os.path.join(ROOT, path)) as f:
        exec(f.read(), {}, values)
    return values


LONG = read_config(os.path.join("config", "maze_tiny_long.py"))
PRIMARY = ("pass1", "passk_analytical", "passk_bootstrap", "passk_exceeding", "pkpo", "best_of_n")
PRIMARY_TEST = {5: 30, 7: 200, 9: 300, 11: 120}  # held-out mazes per size of the primary family
H11_TEST = {5: 30, 7: 200, 9: 600, 11: 240}  # held-out mazes per size of H11's confirmatory test
PRIMARY_WARMSTART = os.path.join(RUNS, "warmstart", "tiny-warmstart-primary", "tiny-warmstart")
# the start policies shipped in the repository (HF folders like assets/tiny-maze), by mode: copied into the mode's
# warm start folder instead of rebuilt, so that a clone on any CPU starts from the weights its record names. None
# yet: the primary family's start (fingerprint 40d36121...) was rebuilt to other weights wherever it was tried
# (RESULTS.md); once a machine rebuilds it, "primary" and "h11" map to e.g. assets/tiny-maze-primary
SHIPPED_STARTS = {}
# modes whose runs must start from the start policy another grid's record names (the confirmatory test of a family)
SAME_START_AS = {"h11": "primary"}
TUNE_ENTROPY, TUNE_NOISE = (0.03, 0.1, 0.3), (0.1, 0.5)
# the baselines that moved in the tune grid (RESULTS.md, "Baselines"), run beside the primary family and compared
# with analytical Pass@k as exploratory rows outside its Holm family: entropy 0.1 raised held-out entropy by
# +0.064 and +0.062 nats (seeds 0, 1); no noise rate moved anything, so noise has no row
PRIMARY_BASELINES = {"entropy0.1": dict(advantage="pass1", entropy_coef=0.1)}
# steps: RL steps of a run (the continual group's parts are `steps` each, so 2x steps in all)
MODES = {
    "quick": dict(steps=40, train=dict(n_test=30, eval_samples=16, eval_every=20, checkpoint_every=20)),
    "full": dict(steps=150, train=dict(n_test=30, eval_samples=32, eval_every=30, checkpoint_every=30)),
    # the long protocol (config/maze_tiny_long.py, issue 11): Pass@1 has narrowed the policy by its end; 5 seeds
    "long": dict(steps=LONG["max_steps"], seeds=(0, 1, 2, 3, 4), train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        eval_cache=os.path.join(RUNS, "long", "eval-cache"))),
    # how the horizon was chosen (RESULTS.md): Pass@1 and analytical Pass@k for 1000 steps, evaluated every 100
    "horizon": dict(steps=1000, seeds=(0,), groups=("estimators/pass1", "estimators/passk_analytical"), train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        eval_every=100, checkpoint_every=100)),
    # beyond mazes (issue 14): Pass@1 against analytical Pass@k on reasoning-gym tasks (tasks.TASK_PRESETS), at the
    # long protocol's horizon and evaluation; n_train/n_test count items
    "tasks": dict(steps=LONG["max_steps"], seeds=(0, 1, 2, 3, 4), train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps", "train_sizes", "test_sizes",
                                                                    "n_train", "n_test")},
        n_train=2000, n_test=100, eval_cache=os.path.join(RUNS, "tasks", "eval-cache"))),
    # the pre-declared primary family (RESULTS.md): Pass@1 against five pass@k methods, 10 seeds, a held-out set
    # large enough that item noise is no larger than seed noise (5x5: the split has room for 30 only) and the
    # unseen sizes hold >= 40 mazes the start policy solves; its own warm start, built on this split, so that no
    # held-out maze was a warm-start training maze. Start and end evaluations only.
    "primary": dict(steps=LONG["max_steps"], seeds=tuple(range(10)), warmstart=PRIMARY_WARMSTART, train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        n_test=PRIMARY_TEST, eval_every=LONG["max_steps"], model=PRIMARY_WARMSTART,
        eval_cache=os.path.join(RUNS, "primary", "eval-cache"))),
    # the confirmatory test of H11 (RESULTS.md, declared before its runs): analytical Pass@k against Pass@1 on the
    # unseen sizes' pass@128, new seeds 10-28, twice the family's unseen mazes (the first 300 9x9 and 120 11x11 are
    # the family's); the same split of train mazes, so the same start policy (the shipped one)
    "h11": dict(steps=LONG["max_steps"], seeds=tuple(range(10, 29)), warmstart=PRIMARY_WARMSTART, train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        n_test=H11_TEST, eval_every=LONG["max_steps"], model=PRIMARY_WARMSTART,
        eval_cache=os.path.join(RUNS, "h11", "eval-cache"))),
    # the baselines tuned before they are compared (3.1): which entropy coefficient measurably raises held-out
    # entropy over Pass@1, and which noise rate measurably moves anything; 2 seeds, the long protocol
    "tune": dict(steps=LONG["max_steps"], seeds=(0, 1), train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        eval_every=LONG["max_steps"], eval_cache=os.path.join(RUNS, "tune", "eval-cache"))),
    # the plumbing test: a couple of steps on 2 test mazes per size
    "smoke": dict(steps=2, train=dict(n_test=2, eval_samples=8, eval_every=1, checkpoint_every=2,
                                      n_rollouts=8, prompt_batch=4, mini_batch=4)),
}

LR = COMMON["learning_rate"]
ENTROPY_COEFS = (0.003, 0.01, 0.03)  # paper: 0.001/0.003/0.005; see RESULTS.md for why larger here
NOISES = (0.1, 0.3, 0.5)


def grid(steps, mode="full"):
    """[(group, name, overrides, deps)]: deps are 'group/name' runs (same seed) that must finish first."""
    if mode == "long":
        return long_grid(steps)
    if mode == "tasks":
        return task_grid()
    if mode == "primary":
        return ([("primary", advantage, dict(advantage=advantage), ()) for advantage in PRIMARY]
                + [("primary", name, overrides, ()) for name, overrides in PRIMARY_BASELINES.items()])
    if mode == "h11":
        return [("h11", advantage, dict(advantage=advantage), ()) for advantage in ("pass1", "passk_analytical")]
    if mode == "tune":
        return ([("tune", "pass1", dict(advantage="pass1"), ())]
                + [("tune", f"entropy{coef}", dict(advantage="pass1", entropy_coef=coef), ()) for coef in TUNE_ENTROPY]
                + [("tune", f"noise{noise}", dict(advantage="noise_rewards", advantage_options={"noise": noise}), ())
                   for noise in TUNE_NOISE])
    runs = []
    for advantage in ("pass1", "passk_full", "passk_bootstrap", "passk_analytical"):
        runs.append(("estimators", advantage, dict(advantage=advantage), ()))
    for k in (2, 8):
        runs.append(("k", f"k{k}", dict(advantage="passk_analytical", k=k), ()))
    for factor in (2, 4):
        runs.append(("k", f"k8-lr{factor}x", dict(advantage="passk_analytical", k=8, learning_rate=factor * LR), ()))
    for advantage in ("passk_exceeding", "passk_combination", "passk_adaptive", "pass1_no_easy"):
        runs.append(("implicit", advantage, dict(advantage=advantage), ()))
    for noise in NOISES:
        runs.append(("baselines", f"noise{noise}", dict(advantage="noise_rewards", advantage_options={"noise": noise}), ()))
    for coef in ENTROPY_COEFS:
        runs.append(("baselines", f"entropy{coef}", dict(advantage="pass1", entropy_coef=coef), ()))
    runs.append(("continual", "pass1-2T", dict(advantage="pass1", max_steps=2 * steps), ()))
    runs.append(("continual", "passk-2T", dict(advantage="passk_analytical", max_steps=2 * steps), ()))
    runs.append(("continual", "passk-then-pass1", dict(advantage="pass1", init_from_run="estimators/passk_analytical"),
                 ("estimators/passk_analytical",)))
    return runs


def long_grid(steps):
    """The long protocol's grid: the groups of the short one that decide the paper's takeaways, at one horizon.
    Continual (table 2) splits the horizon: Pass@k for T = steps / 2, then Pass@1 for T, against Pass@1 for 2T
    (estimators/pass1), so the comparison costs one horizon a seed instead of three."""
    runs = [run for run in grid(steps) if run[0] in ("estimators", "k", "implicit")
            and run[1] != "k8-lr4x"]  # 4x lr collapsed at 150 steps already (RESULTS.md)
    first = ("pass1", "passk_analytical")  # the main comparison first: a grid stopped early has it for every seed
    runs.sort(key=lambda run: run[1] not in first)
    runs.append(("baselines", "noise0.3", dict(advantage="noise_rewards", advantage_options={"noise": 0.3}), ()))
    runs.append(("baselines", "entropy0.01", dict(advantage="pass1", entropy_coef=0.01), ()))
    # issue 13's objectives side by side (Pass@1 and analytical Pass@k are estimators/): each at its own defaults
    for name, overrides in [("pkpo", dict(advantage="pkpo")),  # k = 4, leave-one-out baseline
                            ("pkpo-anneal", dict(advantage="pkpo", k=8, k_end=1, k_anneal_steps=steps // 2)),
                            ("risk_seeking", dict(advantage="risk_seeking")), ("best_of_n", dict(advantage="best_of_n")),
                            ("w_reinforce", dict(advantage="w_reinforce")), ("maxrl", dict(advantage="maxrl")),
                            ("unlikeliness", dict(advantage="unlikeliness"))]:
        runs.append(("objectives", name, overrides, ()))
    half = steps // 2
    runs.append(("continual", "passk-T", dict(advantage="passk_analytical", max_steps=half, eval_every=half), ()))
    runs.append(("continual", "passk-then-pass1", dict(advantage="pass1", init_from_run="continual/passk-T",
                                                       max_steps=steps - half, eval_every=steps - half),
                 ("continual/passk-T",)))
    return runs


def task_warmstart(task):
    """The folder of a task's warm-started tiny model (its own vocabulary), built once by ensure_warmstart."""
    slug = task.replace(":", "-")
    return os.path.join(RUNS, "warmstart", slug, "tiny-warmstart-" + slug)


def task_grid():
    """One group per reasoning-gym task of tasks.TASK_PRESETS: Pass@1 and analytical Pass@k, every run of a task
    starting from the same warm start of the tiny model on that task (task_warmstart)."""
    from tasks import TASK_PRESETS

    runs = []
    for task, options in TASK_PRESETS.items():
        for advantage in ("pass1", "passk_analytical"):
            runs.append((task.split(":", 1)[1], advantage,
                         dict(task=task, task_options=options, advantage=advantage, model=task_warmstart(task)), ()))
    return runs


def run_dir(mode, run, seed):
    return os.path.join(RUNS, mode, f"{run}-seed{seed}")


def is_complete(path):
    return os.path.exists(os.path.join(path, "eval.json"))


def train_args(mode, group, name, overrides, seed):
    config = dict(COMMON, **MODES[mode]["train"], max_steps=MODES[mode]["steps"], seed=seed,
                  out_dir=run_dir(mode, f"{group}/{name}", seed), resume=True)
    config.update(overrides)
    if "init_from_run" in config:  # start from the final checkpoint of that run (same mode and seed)
        config["init_from"] = os.path.join(run_dir(mode, config.pop("init_from_run"), seed), "ckpt")
    args = []
    for key, value in config.items():
        args.append(f"--{key}={value!r}" if isinstance(value, (dict, tuple)) else f"--{key}={value}")
    return args


def is_code(path):
    """Whether a repository path is one of the modules a run imports: the top-level ones and infra/'s."""
    return path.endswith(".py") and os.path.dirname(path) in CODE_FOLDERS


def snapshot_code(mode):
    """Copy the repository's top-level modules and infra/ to runs/<mode>/code/ once, and run that train.py: every
    run of a grid then uses the same code even while train.py & co. are edited (resume keeps the snapshot).
    code/VERSION records the commit and whether those files differed from it."""
    code = os.path.join(RUNS, mode, "code")
    restore_snapshot(code)
    if not os.path.exists(os.path.join(code, "VERSION")):
        files = sorted(os.path.join(folder, name) if folder else name for folder in CODE_FOLDERS
                       for name in os.listdir(folder or ".") if is_code(os.path.join(folder, name)))
        for name in files:
            os.makedirs(os.path.join(code, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(name, os.path.join(code, name))
        git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()  # noqa: E731
        with open(os.path.join(code, "VERSION"), "w") as f:
            f.write(f"commit {git('rev-parse', 'HEAD')}\ncopied {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                    f"uncommitted changes in these files:\n{git('status', '--porcelain', '--', *files) or 'none'}\n")
    return os.path.join(code, "train.py")


def snapshot_commit(mode):
    """The commit a grid's code snapshot was taken from (runs/<mode>/code/VERSION), "+uncommitted" appended when
    the snapshot held uncommitted changes (no commit names its code); None without a snapshot."""
    version = os.path.join(RUNS, mode, "code", "VERSION")
    if not os.path.exists(version):
        return None
    with open(version) as f:
        lines = f.read().splitlines()
    return lines[0].split()[1] + ("" if lines[-1] == "none" else "+uncommitted")


def adopt_recorded_snapshot(mode, results):
    """A grid resumed where its run folders are gone (a fresh clone): run the code its record names (each line's
    "code" commit), not today's, so every run of the grid runs the same code. Writes runs/<mode>/code/VERSION;
    snapshot_code then restores the modules from that commit."""
    code = os.path.join(RUNS, mode, "code")
    commits = {record.get("code") for record in read_record(results).values()} - {None}
    if os.path.exists(os.path.join(code, "VERSION")) or not commits:
        return
    if len(commits) > 1:
        raise ValueError(f"{results}: its runs name {len(commits)} code commits {sorted(commits)}; a grid runs one")
    if next(iter(commits)).endswith("+uncommitted"):
        raise ValueError(f"{results}: its runs ran uncommitted code, which no clone can restore; run the grid anew")
    os.makedirs(code, exist_ok=True)
    with open(os.path.join(code, "VERSION"), "w") as f:
        f.write(f"commit {commits.pop()}\ncopied {time.strftime('%Y-%m-%d %H:%M:%S')} (the commit {results} names)\n"
                f"uncommitted changes in these files:\nnone\n")


def restore_snapshot(code):
    """A snapshot whose VERSION was committed without its copies (the repository keeps only VERSION, not a
    second copy of the code): bring back the modules of the commit it names (is_code), with `git show`.
    A snapshot taken with uncommitted changes cannot be restored this way: ValueError."""
    version = os.path.join(code, "VERSION")
    if not os.path.exists(version) or os.path.exists(os.path.join(code, "train.py")):
        return
    with open(version) as f:
        lines = f.read().splitlines()
    commit = lines[0].split()[1]
    if lines[-1] != "none":
        raise ValueError(f"{version}: the snapshot had uncommitted changes; it cannot be restored from {commit}")
    write_commit_code(commit, code)
    print(f"code snapshot restored from commit {commit}", flush=True)


def write_commit_code(commit, folder):
    """Write the modules a run imports (is_code) as they were at a commit into folder, with `git show`."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit], capture_output=True, text=True, check=True)
    for name in names.stdout.split():
        if is_code(name):
            text = subprocess.run(["git", "show", f"{commit}:{name}"], capture_output=True, text=True, check=True).stdout
            os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)


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
        shipped = SHIPPED_STARTS.get(mode)
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


def select(mode, groups, seeds, script="train.py"):
    """The jobs of the chosen groups (all if None) plus the runs they depend on, dependencies first."""
    steps = MODES[mode]["steps"]
    runs = {f"{group}/{name}": (group, name, overrides, deps) for group, name, overrides, deps in grid(steps, mode)}
    wanted = [key for key, (group, *_) in runs.items() if groups is None or group in groups or key in groups]
    closure, todo = [], list(wanted)
    while todo:
        key = todo.pop(0)
        if key in closure:
            continue
        closure.append(key)
        todo.extend(runs[key][3])
    ordered = sorted(closure, key=lambda key: (bool(runs[key][3]), list(runs).index(key)))
    jobs = []  # seed by seed: a grid stopped early holds every method of its first seeds, the pairs the stats need
    for seed in seeds:
        for key in ordered:
            group, name, overrides, deps = runs[key]
            jobs.append(dict(key=key, seed=seed, dir=run_dir(mode, key, seed),
                             deps=[run_dir(mode, dep, seed) for dep in deps],
                             script=script, args=train_args(mode, group, name, overrides, seed)))
    return jobs


def weights_fingerprint(folder):
    """The identity of a model folder's weights: the sha256 of model.safetensors and the sum of |w| over its
    tensors (float64), which tells a start policy rebuilt on another CPU (same sum to rounding) from another one."""
    from safetensors import safe_open

    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    abs_sum = 0.0
    with safe_open(path, "pt") as weights:
        for name in weights.keys():
            abs_sum += weights.get_tensor(name).double().abs().sum().item()
    return dict(sha256=sha256, abs_sum=abs_sum)


def same_start(recorded, here, rtol=1e-5):
    """Whether a recorded start_weights fingerprint names the weights fingerprinted here: the same file, or the
    same sum of |w| to rtol (a warm start rebuilt by the same code and seed on a CPU that rounds differently)."""
    if not recorded:
        return False
    return recorded["sha256"] == here["sha256"] or abs(recorded["abs_sum"] - here["abs_sum"]) <= rtol * here["abs_sum"]


def read_record(results):
    """{(run, seed): record} of a grid's results file ({} when there is none)."""
    if not os.path.exists(results):
        return {}
    with open(results) as f:
        return {(record["run"], record["seed"]): record for record in map(json.loads, filter(str.strip, f))}


def recorded_runs(jobs, results, verify=True):
    """{(run, seed): record} of the jobs the results file already holds, started from the weights the job would
    start from here. A recorded run whose start differs (or that has no fingerprint) is left out, to be run again.
    verify=False (a dry run, whose warm start may not be built yet) keeps every recorded job unchecked."""
    records, kept, fingerprints = read_record(results), {}, {}
    for job in jobs:
        record = records.get((job["key"], job["seed"]))
        if record is None:
            continue
        if not verify:
            kept[(job["key"], job["seed"])] = record
            continue
        model = next(arg.split("=", 1)[1] for arg in job["args"] if arg.startswith("--model="))
        if model not in fingerprints:
            fingerprints[model] = weights_fingerprint(model) if os.path.exists(model) else None
        if fingerprints[model] and same_start(record.get("start_weights"), fingerprints[model]):
            kept[(job["key"], job["seed"])] = record
        else:
            print(f"{results}: {job['key']} seed {job['seed']} started from other weights than {model}: run again")
    return kept


def write_grid_record(mode, jobs, recorded, results):
    """Rewrite the grid's record: every complete run folder of the mode, and the recorded runs whose folders are
    not here, less those of `jobs` left out of `recorded` (another start: they are run again). Written to a
    temporary file and renamed, so a crash never leaves half a record. Returns the records."""
    from lab.records import compact_runs, write_records

    stale = {(job["key"], job["seed"]) for job in jobs} - set(recorded)
    by_run = {key: record for key, record in read_record(results).items() if key not in stale}
    fingerprints, code = {}, snapshot_commit(mode)
    for record in compact_runs(os.path.join(RUNS, mode))[0]:
        key, model = (record["run"], record["seed"]), record["config"].get("model", "")
        if not is_complete(run_dir(mode, *key)):
            continue
        if model not in fingerprints:
            fingerprints[model] = weights_fingerprint(model) if os.path.exists(model) else None
        by_run[key] = dict(record, start_weights=fingerprints[model], code=code)
    records = [by_run[key] for key in sorted(by_run)]
    write_records(records, results + ".tmp")
    os.replace(results + ".tmp", results)
    return records


IGNORED = ("wall_seconds", "step_time")  # how long it took, not what it computed: not compared by rerun_row


def record_differences(recorded, rerun, rtol=1e-4, atol=1e-6, path=""):
    """[(path, recorded value, rerun value)] where two record lines differ: numbers beyond atol + rtol * |recorded|
    (floats are rounded to 6 significant digits in a record), anything else unequal; the keys of IGNORED are
    skipped. Returns (differences, number of values compared)."""
    if isinstance(recorded, dict) and isinstance(rerun, dict):
        differences, compared = [], 0
        for key in sorted(set(recorded) | set(rerun)):
            if key in IGNORED:
                continue
            if key not in recorded or key not in rerun:
                differences.append((f"{path}/{key}", recorded.get(key, "<missing>"), rerun.get(key, "<missing>")))
                continue
            found, count = record_differences(recorded[key], rerun[key], rtol, atol, f"{path}/{key}")
            differences, compared = differences + found, compared + count
        return differences, compared
    if isinstance(recorded, list) and isinstance(rerun, list) and len(recorded) == len(rerun):
        differences, compared = [], 0
        for i, (a, b) in enumerate(zip(recorded, rerun)):
            found, count = record_differences(a, b, rtol, atol, f"{path}/{i}")
            differences, compared = differences + found, compared + count
        return differences, compared
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (recorded, rerun))
    if numbers and recorded is not None and rerun is not None:
        same = abs(recorded - rerun) <= atol + rtol * abs(recorded) or (recorded != recorded and rerun != rerun)
    else:
        same = recorded == rerun
    return ([] if same else [(path, recorded, rerun)]), 1


def rerun_row(mode, run, seed, keep_dir=None):
    """Run one recorded row of a grid again, as the grid ran it, and compare its record line with the committed one.

    The row's train.py command runs in a temporary folder laid out like the repository: the code of the commit the
    row names (its "code", restored with git show at the command's script path) and the shipped start policy of the
    mode (SHIPPED_STARTS, fingerprint checked against the row's start_weights) at the command's --model path; no
    eval cache, so the step-0 evaluation is computed again too. Its folder is compacted as the grid does
    (lab.records.run_record) and compared value by value (record_differences: wall time and step times aside). Returns
    (differences, compared, wall seconds). keep_dir: run there instead of a temporary folder, and keep it."""
    import tempfile

    from infra.cli import CommandError
    from lab.records import run_record

    results = os.path.join(RESULTS, f"{mode}.jsonl")
    records = read_record(results)
    key = run if "/" in run else next((r for r, s in records if r.split("/")[-1] == run), run)
    if (key, seed) not in records:
        rows = sorted({r for r, _ in records})
        raise CommandError(f"{results} has no row {key!r} seed {seed}; its runs: {', '.join(rows) or 'none'}", 2)
    recorded = records[(key, seed)]
    shipped = SHIPPED_STARTS.get(mode)
    if not shipped or not os.path.exists(os.path.join(shipped, "model.safetensors")):
        raise CommandError(f"mode {mode!r} has no shipped start policy (SHIPPED_STARTS): its rows cannot be rerun", 2)
    start = weights_fingerprint(shipped)
    if not same_start(recorded.get("start_weights"), start):
        raise CommandError(f"{key} seed {seed} started from {recorded.get('start_weights')}, not from the shipped "
                           f"{shipped} ({start})")
    commit = recorded.get("code")
    if not commit or commit.endswith("+uncommitted"):
        raise CommandError(f"{key} seed {seed} names no committed code ({commit!r}): it cannot be rerun as it ran")
    script, *options = recorded["command"].split(" --")
    script = script.split()[-1]  # "python experiments/runs/<mode>/code/train.py"
    options = ["--" + option for option in options]
    config = recorded["config"]
    root = keep_dir or tempfile.mkdtemp(prefix=f"rerun-{mode}-")
    try:
        write_commit_code(commit, os.path.join(root, os.path.dirname(script)))
        shutil.copytree(shipped, os.path.join(root, config["model"]), dirs_exist_ok=True)
        out_dir = os.path.join(root, config["out_dir"])
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "command.txt"), "w") as f:
            f.write(recorded["command"] + "\n")
        print(f"rerun {key} seed {seed} in {root}: code {commit[:8]}, start {shipped}", flush=True)
        started = time.time()
        with open(os.path.join(out_dir, "log.txt"), "w") as log:
            status = subprocess.run([sys.executable, script, *options], cwd=root, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.time() - started
        if status.returncode != 0 or not is_complete(out_dir):
            with open(os.path.join(out_dir, "log.txt")) as f:
                raise CommandError(f"the rerun of {key} seed {seed} failed (exit {status.returncode}); log tail:\n"
                                   f"{f.read()[-1500:]}")
        with open(os.path.join(out_dir, "wall.json"), "w") as f:
            json.dump({"wall_seconds": seconds}, f)
        rerun = run_record(out_dir, recorded["train_every"], recorded["grid"], recorded["run"])
        rerun = json.loads(json.dumps(dict(rerun, start_weights=weights_fingerprint(os.path.join(root, config["model"])),
                                           code=commit)))
    finally:
        if not keep_dir:
            shutil.rmtree(root, ignore_errors=True)
    differences, compared = record_differences(recorded, rerun)
    return differences, compared, seconds


def summary_line(path):
    with open(os.path.join(path, "eval.json")) as f:
        evals = json.load(f)
    after = evals["after"]["average"]
    return f"avg pass@1 {after['pass@1']:.3f} pass@8 {after['pass@8']:.3f}"


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
        differences, compared, seconds = rerun_row(args.mode, args.rerun, int(args.seeds))
        for path, recorded, rerun in differences[:20]:
            print(f"  {path}: recorded {recorded!r}, rerun {rerun!r}")
        largest = max((abs(a - b) for _, a, b in differences
                       if all(isinstance(x, (int, float)) for x in (a, b))), default=0.0)
        print(f"{compared} values compared (wall and step times aside): {len(differences)} differ"
              f"{f' (largest numeric difference {largest:.3g})' if differences else ''}; the rerun took {seconds:.0f} s")
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
    results = os.path.join(RESULTS, f"{args.mode}.jsonl")
    if not args.dry_run:
        ensure_warmstart(args.mode)
        if args.mode in SAME_START_AS:
            family = os.path.join(RESULTS, f"{SAME_START_AS[args.mode]}.jsonl")
            wanted = next(iter(read_record(family).values()), {}).get("start_weights")
            here = weights_fingerprint(MODES[args.mode]["warmstart"])
            if not same_start(wanted, here):
                usage_error(f"--{args.mode} must start from the start policy {family} names ({wanted}); the warm "
                            f"start built here is {here}: ship that start (SHIPPED_STARTS) or run where it rebuilds")
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
    sys.path.insert(0, ROOT)  # run as a script: infra/ and the method live in the repository root
    from infra.cli import run

    run(main)
