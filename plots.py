"""Figures and tables: advantage curves of every estimator, training curves and per-size tables of runs.

    python plots.py experiments/runs/quick      # everything, into experiments/figures/ (+ tables.md)
    python plots.py out                         # the curves of one train.py out_dir
    python plots.py --advantages-only           # figures 9 and 18 only: no training needed
    python plots.py --estimator-gradients       # what each estimator optimises (exact, Bernoulli policy)

Runs are train.py out_dirs (metrics.jsonl: one line per step, plus {"step": s, "eval": {...}} lines
with the held-out evaluation). A method is several seeds of one configuration,
<runs_root>/<group>/<name>-seed<s>/, as experiments/maze.py lays them out; figures show the mean over
seeds with the min-max band, tables mean +- std (sample std, ddof=1) over seeds; paired changes with
their 95% t intervals.
"""
import argparse
import glob
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
from evaluate import crossing_k, solved_overlap  # noqa: E402

FIGURES = os.path.join("experiments", "figures")
SEEN_SIZES = (5, 7)  # the maze sizes every run of experiments/maze.py trains on; larger test sizes are unseen


def held_out_groups(evaluation):
    """The keys of an evaluation's per_size: maze sizes as ints, sorted; a reasoning-gym task's name as is."""
    return sorted((int(key) if str(key).isdigit() else key for key in evaluation["per_size"]), key=group_order)


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
# runs
_WARNED = set()  # metrics files whose cut-off last line was already reported


def load_run(run_dir):
    """(train records, [(step, eval)]) of one out_dir's metrics.jsonl.

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
        (evals.append((step, record["eval"])) if "eval" in record else train.append(record))
    return train, evals


def seed_dirs(runs_root, run):
    """The seed folders <runs_root>/<run>-seed<s> with a metrics.jsonl, by seed."""
    found = glob.glob(os.path.join(runs_root, f"{run}-seed*", "metrics.jsonl"))
    dirs = [os.path.dirname(path) for path in found if re.fullmatch(r"\d+", os.path.dirname(path).rsplit("-seed", 1)[1])]
    return sorted(dirs, key=lambda path: int(path.rsplit("-seed", 1)[1]))


def eval_value(evaluation, metric):
    """metric: 'avg:pass@1', '9:pass@8' (one size), or a top-level key such as 'negative_answer_diversity'."""
    if ":" in metric:
        where, key = metric.split(":")
        cell = evaluation["average"] if where == "avg" else evaluation["per_size"].get(where)
        return math.nan if cell is None else cell[key]
    value = evaluation.get(metric)
    return math.nan if value is None else value


def eval_curves(run_dirs, metric, offset=0):
    """steps (those all seeds have) and values (n_seeds, n_steps) of a held-out metric."""
    per_seed = [{step + offset: eval_value(evaluation, metric) for step, evaluation in load_run(d)[1]} for d in run_dirs]
    steps = sorted(set.intersection(*(set(curve) for curve in per_seed))) if per_seed else []
    return np.array(steps), np.array([[curve[s] for s in steps] for curve in per_seed])


def train_curves(run_dirs, key="reward", offset=0, smooth=5):
    """steps and (n_seeds, n_steps) of a per-step training metric, moving-averaged over `smooth` steps."""
    per_seed = [{r["step"] + offset: r[key] for r in load_run(d)[0] if key in r} for d in run_dirs]
    steps = sorted(set.intersection(*(set(curve) for curve in per_seed))) if per_seed else []
    values = np.array([[curve[s] for s in steps] for curve in per_seed])
    if smooth > 1 and values.size:
        kernel = np.ones(smooth) / smooth
        values = np.array([np.convolve(np.pad(row, (smooth - 1, 0), mode="edge"), kernel, mode="valid") for row in values])
    return np.array(steps), values


PANELS = [("avg:pass@1", "held-out pass@1 (avg over sizes)"), ("avg:pass@8", "held-out pass@8 (avg over sizes)"),
          ("9:pass@8", "pass@8 on 9x9 (size unseen in training)"), ("reward", "train reward (5-step moving avg)"),
          ("negative_answer_diversity", "negative-answer diversity (held out)"), ("entropy", "policy entropy (held out, nats/token)")]


def plot_comparison(methods, path, title=""):
    """methods: [(label, run_dirs, step offset)]. A 2x3 figure of held-out and training curves (a task without
    a 9x9 maze, e.g. a reasoning-gym task, gets its held-out response length in that panel)."""
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    first = next((load_run(dirs[0])[1] for _, dirs, _ in methods if dirs), [])
    mazes = not first or "9" in first[0][1]["per_size"] or 9 in first[0][1]["per_size"]
    panels = PANELS if mazes else [panel if panel[0] != "9:pass@8" else
                                   ("response_length", "held-out response length (tokens)") for panel in PANELS]
    for i, (label, run_dirs, offset) in enumerate(methods):
        if not run_dirs:
            continue
        for axis, (metric, _) in zip(axes.flat, panels):
            if metric == "reward":
                steps, values = train_curves(run_dirs, "reward", offset)
            else:
                steps, values = eval_curves(run_dirs, metric, offset)
            if not len(steps):
                continue
            axis.plot(steps, values.mean(0), marker="." if metric != "reward" else None, color=f"C{i}",
                      label=f"{label} ({len(run_dirs)} seeds)")
            if len(run_dirs) > 1:
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


def final_eval(run_dir, offset=0):
    """(step, eval) of the last held-out evaluation of a run."""
    step, evaluation = load_run(run_dir)[1][-1]
    return step + offset, evaluation


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


# two-sided 95% quantile of Student's t with n - 1 degrees of freedom, for n = 2..10 paired seeds
T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}


def delta_cell(deltas, scale=100.0, digits=1):
    """Paired change over seeds: 'mean [lo, hi]', the 95% paired-t interval of the mean (t with n - 1 degrees
    of freedom: mean ± t * std / sqrt(n)), marked ' *' when it excludes 0. One seed: the mean alone, no claim."""
    mean, std = mean_std(deltas)
    if math.isnan(mean):
        return "-"
    n = len([d for d in deltas if not math.isnan(d)])
    if n < 2 or math.isnan(std):
        return f"{scale * mean:.{digits}f}"
    half = T_975.get(n, 1.96) * std / math.sqrt(n)
    text = f"{scale * mean:.{digits}f} [{scale * (mean - half):.{digits}f}, {scale * (mean + half):.{digits}f}]"
    return text + (" *" if abs(mean) > half else "")


def per_size_table(methods, baseline_dirs=None, reference=0):
    """Markdown table of the final held-out evaluation: per maze size and averaged, pass@1 / pass@8 in %,
    mean ± std over seeds; the negative-answer diversity (%) and policy entropy (nats/token); the paired (same seed) change in avg pass@1 and
    pass@8 and diversity against methods[reference] (' *': significant, see delta_cell); baseline_dirs adds the step-0 evaluation (the starting policy)."""
    rows = []
    if baseline_dirs:
        rows.append(("start (step 0)", [load_run(d)[1][0][1] for d in baseline_dirs], None, 0))
    for label, run_dirs, offset in methods:
        if run_dirs:
            finals = [final_eval(d, offset) for d in run_dirs]
            rows.append((label, [evaluation for _, evaluation in finals], run_dirs, max(step for step, _ in finals)))
    if not rows:
        return "(no runs)"
    sizes = sorted({key for _, evals, _, _ in rows for e in evals for key in held_out_groups(e)}, key=group_order)
    ref_label, ref_dirs, ref_offset = methods[reference] if methods else (None, None, 0)
    ref_by_seed = {d.rsplit("-seed", 1)[1]: final_eval(d, ref_offset)[1] for d in (ref_dirs or [])}
    header = (["method", "step", "seeds"] + [f"{group_label(s)} p@1 / p@8" for s in sizes]
              + ["avg p@1 / p@8", "neg. diversity", "entropy", f"Δ avg p@1 vs {ref_label}", f"Δ avg p@8 vs {ref_label}",
                 "Δ neg. diversity", "Δ entropy"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, evals, run_dirs, step in rows:
        cells = [label, str(step), str(len(evals))]
        for size in sizes:
            cells.append(f"{cell([eval_value(e, f'{size}:pass@1') for e in evals])} / "
                         f"{cell([eval_value(e, f'{size}:pass@8') for e in evals])}")
        cells.append(f"{cell([eval_value(e, 'avg:pass@1') for e in evals])} / {cell([eval_value(e, 'avg:pass@8') for e in evals])}")
        cells.append(cell([eval_value(e, "negative_answer_diversity") for e in evals]))
        cells.append(cell([eval_value(e, "entropy") for e in evals], scale=1.0, digits=3))
        for key, scale, digits in (("avg:pass@1", 100.0, 1), ("avg:pass@8", 100.0, 1),
                                   ("negative_answer_diversity", 100.0, 1), ("entropy", 1.0, 3)):
            if run_dirs and label != ref_label and ref_by_seed:
                deltas = [eval_value(e, key) - eval_value(ref_by_seed[d.rsplit("-seed", 1)[1]], key)
                          for d, e in zip(run_dirs, evals) if d.rsplit("-seed", 1)[1] in ref_by_seed]
                cells.append(delta_cell(deltas, scale, digits))
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve_of(evaluation, sizes=None):
    """{k: pass@k} of one evaluation: averaged over `sizes` (None: the eval's own average over all sizes)."""
    if sizes is None:
        return {int(k): value for k, value in evaluation["average_pass@k_curve"].items()}
    curves = [evaluation["per_size"][str(s) if str(s) in evaluation["per_size"] else s]["pass@k_curve"] for s in sizes]
    return {int(k): sum(curve[k] for curve in curves) / len(curves) for k in curves[0]}


def correct_of(evaluation, sizes=None):
    """{maze index: correct samples} of one evaluation, over `sizes` (None: every held-out maze)."""
    if sizes is None:
        return evaluation["correct"]
    cells = evaluation["per_size"]
    return {index: count for s in sizes for index, count in cells[str(s) if str(s) in cells else s]["correct"].items()}


def curve_runs(run_dirs):
    """[(seed, start eval, final eval)] of the runs whose first and last evaluations have pass@k curves to the
    same n (a step-0 evaluation of its own; the last one is the run's end)."""
    runs = []
    for d in run_dirs:
        evals = load_run(d)[1]
        first, last = evals[0][1], evals[-1][1]
        if evals[0][0] == 0 and "average_pass@k_curve" in first and "average_pass@k_curve" in last and \
                first["n_samples"] == last["n_samples"]:
            runs.append((d.rsplit("-seed", 1)[1], first, last))
    return runs


def plot_passk_curves(methods, path, size_groups, title=""):
    """Pass@k curves on a log-k axis (Yue et al., 2025): the start policy (step 0, dashed) against each
    method's final policy, mean over seeds with the min-max band; one panel per entry of size_groups
    ({panel title: sizes or None for all})."""
    fig, axes = plt.subplots(1, len(size_groups), figsize=(5.5 * len(size_groups), 4.2), squeeze=False)
    for axis, (panel, sizes) in zip(axes[0], size_groups.items()):
        start_drawn = False
        for i, (label, run_dirs, _) in enumerate(methods):
            runs = curve_runs(run_dirs)
            if not runs:
                continue
            ks = sorted(curve_of(runs[0][2], sizes))
            if not start_drawn:
                start = np.array([[curve_of(first, sizes)[k] for k in ks] for _, first, _ in runs])
                axis.plot(ks, 100 * start.mean(0), "k--", label="start (step 0)")
                start_drawn = True
            final = np.array([[curve_of(last, sizes)[k] for k in ks] for _, _, last in runs])
            axis.plot(ks, 100 * final.mean(0), marker=".", color=f"C{i}", label=f"{label} ({len(runs)} seeds)")
            if len(runs) > 1:
                axis.fill_between(ks, 100 * final.min(0), 100 * final.max(0), color=f"C{i}", alpha=0.12)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("k (samples)")
        axis.set_ylabel("pass@k (%)")
        axis.set_title(panel, fontsize=10)
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title + "  (unbiased pass@k from n samples per held-out maze)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def passk_curve_table(methods, reference=0, ks=(1, 8, 128), sizes=None):
    """Markdown: each method's final pass@k at `ks` (mean ± std over seeds), its paired change from its own start
    at the largest k, the paired change against methods[reference] at each k (' *' when the 95% paired-t
    interval excludes 0), its final G-Pass@k at each tau (all sizes only), the k at which its curve falls to the
    start's (mean over the seeds that cross; how many do), and the held-out mazes solved within n samples by the
    start, the method, both (mean over seeds)."""
    ref_label, ref_dirs, _ = methods[reference]
    ref_by_seed = {seed: last for seed, _, last in curve_runs(ref_dirs)}
    rows = [(label, curve_runs(dirs)) for label, dirs, _ in methods]
    rows = [(label, runs) for label, runs in rows if runs]
    if not rows:
        return "(no runs with pass@k curves)"
    n = rows[0][1][0][2]["n_samples"]
    ks = [k for k in ks if k <= n]
    # G-Pass@k_tau (evaluate.g_pass_at_k) beside pass@k; eval.json holds it over all held-out sizes only
    g_keys = sorted(rows[0][1][0][2].get("g_pass", {})) if sizes is None else []
    header = (["method", "seeds"] + [f"p@{k}" for k in ks] + [f"Δ p@{ks[-1]} vs start"]
              + [f"Δ p@{k} vs {ref_label}" for k in ks]
              + ([" / ".join(key.replace("_", " τ=") for key in g_keys)] if g_keys else [])
              + ["crosses start at k", f"solved of {{mazes}} at n={n}: start / method / both"])
    lines = []
    for label, runs in rows:
        finals = [curve_of(last, sizes) for _, _, last in runs]
        starts = [curve_of(first, sizes) for _, first, _ in runs]
        cells = [label, str(len(runs))] + [cell([f[k] for f in finals]) for k in ks]
        cells.append(delta_cell([f[ks[-1]] - s[ks[-1]] for f, s in zip(finals, starts)]))
        for k in ks:
            if label == ref_label:
                cells.append("")
                continue
            deltas = [curve_of(last, sizes)[k] - curve_of(ref_by_seed[seed], sizes)[k]
                      for seed, _, last in runs if seed in ref_by_seed]
            cells.append(delta_cell(deltas) if deltas else "-")
        if g_keys:
            cells.append(" / ".join(cell([last.get("g_pass", {}).get(key, math.nan) for _, _, last in runs])
                                    for key in g_keys))
        crossings = [crossing_k(f, s) for f, s in zip(finals, starts)]
        crossed = [k for k, kind in crossings if kind == "cross"]
        kinds = sorted({kind for _, kind in crossings if kind != "cross"})
        cells.append((f"{np.mean(crossed):.1f} ({len(crossed)}/{len(runs)})" if crossed else "none")
                     + (f"; others {', '.join(kinds)}" if kinds else ""))
        overlaps = [solved_overlap(correct_of(first, sizes), correct_of(last, sizes)) for _, first, last in runs]
        mazes = overlaps[0]["mazes"]
        header[-1] = f"solved of {mazes} at n={n}: start / method / both"
        cells.append(" / ".join(f"{np.mean([o[key] for o in overlaps]):.1f}" for key in ("a", "b", "both")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + lines)


def wall_seconds(run_dirs):
    seconds = []
    for d in run_dirs:
        path = os.path.join(d, "wall.json")
        if os.path.exists(path):
            with open(path) as f:
                seconds.append(json.load(f)["wall_seconds"])
    return seconds


def plot_experiments(runs_root, out_dir, steps, skip=()):
    """Every comparison of experiments/maze.py found under runs_root: a figure and a table each; run folders
    in `skip` are left out. Returns the markdown of the tables (also written to out_dir/tables.md)."""
    from experiments.maze import comparisons

    mode = os.path.basename(os.path.normpath(runs_root))
    skip = {os.path.normpath(path) for path in skip}
    sections, all_dirs = [], set()
    for name, entries in comparisons(steps, mode).items():
        methods = [(label, [d for d in seed_dirs(runs_root, run) if os.path.normpath(d) not in skip], offset)
                   for label, run, offset in entries]
        if not any(dirs for _, dirs, _ in methods):
            continue
        for _, dirs, _ in methods:
            all_dirs.update(dirs)
        figure = os.path.join(out_dir, f"{mode}_{name}.png")
        plot_comparison(methods, figure, title=f"{name} ({mode})")
        start = next((dirs for _, dirs, offset in methods if offset == 0 and dirs), [])  # one run per seed
        section = f"### {name}\n\n![{name}]({os.path.basename(figure)})\n\n" + per_size_table(methods, start)
        # read once: a grid still running may change a run's metrics.jsonl between two reads
        curves = {label: curve_runs(dirs) for label, dirs, _ in methods}
        with_curves = [(label, dirs, offset) for label, dirs, offset in methods if curves[label]]
        if with_curves:  # pass@k curves (the long protocol): start vs each method, all / seen / unseen sizes
            sizes = held_out_groups(curves[with_curves[0][0]][0][2])
            seen = [s for s in sizes if s in SEEN_SIZES]
            unseen = [s for s in sizes if isinstance(s, int) and s not in SEEN_SIZES]
            groups = {"all held-out sizes" if seen or unseen else "held-out items": None,
                      **({f"seen sizes {seen}": seen} if seen else {}), **({f"unseen sizes {unseen}": unseen} if unseen else {})}
            curve_figure = os.path.join(out_dir, f"{mode}_{name}_passk.png")
            plot_passk_curves(with_curves, curve_figure, groups, title=f"{name} ({mode})")
            section += f"\n\n![{name} pass@k]({os.path.basename(curve_figure)})\n\n{'All held-out sizes' if seen or unseen else 'Held-out items'}:\n\n" + \
                passk_curve_table(with_curves)
            if unseen:
                section += f"\n\nUnseen sizes {unseen} only:\n\n" + passk_curve_table(with_curves, sizes=unseen)
        sections.append(section)
    seconds = wall_seconds(sorted(all_dirs))
    if seconds:
        sections.append(f"{len(seconds)} runs with a recorded wall time: {sum(seconds) / 60:.1f} min in all "
                        f"(mean {np.mean(seconds):.0f} s, min {min(seconds):.0f} s, max {max(seconds):.0f} s a run)")
    text = "\n\n".join(sections) + "\n"
    with open(os.path.join(out_dir, f"{mode}_tables.md"), "w") as f:
        f.write(text)
    return text


def sort_runs(runs_root):
    """Every folder under runs_root with a metrics.jsonl, sorted into those plot_experiments draws (a
    <group>/<name>-seed<N> folder of a run in experiments/maze.py's comparisons, readable, with a held-out
    evaluation) and the others: (usable folders, {skipped folder: why})."""
    from experiments.maze import comparisons

    known = {run for mode in ("full", "long", "horizon", "tasks") for entries in comparisons(2, mode).values() for _, run, _ in entries}
    usable, skipped = [], {}
    for folder, _, files in sorted(os.walk(runs_root)):
        if "metrics.jsonl" not in files:
            continue
        run, _, seed = os.path.relpath(folder, runs_root).replace(os.sep, "/").rpartition("-seed")
        if not re.fullmatch(r"\d+", seed):
            skipped[folder] = "not a <group>/<name>-seed<N> run folder as experiments/maze.py writes"
            continue
        if run not in known:
            skipped[folder] = f"{run!r} is not a run that experiments/maze.py compares"
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


def main(argv=None):
    """Exit status 2 for a runs folder that does not exist or bad options, 1 if it holds no usable run.
    Runs that cannot be plotted are named on stderr with the reason and skipped; the others are drawn."""
    from cli import CommandError, add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", help="experiments/runs/<mode> or one train.py out_dir")
    parser.add_argument("--out", default=FIGURES)
    parser.add_argument("--steps", type=int, default=None, help="steps of a run (default: the mode's, maze.py)")
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
    if args.steps is not None and args.steps < 1:
        usage_error(f"--steps={args.steps} must be >= 1")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        usage_error(f"--out={args.out!r} is a file, not a folder")
    runs = None if args.advantages_only else args.runs
    if runs and not os.path.isdir(runs):
        usage_error(f"runs folder {runs!r} {'is a file, not a folder' if os.path.exists(runs) else 'does not exist'}")
    single = bool(runs) and os.path.exists(os.path.join(runs, "metrics.jsonl"))  # one train.py out_dir
    if single:
        train, evaluations = load_run(runs)
        if not train and not evaluations:
            raise CommandError(f"{os.path.join(runs, 'metrics.jsonl')} holds no complete record yet")
    elif runs:
        usable, skipped = sort_runs(runs)
        for folder, why in skipped.items():
            print(f"warning: skipped {folder}: {why}", file=sys.stderr)
        if not usable:
            raise CommandError(f"no run to plot in {runs!r}{f' ({len(skipped)} skipped, see above)' if skipped else ''}"
                               ": expected <group>/<name>-seed<N>/metrics.jsonl as experiments/maze.py writes "
                               "them under experiments/runs/<mode>, or one train.py out_dir")
        steps = args.steps
        if steps is None:
            from experiments.maze import MODES

            mode = os.path.basename(os.path.normpath(runs))
            if mode not in MODES:
                usage_error(f"cannot tell the steps of a run in {runs!r}: its name is not a mode of "
                            f"experiments/maze.py ({', '.join(MODES)}); pass --steps")
            steps = MODES[mode]["steps"]

    os.makedirs(args.out, exist_ok=True)
    if args.estimator_gradients:
        plot_estimator_gradients(os.path.join(args.out, "estimator_gradients.png"), args.n_rollouts, args.k)
        print(f"wrote {args.out}/estimator_gradients.png")
        return
    plot_advantage_curves(os.path.join(args.out, "advantage_curves.png"), args.n_rollouts, args.k)
    plot_advantage_k(os.path.join(args.out, "advantage_curves_k.png"), args.n_rollouts,
                     ks=tuple(k for k in (2, 4, 8) if k <= args.n_rollouts))
    print(f"wrote {args.out}/advantage_curves.png, advantage_curves_k.png")
    if not runs:
        return
    if single:
        name = os.path.basename(os.path.normpath(runs))
        plot_comparison([(name, [runs], 0)], os.path.join(args.out, f"{name}_curves.png"), title=name)
        if evaluations:
            print(per_size_table([(name, [runs], 0)], [runs]))
        else:
            print(f"warning: {runs} has no held-out evaluation yet: curves only, no table", file=sys.stderr)
        return
    print(plot_experiments(runs, args.out, steps, skip=skipped))


if __name__ == "__main__":
    from cli import run

    run(main)
