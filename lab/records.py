"""The record of a grid: one dict per run, what every table, verdict and figure of the lab reads.

    {"grid", "run": "<group>/<name>", "seed", "command", "config", "wall_seconds", "start_step",
     "evals": [[step, evaluation], ...], "train_every", "train": {"step": [...], metric: [...]}}

Runs are train.py out_dirs (metrics.jsonl: one line per step, plus {"step": s, "eval": {...}} lines with the
held-out evaluation of evaluate.py). A method is several seeds of one configuration,
<runs_root>/<group>/<name>-seed<s>/, as experiments/maze.py lays them out. A grid's records are one JSON line
each in experiments/results/<grid>.jsonl (compact_runs writes them from the raw run folders, which git ignores),
so a results file redraws every figure and table without the run folders; start_step is where a run continued
from (the continual group's second half starts at the end of its first). Below the reading and writing: the
accessors of an evaluation (a metric, a pass@k curve, per-item correct counts) and of a method's curves.
"""
import ast
import gzip
import json
import math
import os
import re
import sys

import numpy as np

SEEN_SIZES = (5, 7)  # the maze sizes every run of experiments/maze.py trains on; larger test sizes are unseen


def held_out_groups(evaluation):
    """The keys of an evaluation's per_group: maze sizes as ints, sorted; a reasoning-gym task's name as is."""
    return sorted((int(key) if str(key).isdigit() else key for key in evaluation["per_group"]), key=group_order)


def group_order(key):
    return (isinstance(key, str), key)  # maze sizes first, by size


def group_label(key):
    return f"{key}x{key}{' (unseen)' if key not in SEEN_SIZES else ''}" if isinstance(key, int) else str(key)


# -----------------------------------------------------------------------------
# reading and compacting run folders
RECORD_METRICS = ("reward", "entropy", "response_length", "zero_advantage_prompts", "eta", "grad_norm", "step_time")
RENAMED = {"per_size": "per_group", "n_mazes": "n_items"}  # evaluate.py's earlier key names
_WARNED = set()  # metrics files whose cut-off last line was already reported


def normalise_eval(evaluation):
    """An evaluation with evaluate.py's current keys: per_group (earlier per_size) and, in each group, n_items
    (earlier n_mazes). The one place where the two vintages of eval.json meet."""
    out = {RENAMED.get(key, key): value for key, value in evaluation.items()}
    if "per_group" in out:
        out["per_group"] = {group: {RENAMED.get(key, key): value for key, value in cell.items()}
                            for group, cell in out["per_group"].items()}
    return out


def load_run(run_dir):
    """(train records, [(step, eval)]) of one out_dir's metrics.jsonl, evaluations normalised (normalise_eval).

    A last line that is not a complete record (cut off by a crash mid-write) is skipped with a one-line
    warning on stderr, so a run that crashed keeps its results readable; a bad line anywhere else is a
    ValueError naming the file and the line."""
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path) as f:
        lines = [(number, line) for number, line in enumerate(f, 1) if line.strip()]
    train, evals = [], []
    for number, line in lines:
        try:
            record = json.loads(line)
            step = record["step"]
        except (ValueError, TypeError, KeyError):
            if number == lines[-1][0]:
                if path not in _WARNED:
                    _WARNED.add(path)
                    print(f"warning: {path}: skipped its last line {number}, not a complete record (cut off by a "
                          f"crash?): {line.strip()[:40]!r}", file=sys.stderr)
                continue
            raise ValueError(f"{path} line {number} is not a metrics record: {line.strip()[:60]!r}") from None
        (evals.append((step, normalise_eval(record["eval"]))) if "eval" in record else train.append(record))
    return train, evals


def rounded(value, digits=6):
    """Floats to `digits` significant digits, recursively (a record's size, not its meaning)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def thin(train, every):
    """Per-step training records -> columns {"step": [...], metric: [...]}: the mean over each block of `every`
    steps, labelled by the block's last step (every=1: every step as is)."""
    keys = [key for key in RECORD_METRICS if any(key in r for r in train)]
    keys += sorted({key for r in train for key in r if re.fullmatch(r"pass@\d+", key)})
    blocks = {}
    for r in train:
        blocks.setdefault((r["step"] - 1) // every, []).append(r)
    columns = {"step": [max(r["step"] for r in block) for _, block in sorted(blocks.items())]}
    for key in keys:
        columns[key] = [float(np.mean([r[key] for r in block if key in r])) if any(key in r for r in block) else None
                        for _, block in sorted(blocks.items())]
    return columns


def parse_command(command):
    """train.py's --key=value arguments of a command line, as a dict: numbers and booleans as such, the rest
    (strings, tuples, dicts) as written."""
    config = {}
    for part in (" " + command.strip()).split(" --")[1:]:
        key, _, value = part.partition("=")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        config[key] = parsed if isinstance(parsed, (int, float, bool)) else value
    return config


def run_record(run_dir, every=1, grid=None, run=None):
    """One run's record (see above) from its out_dir: its command.txt, wall.json and metrics.jsonl."""
    train, evals = load_run(run_dir)
    seed = os.path.basename(os.path.normpath(run_dir)).rpartition("-seed")[2]
    read = lambda name: open(os.path.join(run_dir, name)).read() if os.path.exists(os.path.join(run_dir, name)) else None  # noqa: E731
    command = (read("command.txt") or "").strip() or None
    wall = read("wall.json")
    return dict(grid=grid, run=run, seed=int(seed) if seed.isdigit() else None, command=command,
                config=parse_command(command) if command else {},
                wall_seconds=rounded(json.loads(wall)["wall_seconds"], 4) if wall else None, start_step=0,
                evals=[[step, rounded(evaluation)] for step, evaluation in evals], train_every=every,
                train=rounded(thin(train, every), 5))


def sort_runs(runs_root, known=None):
    """Every folder under runs_root with a metrics.jsonl, sorted into usable runs (a <group>/<name>-seed<N> folder,
    readable, with a held-out evaluation, and when `known` is given one of its runs) and the others: (usable
    folders, {skipped folder: why})."""
    usable, skipped = [], {}
    for folder, _, files in sorted(os.walk(runs_root)):
        if "metrics.jsonl" not in files:
            continue
        run, _, seed = os.path.relpath(folder, runs_root).replace(os.sep, "/").rpartition("-seed")
        if not re.fullmatch(r"\d+", seed) or "/" not in run:
            skipped[folder] = "not a <group>/<name>-seed<N> run folder as experiments/maze.py writes"
            continue
        if known is not None and run not in known:
            skipped[folder] = f"{run!r} is not a run that lab/grids.py compares"
            continue
        try:
            evaluations = load_run(folder)[1]
        except (OSError, ValueError) as error:
            skipped[folder] = f"unreadable: {error}"
            continue
        if not evaluations:
            skipped[folder] = "no held-out evaluation in its metrics.jsonl yet"
            continue
        usable.append(folder)
    return usable, skipped


def compact_runs(runs_root, every=10):
    """The records of every <group>/<name>-seed<N> run folder under runs_root with a held-out evaluation, sorted
    by run and seed, and {skipped folder: why}. A run initialised from another run's checkpoint (config
    init_from) starts at that run's last step."""
    usable, skipped = sort_runs(runs_root)
    grid = os.path.basename(os.path.normpath(runs_root))
    records = [run_record(folder, every, grid, os.path.relpath(folder, runs_root).replace(os.sep, "/").rpartition("-seed")[0])
               for folder in usable]
    by_folder = {(record["run"], record["seed"]): record for record in records}
    for record in records:
        init = str(record["config"].get("init_from", ""))
        parent = os.path.dirname(os.path.normpath(init)) if init.endswith("ckpt") else ""
        run, _, seed = os.path.relpath(parent, runs_root).replace(os.sep, "/").rpartition("-seed") if parent else ("", "", "")
        source = by_folder.get((run, int(seed))) if seed.isdigit() else None
        if source:
            record["start_step"] = source["start_step"] + source["evals"][-1][0]
    return sorted(records, key=lambda r: (r["run"], r["seed"])), skipped


def write_records(records, path):
    """One JSON line per record; gzip when the path ends in .gz."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")


def load_records(path):
    """The records of a results file (.jsonl or .jsonl.gz), evaluations normalised."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for record in records:
        record["evals"] = [(step, normalise_eval(evaluation)) for step, evaluation in record["evals"]]
    return records


# -----------------------------------------------------------------------------
# what an evaluation and a method's runs hold
def eval_value(evaluation, metric):
    """metric: 'avg:pass@1', '9:pass@8' (one group), or a top-level key such as 'negative_answer_diversity'."""
    if ":" in metric:
        where, key = metric.split(":")
        cell = evaluation["average"] if where == "avg" else evaluation["per_group"].get(where)
        return math.nan if cell is None else cell[key]
    value = evaluation.get(metric)
    return math.nan if value is None else value


def final_eval(run):
    """(step, eval) of the last held-out evaluation of a run."""
    step, evaluation = run["evals"][-1]
    return step + run["start_step"], evaluation


def group_cell(evaluation, group):
    cells = evaluation["per_group"]
    return cells[str(group)] if str(group) in cells else cells[group]


def curve_of(evaluation, groups=None):
    """{k: pass@k} of one evaluation: averaged over `groups` (None: the eval's own average over all groups)."""
    if groups is None:
        return {int(k): value for k, value in evaluation["average_pass@k_curve"].items()}
    curves = [group_cell(evaluation, g)["pass@k_curve"] for g in groups]
    return {int(k): sum(curve[k] for curve in curves) / len(curves) for k in curves[0]}


def correct_of(evaluation, groups=None):
    """{item index: correct samples} of one evaluation, over `groups` (None: every held-out item)."""
    if groups is None:
        return evaluation["correct"]
    return {index: count for g in groups for index, count in group_cell(evaluation, g)["correct"].items()}


def curve_runs(runs):
    """[(seed, start eval, final eval)] of the runs whose first and last evaluations have pass@k curves to the
    same n (a step-0 evaluation of its own; the last one is the run's end)."""
    found = []
    for run in runs:
        (first_step, first), (_, last) = run["evals"][0], run["evals"][-1]
        if first_step == 0 and "average_pass@k_curve" in first and "average_pass@k_curve" in last and \
                first["n_samples"] == last["n_samples"]:
            found.append((run["seed"], first, last))
    return found


def eval_curves(runs, metric):
    """steps (those all seeds have) and values (n_seeds, n_steps) of a held-out metric."""
    per_seed = [{step + run["start_step"]: eval_value(evaluation, metric) for step, evaluation in run["evals"]}
                for run in runs]
    steps = sorted(set.intersection(*(set(curve) for curve in per_seed))) if per_seed else []
    return np.array(steps), np.array([[curve[s] for s in steps] for curve in per_seed])


def train_curves(runs, key="reward", smooth=None):
    """steps and (n_seeds, n_steps) of a training metric; runs recorded at every step are moving-averaged over
    `smooth` steps (default 5), thinned records (means over blocks of steps) are drawn as they are."""
    per_seed = [{step + run["start_step"]: value for step, value in zip(run["train"]["step"], run["train"].get(key, []))
                 if value is not None} for run in runs]
    steps = sorted(set.intersection(*(set(curve) for curve in per_seed))) if per_seed else []
    values = np.array([[curve[s] for s in steps] for curve in per_seed])
    smooth = (5 if all(run["train_every"] == 1 for run in runs) else 1) if smooth is None else smooth
    if smooth > 1 and values.size:
        kernel = np.ones(smooth) / smooth
        values = np.array([np.convolve(np.pad(row, (smooth - 1, 0), mode="edge"), kernel, mode="valid") for row in values])
    return np.array(steps), values


def by_seed(runs):
    return {run["seed"]: run for run in runs}


def wall_seconds(runs):
    return [run["wall_seconds"] for run in runs if run.get("wall_seconds") is not None]
