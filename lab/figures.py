"""Figures: the advantage curves of every estimator (paper figures 9 and 18, eq. 16's eta), what each
estimator's expected gradient optimises, and a grid's training and held-out curves with its pass@k curves.
Curves show the mean over seeds with the min-max band. plot_experiments draws every figure of a grid and writes
its tables beside them (experiments/figures/<grid>_tables.md)."""
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from advantage import ADVANTAGES, advantage_curves, compute_advantages, expected_gradient  # noqa: E402
from lab.grids import comparisons  # noqa: E402
from lab.records import (SEEN_SIZES, curve_of, curve_runs, eval_curves, held_out_groups, train_curves,  # noqa: E402
                         wall_seconds)
from lab.tables import passk_curve_table, per_size_table  # noqa: E402


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
# what does each estimator optimise? (docs/estimators.md), from advantage.expected_gradient alone
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
# a grid's curves
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
