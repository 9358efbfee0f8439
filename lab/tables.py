"""Tables of a grid's methods, from their records: mean +- std over seeds (sample std, ddof=1) of the final
held-out pass@1 / pass@8 per group, and paired (same seed) changes against a reference method with their 95%
paired-t intervals (stats.paired_t); the pass@k curve table (Yue et al., 2025: does RL narrow what the model can
solve at large k? paper sec. 2.2) with the k where a method's curve falls to its start's."""
import math

import numpy as np

from evaluate import crossing_k
from lab import stats
from lab.records import (by_seed, correct_of, curve_of, curve_runs, eval_value, final_eval, group_label, group_order,
                         held_out_groups)


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


def solved(counts_a, counts_b):
    """Items solved (at least one correct sample) by a, by b and by both; and how many items there are."""
    a = {index for index, count in counts_a.items() if count > 0}
    b = {index for index, count in counts_b.items() if count > 0}
    return dict(a=len(a), b=len(b), both=len(a & b), items=len(counts_a))


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
