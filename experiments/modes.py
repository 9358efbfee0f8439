"""The grids of experiments/maze.py: what every run of a mode is (its train.py arguments, seeds, start policy and
held-out mazes), without running anything. experiments/maze.py runs them; experiments/record.py records them.

Paths are relative to the repository root (ROOT): the runner works from there.
"""
import os

from experiments.start import START  # the shipped start policy, assets/tiny-maze-start

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
# the start policies shipped in the repository (HF folders like assets/tiny-maze), by mode: a mode's runs start
# from it (its --model path, or copied into the mode's warm start folder), so a clone on any CPU starts from the
# weights its record names, and one row of its record reruns (record.rerun_row). The primary family's start
# (fingerprint 40d36121...) was rebuilt to other weights wherever it was tried (RESULTS.md): the family is
# replicated from assets/tiny-maze-start (experiments/start.py), trained on a split without any held-out maze
SHIPPED_STARTS = {"replication": START, "h11": START}  # H11 re-declared for it (RESULTS.md)
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
    # the primary family replicated (RESULTS.md, "Replication"): the same declaration, runs and held-out mazes, from
    # the shipped start (START: the family's train split, so no held-out maze) instead of the unshipped 40d36121
    "replication": dict(steps=LONG["max_steps"], seeds=tuple(range(10)), warmstart=START, train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        n_test=PRIMARY_TEST, eval_every=LONG["max_steps"], model=START,
        eval_cache=os.path.join(RUNS, "replication", "eval-cache"))),
    # the confirmatory test of H11 (RESULTS.md, declared before its runs, re-declared for the shipped start before
    # any run): analytical Pass@k against Pass@1 on the unseen sizes' pass@128, new seeds 10-28, twice the family's
    # unseen mazes (the first 300 9x9 and 120 11x11 are the family's); the same split of train mazes, and the
    # replication's start policy (START, shipped), which was trained on it
    "h11": dict(steps=LONG["max_steps"], seeds=tuple(range(10, 29)), warmstart=START, train=dict(
        {key: value for key, value in LONG.items() if key not in ("model", "max_steps")},
        n_test=H11_TEST, eval_every=LONG["max_steps"], model=START,
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
    if mode in ("primary", "replication"):  # the replication's runs keep the family's names (primary/<method>)
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

