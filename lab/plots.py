"""Figures and tables: advantage curves of every estimator, training curves, per-group tables and verdicts of runs.

    python -m lab.plots experiments/results/long.jsonl   # a grid's figures + tables from its records -> experiments/figures/
    python -m lab.plots experiments/runs/long --compact experiments/results/long.jsonl   # raw run folders -> records
    python -m lab.plots --verdicts experiments/results/long.jsonl experiments/results/tasks.jsonl --write RESULTS.md
    python -m lab.plots out                              # the curves of one train.py out_dir
    python -m lab.plots --advantages-only                # figures 9 and 18 only: no training needed
    python -m lab.plots --estimator-gradients            # what each estimator optimises (exact, Bernoulli policy)

Runs are train.py out_dirs (metrics.jsonl: one line per step, plus {"step": s, "eval": {...}} lines with the
held-out evaluation). A method is several seeds of one configuration, <runs_root>/<group>/<name>-seed<s>/, as
experiments/maze.py lays them out. A grid's runs are kept as records, one JSON line per run (compact_runs):
everything below reads records, so a results file redraws every figure and table without the run folders.
Figures show the mean over seeds with the min-max band, tables mean +- std (sample std, ddof=1) over seeds,
paired changes with their 95% t intervals; the verdict tables add a bootstrap over seeds and held-out items and
corrected p-values (stats.py).
"""
import argparse
import ast
import gzip
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from advantage import ADVANTAGES, advantage_curves, compute_advantages, expected_gradient  # noqa: E402
from lab import stats  # noqa: E402
from evaluate import crossing_k  # noqa: E402

FIGURES = os.path.join("experiments", "figures")
SEEN_SIZES = (5, 7)  # the maze sizes every run of experiments/maze.py trains on; larger test sizes are unseen


def held_out_groups(evaluation):
    """The keys of an evaluation's per_group: maze sizes as ints, sorted; a reasoning-gym task's name as is."""
    return sorted((int(key) if str(key).isdigit() else key for key in evaluation["per_group"]), key=group_order)


def group_order(key):
    return (isinstance(key, str), key)  # maze sizes first, by size


def group_label(key):
    return f"{key}x{key}{' (unseen)' if key not in SEEN_SIZES else ''}" if isinstance(key, int) else str(key)


# estimators whose advantage depends on random draws or on the order of the responses (unlikeliness: on
# the responses' likelihood ranks, here random): averaged
DRAWS = {"passk_bootstrap": 200, "noise_rewards": 200, "passk_full": 200, "unlikeliness": 200}


# -----------------------------------------------------------------------------
# advantage curves (figures 9 and 18), from advantage.py alone
def expected_curves(name, n_rollouts, k, draws=None, **options):
    """A_pos, A_neg, eta against N_pos = 0..N: a (3, N + 1) tensor.

    Deterministic estimators: advantage.advantage_curves. Estimators in DRAWS (random groups or flips, or
    passk_full whose disjoint groups depend on the order of the responses) are averaged over `draws`
    random orders and generators: A_pos / A_neg are then the mean advantage of a correct / wrong response.
    passk_adaptive gets a per-prompt entropy that falls with N_pos (hard prompts are the uncertain ones),
    so its high-entropy half (pass1) is the low-accuracy half, the rest is passk_analytical."""
    if name == "passk_adaptive" and "entropies" not in options:
        options = dict(options, entropies=-torch.arange(n_rollouts + 1, dtype=torch.float64))
    draws = DRAWS.get(name, 1) if draws is None else draws
    if draws == 1:
        return torch.stack(advantage_curves(name, n_rollouts, k, **options))
    n_pos = torch.arange(n_rollouts + 1)
    sums = torch.zeros(3, n_rollouts + 1, dtype=torch.float64)
    for draw in range(draws):
        generator = torch.Generator().manual_seed(draw)
        order = torch.rand(n_rollouts + 1, n_rollouts, generator=generator).argsort(-1)
        rewards = (order < n_pos[:, None]).float()  # row p: p correct responses in a random order
        context = {"k": k, "generator": generator, "sequence_logprobs": torch.randn(rewards.shape, generator=generator)}
        advantages = compute_advantages(name, rewards, options, **context).double()
        correct = rewards.bool()
        sums[0] += (advantages * correct).sum(-1) / correct.sum(-1).clamp_min(1)
        sums[1] += (advantages * ~correct).sum(-1) / (~correct).sum(-1).clamp_min(1)
        sums[2] += advantages.abs().sum(-1)
    curves = sums / draws
    curves[0, 0] = curves[1, -1] = math.nan  # no correct response at N_pos = 0, no wrong one at N_pos = N
    return curves


def plot_advantage_curves(path, n_rollouts=16, k=4, names=None):
    """A_pos, A_neg and eta (eq. 16) against N_pos for every registered estimator. Returns the names."""
    names = list(ADVANTAGES) if names is None else names
    n_pos = np.arange(n_rollouts + 1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.4))
    styles = ["-", "--", "-.", ":"]
    for i, name in enumerate(names):
        a_pos, a_neg, eta = expected_curves(name, n_rollouts, k).numpy()
        label = name + (f" (mean of {DRAWS[name]} random orders/draws)" if name in DRAWS else "")
        for axis, values in zip(axes, (a_pos, a_neg, eta)):
            axis.plot(n_pos, values, styles[i % 4], marker=".", color=f"C{i}", label=label)
    titles = (r"$\hat A_{pos}$ (advantage of a correct response)", r"$\hat A_{neg}$ (advantage of a wrong response)",
              r"$\eta = N_{pos}|\hat A_{pos}| + N_{neg}|\hat A_{neg}|$ (eq. 16)")
    for axis, title in zip(axes, titles):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(f"N_pos (of N = {n_rollouts} rollouts)")
        axis.axhline(0, color="grey", lw=0.5)
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    fig.suptitle(f"Advantage curves of every estimator in advantage.py (N = {n_rollouts}, k = {k}; default options; "
                 "passk_adaptive: pass1 for the low-N_pos half, passk for the rest)", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return names


def plot_advantage_k(path, n_rollouts=16, ks=(2, 4, 8)):
    """pass1 against passk_analytical for several k: larger k, smaller advantages (sec. 3.4)."""
    n_pos = np.arange(n_rollouts + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (name, k) in enumerate([("pass1", 1)] + [("passk_analytical", k) for k in ks]):
        curves = expected_curves(name, n_rollouts, k).numpy()
        for axis, values in zip(axes, curves):
            axis.plot(n_pos, values, marker=".", color=f"C{i}", label="pass1" if name == "pass1" else f"passk k={k}")
    for axis, title in zip(axes, ("A_pos", "A_neg", "eta")):
        axis.set_title(title)
        axis.set_xlabel(f"N_pos (of N = {n_rollouts})")
        axis.axhline(0, color="grey", lw=0.5)
        axis.grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.suptitle(f"pass1 and passk_analytical for k in {tuple(ks)} (N = {n_rollouts}): a larger k gives smaller "
                 "advantages, i.e. shorter steps (sec. 3.4)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -----------------------------------------------------------------------------
# what does each estimator optimise? (issue 13), from advantage.expected_gradient alone
def plot_estimator_gradients(path, n_rollouts=16, k=4, names=None, mu_values=None):
    """Left: E[sum_i A_i s(r_i)] against mu for the one-parameter Bernoulli policy (exact enumeration of
    all 2^n reward vectors, advantage.expected_gradient) for every registered estimator, each scaled to
    its own maximum |mean| over mu, over the true d/dmu pass@k = k (1-mu)^(k-1) for k = 1, 2, 4, 8, 16
    (each scaled to its maximum, k): same shape = same objective. Right: the variance of the estimate,
    divided by the square of the same scale (noise against the estimator's largest signal).
    Returns {name: (mean, variance)} (unscaled, float64 numpy) at the mu grid."""
    names = list(ADVANTAGES) if names is None else names
    mu = np.linspace(0.01, 0.99, 99) if mu_values is None else np.asarray(mu_values, dtype=float)
    results = {}
    fig, axes = plt.subplots(1, 2, figsize=(18, 8))
    for ref_k in (1, 2, 4, 8, 16):
        if ref_k <= n_rollouts:
            reference = (1 - mu) ** (ref_k - 1)
            axes[0].plot(mu, reference, color="black", lw=7, alpha=0.15)
            at = int(np.argmin(np.abs(reference - 0.5))) if ref_k > 1 else len(mu) // 2
            axes[0].annotate(f"pass@{ref_k}", (mu[at], reference[at]), fontsize=9, alpha=0.7, ha="left", va="bottom")
    colors = plt.get_cmap("tab20")
    styles, markers = ["-", "--", "-.", ":"], ["o", "s", "^", "v", "D", "x", "+", "*", "P"]
    for i, name in enumerate(names):
        mean, variance = (values.numpy() for values in expected_gradient(name, n_rollouts, k, mu))
        results[name] = (mean, variance)
        scale = np.abs(mean).max() or 1.0
        style = dict(color=colors(i % 20), ls=styles[i % 4], lw=1.6, label=name, marker=markers[i % 9],
                     markevery=(i % 7, 14), markersize=5)
        axes[0].plot(mu, mean / scale, **style)
        axes[1].plot(mu, np.maximum(variance / scale**2, 1e-12), **style)
    axes[0].set_title(r"$E[\sum_i A_i\, s(r_i)]$, each curve scaled to its max |value|; thick grey: true "
                      r"$d\,$pass@k$/d\mu \propto (1-\mu)^{k-1}$, k = 1, 2, 4, 8, 16", fontsize=10)
    axes[1].set_title(r"Var$[\sum_i A_i\, s(r_i)]$ / scale$^2$ (the left panel's scale; floored at $10^{-12}$)", fontsize=10)
    axes[1].set_yscale("log")
    for axis in axes:
        axis.set_xlabel(r"$\mu$ = P(a response is correct)")
        axis.axhline(0, color="grey", lw=0.5)
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle(f"What each estimator optimises: exact expected gradient for a Bernoulli(mu) policy, N = {n_rollouts} "
                 f"rollouts, k = {k}, default options, s(r) = r/mu - (1-r)/(1-mu)\ncontext: random entropies "
                 "(passk_adaptive) and sequence logprobs (unlikeliness); passk_bootstrap / noise_rewards: one seeded "
                 "generator", fontsize=11)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return results


# -----------------------------------------------------------------------------
# records: one dict per run, what every figure and table below reads
#   {"grid", "run": "<group>/<name>", "seed", "command", "config", "wall_seconds", "start_step",
#    "evals": [[step, evaluation], ...], "train_every", "train": {"step": [...], metric: [...]}}
# A grid's records are one JSON line each in experiments/results/<grid>.jsonl (compact_runs writes them from the
# raw run folders, which git ignores); start_step is where a run continued from (the continual group's second
# half starts at the end of its first).
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


def eval_value(evaluation, metric):
    """metric: 'avg:pass@1', '9:pass@8' (one group), or a top-level key such as 'negative_answer_diversity'."""
    if ":" in metric:
        where, key = metric.split(":")
        cell = evaluation["average"] if where == "avg" else evaluation["per_group"].get(where)
        return math.nan if cell is None else cell[key]
    value = evaluation.get(metric)
    return math.nan if value is None else value


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


PANELS = [("avg:pass@1", "held-out pass@1 (avg over groups)"), ("avg:pass@8", "held-out pass@8 (avg over groups)"),
          ("9:pass@8", "pass@8 on 9x9 (size unseen in training)"), ("reward", "train reward"),
          ("negative_answer_diversity", "negative-answer diversity (held out)"), ("entropy", "policy entropy (held out, nats/token)")]


def plot_comparison(methods, path, title=""):
    """methods: [(label, runs)]. A 2x3 figure of held-out and training curves (a task without a 9x9 maze, e.g. a
    reasoning-gym task, gets its held-out response length in that panel)."""
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    first = next((runs[0]["evals"] for _, runs in methods if runs), [])
    mazes = not first or "9" in first[0][1]["per_group"]
    panels = PANELS if mazes else [panel if panel[0] != "9:pass@8" else
                                   ("response_length", "held-out response length (tokens)") for panel in PANELS]
    for i, (label, runs) in enumerate(methods):
        if not runs:
            continue
        for axis, (metric, _) in zip(axes.flat, panels):
            steps, values = train_curves(runs, "reward") if metric == "reward" else eval_curves(runs, metric)
            if not len(steps):
                continue
            axis.plot(steps, values.mean(0), marker="." if metric != "reward" else None, color=f"C{i}",
                      label=f"{label} ({len(runs)} seeds)")
            if len(runs) > 1:
                axis.fill_between(steps, values.min(0), values.max(0), color=f"C{i}", alpha=0.15)
    for axis, (_, name) in zip(axes.flat, panels):
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("RL step")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title + "  (line: mean over seeds, band: min-max)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def final_eval(run):
    """(step, eval) of the last held-out evaluation of a run."""
    step, evaluation = run["evals"][-1]
    return step + run["start_step"], evaluation


def mean_std(values):
    values = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if not len(values):
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def cell(values, scale=100.0, digits=1):
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "-"
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if not math.isnan(std) else "")


def delta_cell(deltas, scale=100.0, digits=1):
    """Paired change over seeds: 'mean [lo, hi]', the 95% paired-t interval of the mean (stats.paired_t), marked
    ' *' when it excludes 0 (uncorrected: the verdict tables correct for multiplicity). One seed: the mean alone."""
    result = stats.paired_t(deltas)
    if math.isnan(result["mean"]):
        return "-"
    if math.isnan(result["lo"]):
        return f"{scale * result['mean']:.{digits}f}"
    text = f"{scale * result['mean']:.{digits}f} [{scale * result['lo']:.{digits}f}, {scale * result['hi']:.{digits}f}]"
    return text + (" *" if result["lo"] > 0 or result["hi"] < 0 else "")


def by_seed(runs):
    return {run["seed"]: run for run in runs}


def per_size_table(methods, baseline_runs=None, reference=0):
    """Markdown table of the final held-out evaluation: per held-out group and averaged, pass@1 / pass@8 in %,
    mean ± std over seeds; the negative-answer diversity (%) and policy entropy (nats/token); the paired (same
    seed) change in avg pass@1, pass@8, diversity and entropy against methods[reference] (see delta_cell);
    baseline_runs adds their step-0 evaluation (the starting policy)."""
    rows = []
    if baseline_runs:
        rows.append(("start (step 0)", [run["evals"][0][1] for run in baseline_runs], None, 0))
    for label, runs in methods:
        if runs:
            finals = [final_eval(run) for run in runs]
            rows.append((label, [evaluation for _, evaluation in finals], runs, max(step for step, _ in finals)))
    if not rows:
        return "(no runs)"
    groups = sorted({key for _, evals, _, _ in rows for e in evals for key in held_out_groups(e)}, key=group_order)
    ref_label, ref_runs = methods[reference] if methods else (None, [])
    ref_by_seed = {seed: final_eval(run)[1] for seed, run in by_seed(ref_runs or []).items()}
    header = (["method", "step", "seeds"] + [f"{group_label(s)} p@1 / p@8" for s in groups]
              + ["avg p@1 / p@8", "neg. diversity", "entropy", f"Δ avg p@1 vs {ref_label}", f"Δ avg p@8 vs {ref_label}",
                 "Δ neg. diversity", "Δ entropy"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, evals, runs, step in rows:
        cells = [label, str(step), str(len(evals))]
        for group in groups:
            cells.append(f"{cell([eval_value(e, f'{group}:pass@1') for e in evals])} / "
                         f"{cell([eval_value(e, f'{group}:pass@8') for e in evals])}")
        cells.append(f"{cell([eval_value(e, 'avg:pass@1') for e in evals])} / {cell([eval_value(e, 'avg:pass@8') for e in evals])}")
        cells.append(cell([eval_value(e, "negative_answer_diversity") for e in evals]))
        cells.append(cell([eval_value(e, "entropy") for e in evals], scale=1.0, digits=3))
        for key, scale, digits in (("avg:pass@1", 100.0, 1), ("avg:pass@8", 100.0, 1),
                                   ("negative_answer_diversity", 100.0, 1), ("entropy", 1.0, 3)):
            if runs and label != ref_label and ref_by_seed:
                deltas = [eval_value(e, key) - eval_value(ref_by_seed[run["seed"]], key)
                          for run, e in zip(runs, evals) if run["seed"] in ref_by_seed]
                cells.append(delta_cell(deltas, scale, digits))
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def solved(counts_a, counts_b):
    """Items solved (at least one correct sample) by a, by b and by both; and how many items there are."""
    a = {index for index, count in counts_a.items() if count > 0}
    b = {index for index, count in counts_b.items() if count > 0}
    return dict(a=len(a), b=len(b), both=len(a & b), items=len(counts_a))


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


def plot_passk_curves(methods, path, panels, title=""):
    """Pass@k curves on a log-k axis (Yue et al., 2025): the start policy (step 0, dashed) against each
    method's final policy, mean over seeds with the min-max band; one panel per entry of panels
    ({panel title: held-out groups, or None for all})."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for axis, (panel, groups) in zip(axes[0], panels.items()):
        start_drawn = False
        for i, (label, runs) in enumerate(methods):
            found = curve_runs(runs)
            if not found:
                continue
            ks = sorted(curve_of(found[0][2], groups))
            if not start_drawn:
                start = np.array([[curve_of(first, groups)[k] for k in ks] for _, first, _ in found])
                axis.plot(ks, 100 * start.mean(0), "k--", label="start (step 0)")
                start_drawn = True
            final = np.array([[curve_of(last, groups)[k] for k in ks] for _, _, last in found])
            axis.plot(ks, 100 * final.mean(0), marker=".", color=f"C{i}", label=f"{label} ({len(found)} seeds)")
            if len(found) > 1:
                axis.fill_between(ks, 100 * final.min(0), 100 * final.max(0), color=f"C{i}", alpha=0.12)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("k (samples)")
        axis.set_ylabel("pass@k (%)")
        axis.set_title(panel, fontsize=10)
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title + "  (unbiased pass@k from n samples per held-out item)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def mean_curve_crossing(starts, finals):
    """Where the mean final curve (over seeds) crosses the mean start curve, as text: 'falls below at k = 3.2',
    'rises above at k = 90.5' (below at k = 1, above later), 'above at every k' or 'below at every k'
    (evaluate.crossing_k on the means, interpolated in log2 k; not a mean of per-seed crossings)."""
    ks = sorted(finals[0])
    final = {k: float(np.mean([f[k] for f in finals])) for k in ks}
    start = {k: float(np.mean([s[k] for s in starts])) for k in ks}
    k, kind = crossing_k(final, start)
    if kind == "cross":
        return f"falls below at k = {k:.1f}"
    if kind == "above":
        return "above at every k"
    k, kind = crossing_k(start, final)  # below at k = 1: where the start's curve falls to the final one
    return f"rises above at k = {k:.1f}" if kind == "cross" else "below at every k"


def passk_curve_table(methods, reference=0, ks=(1, 8, 128), groups=None):
    """Markdown: each method's final pass@k at `ks` (mean ± std over seeds), its paired change from its own start
    at the largest k, the paired change against methods[reference] at each k (see delta_cell), its final
    G-Pass@k at each tau (all groups only), the k at which its mean curve falls to the mean start curve (and how
    many seeds' own curves cross at all), and the held-out items solved within n samples by the start, the
    method, both (mean over seeds)."""
    ref_label, ref_runs = methods[reference]
    ref_by_seed = {seed: last for seed, _, last in curve_runs(ref_runs)}
    rows = [(label, curve_runs(runs)) for label, runs in methods]
    rows = [(label, found) for label, found in rows if found]
    if not rows:
        return "(no runs with pass@k curves)"
    n = rows[0][1][0][2]["n_samples"]
    ks = [k for k in ks if k <= n]
    # G-Pass@k_tau (evaluate.g_pass_at_k) beside pass@k; eval.json holds it over all held-out groups only
    g_keys = sorted(rows[0][1][0][2].get("g_pass", {})) if groups is None else []
    header = (["method", "seeds"] + [f"p@{k}" for k in ks] + [f"Δ p@{ks[-1]} vs start"]
              + [f"Δ p@{k} vs {ref_label}" for k in ks]
              + ([" / ".join(key.replace("_", " τ=") for key in g_keys)] if g_keys else [])
              + ["mean curve against the start's (seeds whose own curve falls below)", "solved: start / method / both"])
    lines = []
    for label, found in rows:
        finals = [curve_of(last, groups) for _, _, last in found]
        starts = [curve_of(first, groups) for _, first, _ in found]
        cells = [label, str(len(found))] + [cell([f[k] for f in finals]) for k in ks]
        cells.append(delta_cell([f[ks[-1]] - s[ks[-1]] for f, s in zip(finals, starts)]))
        for k in ks:
            if label == ref_label:
                cells.append("")
                continue
            deltas = [curve_of(last, groups)[k] - curve_of(ref_by_seed[seed], groups)[k]
                      for seed, _, last in found if seed in ref_by_seed]
            cells.append(delta_cell(deltas) if deltas else "-")
        if g_keys:
            cells.append(" / ".join(cell([last.get("g_pass", {}).get(key, math.nan) for _, _, last in found])
                                    for key in g_keys))
        crossing = [crossing_k(f, s)[1] for f, s in zip(finals, starts)]
        cells.append(f"{mean_curve_crossing(starts, finals)} ({crossing.count('cross')}/{len(found)})")
        counts = [solved(correct_of(first, groups), correct_of(last, groups)) for _, first, last in found]
        header[-1] = f"solved of {counts[0]['items']} at n={n}: start / method / both"
        cells.append(" / ".join(f"{np.mean([c[key] for c in counts]):.1f}" for key in ("a", "b", "both")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + lines)


def wall_seconds(runs):
    return [run["wall_seconds"] for run in runs if run.get("wall_seconds") is not None]


# -----------------------------------------------------------------------------
# what each grid of experiments/maze.py is drawn and tabulated as: {figure: [(label, run 'group/name')]}, the
# first entry of each the reference of its paired changes
NOISES, ENTROPY_COEFS = (0.1, 0.3, 0.5), (0.003, 0.01, 0.03)  # the short grids' baselines
PRIMARY_METHODS = [("Pass@1", "pass1"), ("Pass@k analytical", "passk_analytical"), ("Pass@k bootstrap", "passk_bootstrap"),
                   ("Exceeding Pass@k", "passk_exceeding"), ("PKPO k=4", "pkpo"), ("best-of-N", "best_of_n")]
PRIMARY_BASELINES = [("entropy 0.1", "entropy0.1")]  # tuned baselines run beside the family (experiments/maze.py)
SHORT = {
    "estimators": [("Pass@1", "estimators/pass1"), ("Pass@k full", "estimators/passk_full"),
                   ("Pass@k bootstrap", "estimators/passk_bootstrap"), ("Pass@k analytical", "estimators/passk_analytical")],
    "k": [("k=4", "estimators/passk_analytical"), ("k=2", "k/k2"), ("k=8", "k/k8"), ("k=8, 2x lr", "k/k8-lr2x"),
          ("k=8, 4x lr", "k/k8-lr4x")],
    "implicit": [("Pass@1", "estimators/pass1"), ("Pass@k analytical", "estimators/passk_analytical"),
                 ("Exceeding Pass@k", "implicit/passk_exceeding"), ("Combination", "implicit/passk_combination"),
                 ("Adaptive (entropy)", "implicit/passk_adaptive"), ("Pass@1 w/o easy", "implicit/pass1_no_easy")],
    "baselines": [("Pass@1", "estimators/pass1"), ("Pass@k analytical", "estimators/passk_analytical")]
                 + [(f"noise {noise}", f"baselines/noise{noise}") for noise in NOISES]
                 + [(f"entropy {coef}", f"baselines/entropy{coef}") for coef in ENTROPY_COEFS],
    "continual": [("Pass@1 2T", "continual/pass1-2T"), ("Pass@k 2T", "continual/passk-2T"),
                  ("Pass@k T", "estimators/passk_analytical"), ("Pass@k T + Pass@1 T", "continual/passk-then-pass1")],
}
LONG = {
    "estimators": SHORT["estimators"],
    "k": SHORT["k"][:4],
    "implicit": SHORT["implicit"],
    "baselines": SHORT["baselines"][:2] + [("noise 0.3", "baselines/noise0.3"), ("entropy 0.01", "baselines/entropy0.01")],
    "objectives": SHORT["implicit"][:2] + [
        ("PKPO k=4", "objectives/pkpo"), ("PKPO k=8 then 1", "objectives/pkpo-anneal"),
        ("risk-seeking", "objectives/risk_seeking"), ("best-of-N", "objectives/best_of_n"),
        ("W-REINFORCE", "objectives/w_reinforce"), ("MaxRL", "objectives/maxrl"), ("unlikeliness", "objectives/unlikeliness")],
    "continual": [("Pass@1 2T", "estimators/pass1"), ("Pass@k 2T", "estimators/passk_analytical"),
                  ("Pass@k T", "continual/passk-T"), ("Pass@k T + Pass@1 T", "continual/passk-then-pass1")],
}


def comparisons(grid, runs=()):
    """The figures of a grid (experiments/maze.py's mode): {name: [(label, run)]}. runs: the run names the grid
    holds; a tasks grid has one figure per task among them, an unknown grid one per group."""
    if grid == "long":
        return LONG
    if grid == "horizon":
        return {"estimators": [("Pass@1", "estimators/pass1"), ("Pass@k analytical", "estimators/passk_analytical")]}
    if grid == "primary":
        return {"primary": [(label, f"primary/{name}") for label, name in PRIMARY_METHODS + PRIMARY_BASELINES]}
    if grid == "tune":
        return {"tune": [("Pass@1", "tune/pass1")] + [(f"entropy {c}", f"tune/entropy{c}") for c in (0.03, 0.1, 0.3)]
                + [(f"noise {n}", f"tune/noise{n}") for n in (0.1, 0.5)]}
    if grid in ("quick", "full", "smoke"):
        return SHORT
    groups = {}
    for run in sorted(runs):
        groups.setdefault(run.split("/")[0], []).append((run.split("/", 1)[1], run))
    for group, entries in groups.items():  # Pass@1 first: the reference
        entries.sort(key=lambda entry: (entry[0] != "pass1", entry[0]))
        groups[group] = [({"pass1": "Pass@1", "passk_analytical": "Pass@k analytical"}.get(label, label), run)
                         for label, run in entries]
    return groups


def plot_experiments(records, out_dir):
    """Every comparison of the records' grid: a figure and a table each. Returns the markdown of the tables
    (also written to out_dir/<grid>_tables.md)."""
    grid = records[0]["grid"]
    index = {}
    for record in records:
        index.setdefault(record["run"], []).append(record)
    sections, used = [], []
    for name, entries in comparisons(grid, index).items():
        methods = [(label, sorted(index.get(run, []), key=lambda r: r["seed"])) for label, run in entries]
        if not any(runs for _, runs in methods):
            continue
        used += [run for _, runs in methods for run in runs if run not in used]
        figure = os.path.join(out_dir, f"{grid}_{name}.png")
        plot_comparison(methods, figure, title=f"{name} ({grid})")
        start = next((runs for _, runs in methods if runs and all(r["start_step"] == 0 for r in runs)), [])
        section = f"### {name}\n\n![{name}]({os.path.basename(figure)})\n\n" + per_size_table(methods, start)
        with_curves = [(label, runs) for label, runs in methods if curve_runs(runs)]
        if with_curves:  # pass@k curves (the long protocol): start vs each method, all / seen / unseen sizes
            groups = held_out_groups(curve_runs(with_curves[0][1])[0][2])
            seen = [g for g in groups if g in SEEN_SIZES]
            unseen = [g for g in groups if isinstance(g, int) and g not in SEEN_SIZES]
            panels = {"all held-out sizes" if seen or unseen else "held-out items": None,
                      **({f"seen sizes {seen}": seen} if seen else {}), **({f"unseen sizes {unseen}": unseen} if unseen else {})}
            curve_figure = os.path.join(out_dir, f"{grid}_{name}_passk.png")
            plot_passk_curves(with_curves, curve_figure, panels, title=f"{name} ({grid})")
            section += (f"\n\n![{name} pass@k]({os.path.basename(curve_figure)})\n\n"
                        f"{'All held-out sizes' if seen or unseen else 'Held-out items'}:\n\n" + passk_curve_table(with_curves))
            if unseen:
                section += f"\n\nUnseen sizes {unseen} only:\n\n" + passk_curve_table(with_curves, groups=unseen)
        sections.append(section)
    seconds = wall_seconds(used)
    if seconds:
        sections.append(f"{len(seconds)} runs with a recorded wall time: {sum(seconds) / 60:.1f} min in all "
                        f"(mean {np.mean(seconds):.0f} s, min {min(seconds):.0f} s, max {max(seconds):.0f} s a run)")
    header = (f"# The {grid} grid's figures and tables\n\nDrawn from its record by `python -m lab.plots "
              f"experiments/results/{grid}.jsonl`. Git keeps only the figures a document shows; that command draws "
              f"the others beside this file.")
    text = "\n\n".join([header] + sections) + "\n"
    with open(os.path.join(out_dir, f"{grid}_tables.md"), "w") as f:
        f.write(text)
    return text


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
            skipped[folder] = f"{run!r} is not a run that plots.py compares"
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


# -----------------------------------------------------------------------------
# verdicts: paired comparisons with both intervals and corrected p (stats.py), as RESULTS.md prints them
# A comparison: (takeaway, grid, B, A, metric, groups, margin): B minus A paired by seed; B and A are runs
# 'group/name' at their end, or 'start:group/name' for that run's step-0 policy; metric 'p@K' (pass@K, from the
# per-item correct counts), 'entropy' or 'diversity' (no per-item values: seeds only); groups: the held-out
# groups to average over (None: all, each group alike; 'pooled': all, each item alike); margin: an equivalence
# margin (TOST) for a "no cost" claim, else None.
METRICS = {"entropy": ("entropy", 1.0, 3), "diversity": ("negative_answer_diversity", 100.0, 1)}
EQUIVALENCE_MARGIN = 0.02  # +-2 points of pass@1: "no pass@1 cost" means within it (TOST)


def comparison_values(index, b, a, metric, groups=None):
    """Per seed (seeds that both runs have): the paired difference of the scalar metric, for pass@k the per-item
    differences {group: (n_seeds, n_items)} for the hierarchical bootstrap, and the groups' weights (None: equal,
    the eval's average over groups; groups="pooled": by item count, the mean over every held-out item).
    index: {run: {seed: record}}. Returns (seeds, deltas, items, weights)."""
    def evaluation(name, record):
        return record["evals"][0][1] if name.startswith("start:") else record["evals"][-1][1]

    runs_b, runs_a = index.get(b.removeprefix("start:"), {}), index.get(a.removeprefix("start:"), {})
    seeds = sorted(set(runs_b) & set(runs_a))
    evals = [(evaluation(b, runs_b[s]), evaluation(a, runs_a[s])) for s in seeds]
    if metric.startswith("p@"):
        k, pooled = int(metric[2:]), groups == "pooled"
        chosen = (held_out_groups(evals[0][0]) if evals else []) if groups is None or pooled else groups
        n, items = (evals[0][0]["n_samples"] if evals else 0), {}
        for g in chosen:
            order = sorted(group_cell(evals[0][0], g)["correct"], key=int)
            counts_b = [[group_cell(eb, g)["correct"][i] for i in order] for eb, _ in evals]
            counts_a = [[group_cell(ea, g)["correct"][i] for i in order] for _, ea in evals]
            items[g] = stats.item_differences({g: counts_a}, {g: counts_b}, n, k)[g]
        if pooled:  # every held-out item weighs the same
            weights = {g: items[g].shape[1] for g in items}
            deltas = list(sum(w * items[g].mean(1) for g, w in weights.items()) / sum(weights.values()))
            return seeds, deltas, items, weights
        return seeds, [curve_of(eb, groups)[k] - curve_of(ea, groups)[k] for eb, ea in evals], items, None
    key, _, _ = METRICS[metric]
    deltas = [eval_value(eb, key) - eval_value(ea, key) for eb, ea in evals]
    return seeds, deltas, ({"seeds": np.array(deltas, dtype=float)[:, None]} if deltas else {}), None


def evaluate_comparisons(records, comparisons_list, replicates=4000, correction="bh"):
    """Each comparison with its paired-t interval and p, its hierarchical bootstrap interval, its corrected p
    (correction 'holm': a pre-declared family; 'bh': exploratory q-values) over the comparisons without a margin,
    and, with a margin, its TOST. Returns a list of dicts."""
    index = {}
    for record in records:
        index.setdefault((record["grid"], record["run"]), {})[record["seed"]] = record
    results = []
    for number, (takeaway, grid, b, a, metric, groups, margin) in enumerate(comparisons_list):
        runs = {run: seeds for (g, run), seeds in index.items() if g == grid}
        seeds, deltas, items, weights = comparison_values(runs, b, a, metric, groups)
        result = dict(takeaway=takeaway, grid=grid, b=b, a=a, metric=metric, groups=groups, margin=margin,
                      seeds=len(seeds), t=stats.paired_t(deltas))
        if items:
            result["boot"] = stats.hierarchical_bootstrap(items, replicates, seed=number, weights=weights)
            if margin is not None:
                result["boot90"] = stats.hierarchical_bootstrap(items, replicates, level=0.90, seed=number, weights=weights)
        if margin is not None:
            result["tost"] = stats.tost(deltas, margin)
        results.append(result)
    tested = [r for r in results if r["margin"] is None]
    adjust = stats.holm if correction == "holm" else stats.benjamini_hochberg
    for result, p in zip(tested, adjust([r["t"]["p"] for r in tested])):
        result["p_adjusted"] = float(p)
    if correction == "holm":  # a declared family's equivalence claims are a family of their own
        equivalences = [r for r in results if r["margin"] is not None]
        for result, p in zip(equivalences, stats.holm([r["tost"]["p"] for r in equivalences])):
            result["tost"]["p_adjusted"] = float(p)
    return results


def verdict(result, alpha=0.05):
    """'shown' when the corrected p < alpha and the bootstrap interval excludes 0 on the same side; for a margin
    claim 'equivalent' when TOST p < alpha and the 90% bootstrap interval lies inside the margin."""
    if result["margin"] is not None:
        boot, margin = result.get("boot90"), result["margin"]
        inside = boot is None or (-margin < boot["lo"] and boot["hi"] < margin)
        p = result["tost"].get("p_adjusted", result["tost"]["p"])
        return f"within ±{100 * margin:.0f}" if p < alpha and inside else "not shown"
    boot, t = result.get("boot"), result["t"]
    side = (boot is None or boot["lo"] > 0 or boot["hi"] < 0) and not math.isnan(result.get("p_adjusted", math.nan))
    if side and result["p_adjusted"] < alpha:
        return "shown (+)" if t["mean"] > 0 else "shown (-)"
    return "not shown"


def run_label(name):
    return f"start of {name.removeprefix('start:').split('/')[-1]}" if name.startswith("start:") else name.split("/")[-1]


def verdict_table(results, correction="bh"):
    """Markdown: one row per comparison, effect and intervals in points (pass@k, diversity) or nats (entropy)."""
    p_name = "Holm p" if correction == "holm" else "BH q"
    lines = [f"| takeaway | comparison (B - A) | metric | seeds | effect | paired-t 95% | hier. bootstrap 95% | "
             f"{p_name} / TOST p | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        scale, digits = (100.0, 1) if r["metric"].startswith("p@") else METRICS[r["metric"]][1:]
        interval = lambda x: "-" if x is None or math.isnan(x["lo"]) else f"[{scale * x['lo']:.{digits}f}, {scale * x['hi']:.{digits}f}]"  # noqa: E731
        where = {None: "", "pooled": " (all items)"}.get(r["groups"]) if not isinstance(r["groups"], list) else \
            f" ({', '.join(map(str, r['groups']))})"
        boot = interval(r.get("boot")) + (" (seeds only)" if r["metric"] in METRICS else "")
        p = (f"TOST {r['tost'].get('p_adjusted', r['tost']['p']):.3f} (±{100 * r['margin']:.0f})" if r["margin"] is not None
             else f"{r['p_adjusted']:.3f}")
        lines.append(f"| {r['takeaway']} | {run_label(r['b'])} - {run_label(r['a'])} | {r['metric']}{where} | {r['seeds']} | "
                     f"{scale * r['t']['mean']:+.{digits}f} | {interval(r['t'])} | {boot} | {p} | {verdict(r)} |")
    return "\n".join(lines)


UNSEEN = [9, 11]
P1, AN, BS, FU = "estimators/pass1", "estimators/passk_analytical", "estimators/passk_bootstrap", "estimators/passk_full"
EX, PK, BN = "implicit/passk_exceeding", "objectives/pkpo", "objectives/best_of_n"
# the comparisons RESULTS.md's verdicts rest on, on the 5-seed long and tasks grids: exploratory (BH)
VERDICTS = [
    ("2.2 Pass@1 narrows", "long", P1, "start:" + P1, "p@128", None, None),
    ("2.2 Pass@1 narrows", "long", P1, "start:" + P1, "entropy", None, None),
    *[("2.2 Pass@k keeps pass@k", "long", run, P1, metric, None, None) for run in (AN, BS, FU) for metric in ("p@8", "p@128")],
    *[("2.2 at no pass@1 cost", "long", run, P1, "p@1", None, EQUIVALENCE_MARGIN) for run in (AN, BS)],
    ("2.2 at no pass@1 cost", "long", FU, P1, "p@1", None, None),
    ("2.3 bootstrap > full", "long", BS, FU, "p@1", None, None),
    ("2.4 analytical vs bootstrap", "long", AN, BS, "p@1", None, None),
    ("2.4 analytical vs bootstrap", "long", AN, BS, "p@128", None, None),
    ("3.1 baselines moved?", "long", "baselines/entropy0.01", P1, "entropy", None, None),
    ("3.1 baselines moved?", "long", "baselines/noise0.3", P1, "p@8", None, None),
    ("3.1 Pass@k > baselines", "long", AN, "baselines/noise0.3", "p@8", None, None),
    ("3.1 Pass@k > baselines", "long", AN, "baselines/entropy0.01", "p@8", None, None),
    ("3.2 explores more", "long", AN, P1, "entropy", None, None),
    ("3.2 explores more", "long", AN, P1, "diversity", None, None),
    *[("3.3 unseen sizes", "long", run, P1, "p@128", UNSEEN, None) for run in (AN, BS, FU)],
    ("3.4 larger k", "long", "k/k8", AN, "p@1", None, None),
    ("3.4 larger k", "long", "k/k8", AN, "p@128", None, None),
    ("3.4 larger lr fixes k=8", "long", "k/k8-lr2x", "k/k8", "p@1", None, None),
    ("3.5 continual", "long", "continual/passk-then-pass1", P1, "p@1", None, None),
    ("3.5 continual", "long", "continual/passk-then-pass1", P1, "p@8", None, None),
    ("4.2 exceeding", "long", EX, P1, "p@128", None, None),
    ("4.2 exceeding", "long", EX, AN, "p@128", None, None),
    ("4.2 exceeding strongest?", "long", BN, EX, "p@128", None, None),
    ("4.2 exceeding strongest?", "long", BN, EX, "p@1", None, None),
    ("objectives: PKPO", "long", PK, P1, "p@128", None, None),
    ("objectives: PKPO", "long", PK, P1, "p@1", None, EQUIVALENCE_MARGIN),
    ("objectives: PKPO", "long", PK, AN, "p@128", None, None),
    ("objectives: best-of-N", "long", BN, P1, "p@128", None, None),
    ("objectives: best-of-N", "long", BN, P1, "p@1", None, None),
    ("countdown", "tasks", "countdown/passk_analytical", "countdown/pass1", "p@1", None, None),
    ("countdown", "tasks", "countdown/passk_analytical", "countdown/pass1", "p@8", None, None),
    ("countdown", "tasks", "countdown/passk_analytical", "countdown/pass1", "p@128", None, None),
    ("chain_sum", "tasks", "chain_sum/passk_analytical", "chain_sum/pass1", "p@1", None, None),
    ("chain_sum", "tasks", "chain_sum/passk_analytical", "chain_sum/pass1", "p@128", None, None),
]


# the pre-declared primary family (RESULTS.md), on experiments/maze.py --primary: Holm over H1-H15, and over E1-E5
PRIMARY_FAMILY = (
    [(f"H{i + 1}", "primary", f"primary/{name}", "primary/pass1", "p@8", "pooled", None)
     for i, (_, name) in enumerate(PRIMARY_METHODS[1:])]
    + [(f"H{i + 6}", "primary", f"primary/{name}", "primary/pass1", "p@128", "pooled", None)
       for i, (_, name) in enumerate(PRIMARY_METHODS[1:])]
    + [(f"H{i + 11}", "primary", f"primary/{name}", "primary/pass1", "p@128", UNSEEN, None)
       for i, (_, name) in enumerate(PRIMARY_METHODS[1:])]
    + [(f"E{i + 1}", "primary", f"primary/{name}", "primary/pass1", "p@1", "pooled", EQUIVALENCE_MARGIN)
       for i, (_, name) in enumerate(PRIMARY_METHODS[1:])])


PN = {name: f"primary/{name}" for _, name in PRIMARY_METHODS + PRIMARY_BASELINES}
# the primary grid's other comparisons, chosen after its declaration: exploratory (BH over these 24), not verdicts
PRIMARY_EXPLORATORY = (
    [("precondition: Pass@1 narrows", "primary", PN["pass1"], "start:" + PN["pass1"], "p@128", "pooled", None),
     ("precondition: Pass@1 narrows", "primary", PN["pass1"], "start:" + PN["pass1"], "entropy", None, None)]
    + [("2.2 narrowing stopped?", "primary", PN[name], "start:" + PN[name], "p@128", "pooled", None)
       for _, name in PRIMARY_METHODS[1:]]
    + [("pass@1 cost", "primary", PN[name], PN["pass1"], "p@1", "pooled", None) for _, name in PRIMARY_METHODS[1:]]
    + [("3.2 explores more", "primary", PN[name], PN["pass1"], "entropy", None, None) for _, name in PRIMARY_METHODS[1:]]
    + [("3.1 baseline moved?", "primary", PN["entropy0.1"], PN["pass1"], "entropy", None, None),
       ("3.1 Pass@k > entropy reg.", "primary", PN["passk_analytical"], PN["entropy0.1"], "p@8", "pooled", None),
       ("3.1 Pass@k > entropy reg.", "primary", PN["passk_analytical"], PN["entropy0.1"], "p@128", "pooled", None),
       ("2.4 analytical vs bootstrap", "primary", PN["passk_analytical"], PN["passk_bootstrap"], "p@1", "pooled", None),
       ("2.4 analytical vs bootstrap", "primary", PN["passk_analytical"], PN["passk_bootstrap"], "p@128", "pooled", None),
       ("4.2 best-of-N vs exceeding", "primary", PN["best_of_n"], PN["passk_exceeding"], "p@128", "pooled", None),
       ("4.2 best-of-N vs exceeding", "primary", PN["best_of_n"], PN["passk_exceeding"], "p@1", "pooled", None)])


def exploratory_family():
    """VERDICTS plus every other method of the long grid against Pass@1 on pass@1, pass@8, pass@128 and entropy:
    the family the BH q-values are computed over (a comparison is in it whether or not a verdict names it)."""
    family = list(VERDICTS)
    named = {(b, a, m, tuple(g) if g else None) for _, _, b, a, m, g, margin in VERDICTS if margin is None}
    for entries in LONG.values():
        for _, run in entries:
            for metric in ("p@1", "p@8", "p@128", "entropy"):
                if run != P1 and (run, P1, metric, None) not in named:
                    named.add((run, P1, metric, None))
                    family.append(("(all vs Pass@1)", "long", run, P1, metric, None, None))
    return family


def verdict_tables(records, replicates=4000):
    """{block name: markdown} for RESULTS.md, from the records alone: 'verdicts' and 'family' (the exploratory
    comparisons of the long and tasks grids, BH), and 'primary' (Holm) and 'primary-exploratory' (BH) when the
    records hold the primary grid."""
    tables = {}
    if any(record["grid"] in ("long", "tasks") for record in records):
        results = evaluate_comparisons(records, exploratory_family(), replicates)
        tables["verdicts"] = verdict_table(results[:len(VERDICTS)])
        tables["family"] = verdict_table(results[len(VERDICTS):])
    if any(record["grid"] == "primary" for record in records):
        tables["primary"] = verdict_table(evaluate_comparisons(records, PRIMARY_FAMILY, replicates, "holm"), "holm")
        tables["primary-exploratory"] = verdict_table(evaluate_comparisons(records, PRIMARY_EXPLORATORY, replicates))
    return tables


def has_block(path, name):
    """Whether a markdown file holds a '<!-- NAME -->' ... '<!-- /NAME -->' block."""
    with open(path) as f:
        page = f.read()
    return f"<!-- {name} -->" in page and f"<!-- /{name} -->" in page


def replace_block(path, name, text):
    """Replace what lies between '<!-- NAME -->' and '<!-- /NAME -->' in a markdown file with text."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if not has_block(path, name):
        raise ValueError(f"{path} has no {begin} ... {end} block")
    with open(path) as f:
        page = f.read()
    head, rest = page.split(begin, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + text.strip() + "\n" + end + rest.split(end, 1)[1])


def read_source(path):
    """Records from a results file, or from a grid's raw run folders (compacted here): (records, {skipped: why})."""
    if os.path.isfile(path):
        return load_records(path), {}
    records, skipped = compact_runs(path)
    known = {run for entries in comparisons(records[0]["grid"] if records else "", {r["run"] for r in records}).values()
             for _, run in entries}
    for record in [r for r in records if r["run"] not in known]:
        skipped[os.path.join(path, f"{record['run']}-seed{record['seed']}")] = f"{record['run']!r} is not a run that plots.py compares"
    return [r for r in records if r["run"] in known], skipped


def main(argv=None):
    """Exit status 2 for a path that does not exist or bad options, 1 if it holds no usable run. Runs that
    cannot be plotted are named on stderr with the reason and skipped; the others are drawn."""
    from infra.cli import CommandError, add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="experiments/results/<grid>.jsonl, a grid's run folder "
                                                "experiments/runs/<grid>, or one train.py out_dir")
    parser.add_argument("--out", default=FIGURES)
    parser.add_argument("--compact", metavar="PATH", help="write the runs folder's records to PATH (.jsonl or .jsonl.gz)")
    parser.add_argument("--verdicts", action="store_true", help="print the verdict tables of the records (RESULTS.md)")
    parser.add_argument("--write", metavar="MARKDOWN", action="append", default=[],
                        help="with --verdicts: put each table into the block of its name in MARKDOWN (repeatable: "
                             "each table goes to the file that has its block)")
    parser.add_argument("--n_rollouts", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--advantages-only", action="store_true")
    parser.add_argument("--estimator-gradients", action="store_true",
                        help="only the figure of what each estimator optimises (estimator_gradients.png)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    # check the options and read every run before drawing anything
    if not 1 <= args.k <= args.n_rollouts:
        usage_error(f"--k={args.k} must be between 1 and --n_rollouts={args.n_rollouts}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        usage_error(f"--out={args.out!r} is a file, not a folder")
    paths = [] if args.advantages_only else args.runs
    for path in paths:
        if not os.path.exists(path):
            usage_error(f"runs {path!r} does not exist")
    if args.compact and (len(paths) != 1 or not os.path.isdir(paths[0])):
        usage_error("--compact needs exactly one runs folder (experiments/runs/<grid>)")
    if args.verdicts:
        records = [record for path in paths for record in read_source(path)[0]]
        if not records:
            usage_error("--verdicts needs the records of the long and tasks grids (experiments/results/*.jsonl)")
        for path in args.write:
            if not os.path.isfile(path):
                usage_error(f"--write={path!r} is not a markdown file")
        tables = verdict_tables(records)
        if not args.write:
            for name, table in tables.items():
                print(f"{name}:\n\n{table}\n")
            return
        targets = {name: [path for path in args.write if has_block(path, name)] for name in tables}
        for name, paths in targets.items():  # every table has a place before any file is written
            if not paths:
                usage_error(f"no --write file has a <!-- {name} --> ... <!-- /{name} --> block for the {name} table")
        for name, paths in targets.items():
            for path in paths:
                replace_block(path, name, tables[name])
                print(f"wrote the {name} table into {path}")
        return
    single = len(paths) == 1 and os.path.exists(os.path.join(paths[0], "metrics.jsonl"))  # one train.py out_dir
    sources = []
    if single:
        train, evaluations = load_run(paths[0])
        if not train and not evaluations:
            raise CommandError(f"{os.path.join(paths[0], 'metrics.jsonl')} holds no complete record yet")
    else:
        for path in paths:
            records, skipped = read_source(path)
            for folder, why in skipped.items():
                print(f"warning: skipped {folder}: {why}", file=sys.stderr)
            if not records:
                raise CommandError(f"no run to plot in {path!r}{f' ({len(skipped)} skipped, see above)' if skipped else ''}"
                                   ": expected a results file, <group>/<name>-seed<N>/metrics.jsonl as experiments/maze.py "
                                   "writes them under experiments/runs/<grid>, or one train.py out_dir")
            sources.append(records)
        if args.compact:
            write_records(compact_runs(paths[0])[0], args.compact)
            print(f"wrote {args.compact} ({os.path.getsize(args.compact) / 1e6:.2f} MB)")

    os.makedirs(args.out, exist_ok=True)
    if args.estimator_gradients:
        plot_estimator_gradients(os.path.join(args.out, "estimator_gradients.png"), args.n_rollouts, args.k)
        print(f"wrote {args.out}/estimator_gradients.png")
        return
    plot_advantage_curves(os.path.join(args.out, "advantage_curves.png"), args.n_rollouts, args.k)
    plot_advantage_k(os.path.join(args.out, "advantage_curves_k.png"), args.n_rollouts,
                     ks=tuple(k for k in (2, 4, 8) if k <= args.n_rollouts))
    print(f"wrote {args.out}/advantage_curves.png, advantage_curves_k.png")
    if single:
        name = os.path.basename(os.path.normpath(paths[0]))
        record = run_record(paths[0], grid=name, run=name)
        plot_comparison([(name, [record])], os.path.join(args.out, f"{name}_curves.png"), title=name)
        if record["evals"]:
            print(per_size_table([(name, [record])], [record]))
        else:
            print(f"warning: {paths[0]} has no held-out evaluation yet: curves only, no table", file=sys.stderr)
        return
    for records in sources:
        print(plot_experiments(records, args.out))


if __name__ == "__main__":
    from infra.cli import run

    run(main)
