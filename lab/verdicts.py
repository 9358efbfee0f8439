"""Verdicts: paired comparisons of two runs' policies, as RESULTS.md prints them, each with both intervals
(the paired t over seeds, which treats the held-out items as fixed; the two-way random-effects t over seeds and
items, stats.crossed_test, which decides), a corrected p (Holm over a pre-declared family, Benjamini-Hochberg
q-values over an exploratory one) and, for a "no cost" claim, TOST against an equivalence margin (stats.py). The families name the paper's takeaways (sections 2.2-4.2).

A comparison: (takeaway, grid, B, A, metric, groups, margin): B minus A paired by seed; B and A are runs
'group/name' at their end, or 'start:group/name' for that run's step-0 policy; metric 'p@K' (pass@K, from the
per-item correct counts), 'entropy' or 'diversity' (no per-item values: seeds only); groups: the held-out
groups to average over (None: all, each group alike; 'pooled': all, each item alike); margin: an equivalence
margin (TOST) for a "no cost" claim, else None.
"""
import math

import numpy as np

from lab import stats
from lab.grids import LONG, PRIMARY_BASELINES, PRIMARY_METHODS
from lab.records import curve_of, eval_value, group_cell, held_out_groups

METRICS = {"entropy": ("entropy", 1.0, 3), "diversity": ("negative_answer_diversity", 100.0, 1)}
EQUIVALENCE_MARGIN = 0.02  # +-2 points of pass@1: "no pass@1 cost" means within it (TOST)


def comparison_values(index, b, a, metric, groups=None):
    """Per seed (seeds that both runs have): the paired difference of the scalar metric, for pass@k the per-item
    differences {group: (n_seeds, n_items)} for the crossed variance, and the groups' weights (None: equal,
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


def evaluate_comparisons(records, comparisons_list, correction="bh"):
    """Each comparison with its paired t over seeds ("t", mazes fixed) and its two-way random-effects test over
    seeds and items ("crossed", stats.crossed_test: what decides), its corrected p (correction 'holm': a
    pre-declared family; 'bh': exploratory q-values) over the comparisons without a margin, computed from the
    crossed p, and, with a margin, its TOST on the crossed variance ("tost"; the paired-t TOST beside it in
    "tost_t"). Returns a list of dicts."""
    index = {}
    for record in records:
        index.setdefault((record["grid"], record["run"]), {})[record["seed"]] = record
    results = []
    for takeaway, grid, b, a, metric, groups, margin in comparisons_list:
        runs = {run: seeds for (g, run), seeds in index.items() if g == grid}
        seeds, deltas, items, weights = comparison_values(runs, b, a, metric, groups)
        result = dict(takeaway=takeaway, grid=grid, b=b, a=a, metric=metric, groups=groups, margin=margin,
                      seeds=len(seeds), t=stats.paired_t(deltas))
        result["crossed"] = stats.crossed_test(items, weights) if len(seeds) >= 2 else None
        if margin is not None:
            result["tost_t"] = stats.tost(deltas, margin)
            result["tost"] = stats.crossed_tost(items, margin, weights) if len(seeds) >= 2 else \
                dict(p=math.nan, equivalent=False, lo=math.nan, hi=math.nan)
        results.append(result)
    tested = [r for r in results if r["margin"] is None]
    adjust = stats.holm if correction == "holm" else stats.benjamini_hochberg
    for result, p in zip(tested, adjust([r["crossed"]["p"] if r["crossed"] else math.nan for r in tested])):
        result["p_adjusted"] = float(p)
    if correction == "holm":  # a declared family's equivalence claims are a family of their own
        equivalences = [r for r in results if r["margin"] is not None]
        for result, p in zip(equivalences, stats.holm([r["tost"]["p"] for r in equivalences])):
            result["tost"]["p_adjusted"] = float(p)
    return results


def verdict(result, alpha=0.05, p=None):
    """'shown (+/-)' when the corrected crossed p < alpha; for a margin claim 'within ±M' when the corrected TOST p
    (crossed variance) < alpha, i.e. its (1 - 2 alpha) interval lies inside the margin before correction.
    p: another corrected p to decide with (familywise_line's Holm over a whole family)."""
    if result["margin"] is not None:
        p = result["tost"].get("p_adjusted", result["tost"]["p"]) if p is None else p
        return f"within ±{100 * result['margin']:.0f}" if p < alpha else "not shown"
    p = result.get("p_adjusted", math.nan) if p is None else p
    if p < alpha:
        return "shown (+)" if result["crossed"]["mean"] > 0 else "shown (-)"
    return "not shown"


def familywise_line(results, alpha=0.05):
    """One sentence: the verdicts of a declared family under Holm over all its claims together (its tests and its
    TOSTs in one family: familywise error <= alpha over all of them), and which verdicts that changes."""
    p = stats.holm([r["tost"]["p"] if r["margin"] is not None else r["crossed"]["p"] for r in results])
    changed = [r["takeaway"] for r, q in zip(results, p) if verdict(r, alpha, q) != verdict(r, alpha)]
    held = sum(verdict(r, alpha, q) != "not shown" for r, q in zip(results, p))
    return (f"As declared, Holm runs over the {sum(r['margin'] is None for r in results)} tests and, apart, over "
            f"the {sum(r['margin'] is not None for r in results)} equivalence claims, each at {alpha}: the "
            f"familywise error over all {len(results)} claims together is at most {2 * alpha:.2f}. With Holm over all "
            f"{len(results)} in one family (familywise error at most {alpha}), {held} claims hold and "
            + (f"{', '.join(changed)} become \"not shown\" (Holm p {', '.join(f'{q:.3f}' for r, q in zip(results, p) if r['takeaway'] in changed)})."
               if changed else "no verdict changes."))


def run_label(name):
    return f"start of {name.removeprefix('start:').split('/')[-1]}" if name.startswith("start:") else name.split("/")[-1]


def verdict_table(results, correction="bh"):
    """Markdown: one row per comparison, effect and intervals in points (pass@k, diversity) or nats (entropy), the
    crossed SE's components (seeds, items, seed x item) as SEs, so that their squares add up to its square."""
    p_name = "Holm p" if correction == "holm" else "BH q"
    lines = [f"| takeaway | comparison (B - A) | metric | seeds | effect | paired-t 95% (items fixed) | "
             f"seeds + items 95% | SE: seeds / items / seed x item | {p_name} / TOST p | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        scale, digits = (100.0, 1) if r["metric"].startswith("p@") else METRICS[r["metric"]][1:]
        interval = lambda x: "-" if x is None or math.isnan(x["lo"]) else f"[{scale * x['lo']:.{digits}f}, {scale * x['hi']:.{digits}f}]"  # noqa: E731
        where = {None: "", "pooled": " (all items)"}.get(r["groups"]) if not isinstance(r["groups"], list) else \
            f" ({', '.join(map(str, r['groups']))})"
        crossed = r["crossed"]
        if r["metric"] in METRICS:  # one value a seed: the crossed test is the paired t
            crossed_cell, parts = interval(crossed) + " (seeds only)", "-"
        else:
            crossed_cell = interval(crossed)
            parts = "-" if crossed is None else " / ".join(f"{scale * math.sqrt(crossed[key]):.{digits + 1}f}"
                                                           for key in ("seed", "item", "interaction"))
        p = (f"TOST {r['tost'].get('p_adjusted', r['tost']['p']):.3f} (±{100 * r['margin']:.0f})" if r["margin"] is not None
             else f"{r['p_adjusted']:.3f}")
        lines.append(f"| {r['takeaway']} | {run_label(r['b'])} - {run_label(r['a'])} | {r['metric']}{where} | {r['seeds']} | "
                     f"{scale * r['t']['mean']:+.{digits}f} | {interval(r['t'])} | {crossed_cell} | {parts} | {p} | "
                     f"{verdict(r)} |")
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# the families
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
# the primary grid's other comparisons, chosen after its declaration: exploratory (BH over these 34), not verdicts
PRIMARY_EXPLORATORY = (
    [("precondition: Pass@1 narrows", "primary", PN["pass1"], "start:" + PN["pass1"], "p@128", "pooled", None),
     ("precondition: Pass@1 narrows", "primary", PN["pass1"], "start:" + PN["pass1"], "entropy", None, None)]
    + [("2.2 narrowing stopped?", "primary", PN[name], "start:" + PN[name], "p@128", "pooled", None)
       for _, name in PRIMARY_METHODS[1:]]
    + [("3.3 unseen sizes vs the start", "primary", PN[name], "start:" + PN[name], "p@128", UNSEEN, None)
       for _, name in PRIMARY_METHODS[1:]]
    + [("pass@1 cost", "primary", PN[name], PN["pass1"], "p@1", "pooled", None) for _, name in PRIMARY_METHODS[1:]]
    + [("3.2 explores more", "primary", PN[name], PN["pass1"], "entropy", None, None) for _, name in PRIMARY_METHODS[1:]]
    + [("3.2 entropy vs the start", "primary", PN[name], "start:" + PN[name], "entropy", None, None)
       for _, name in PRIMARY_METHODS[1:]]
    + [("3.1 baseline moved?", "primary", PN["entropy0.1"], PN["pass1"], "entropy", None, None),
       ("3.1 Pass@k > entropy reg.", "primary", PN["passk_analytical"], PN["entropy0.1"], "p@8", "pooled", None),
       ("3.1 Pass@k > entropy reg.", "primary", PN["passk_analytical"], PN["entropy0.1"], "p@128", "pooled", None),
       ("2.4 analytical vs bootstrap", "primary", PN["passk_analytical"], PN["passk_bootstrap"], "p@1", "pooled", None),
       ("2.4 analytical vs bootstrap", "primary", PN["passk_analytical"], PN["passk_bootstrap"], "p@128", "pooled", None),
       ("4.2 best-of-N vs exceeding", "primary", PN["best_of_n"], PN["passk_exceeding"], "p@128", "pooled", None),
       ("4.2 best-of-N vs exceeding", "primary", PN["best_of_n"], PN["passk_exceeding"], "p@1", "pooled", None)])


# H11's confirmatory test (RESULTS.md, declared before its runs), on experiments/maze.py --h11: one test, and
# "no gain beyond 1 point" (TOST at +-1) when it is not shown
H11_CONFIRMATORY = [("H11c", "h11", "h11/passk_analytical", "h11/pass1", "p@128", UNSEEN, None),
                    ("H11c: no gain beyond 1 point", "h11", "h11/passk_analytical", "h11/pass1", "p@128", UNSEEN, 0.01)]


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


def verdict_tables(records):
    """{block name: markdown} for RESULTS.md, from the records alone: 'verdicts' and 'family' (the exploratory
    comparisons of the long and tasks grids, BH), and 'primary' (Holm), 'primary-familywise' (familywise_line) and
    'primary-exploratory' (BH) when the records hold the primary grid, 'replication' and 'replication-familywise'
    (the same family, Holm) when they hold its replication, 'h11' when they hold its confirmatory test."""
    tables = {}
    if any(record["grid"] in ("long", "tasks") for record in records):
        results = evaluate_comparisons(records, exploratory_family())
        tables["verdicts"] = verdict_table(results[:len(VERDICTS)])
        tables["family"] = verdict_table(results[len(VERDICTS):])
    if any(record["grid"] == "primary" for record in records):
        primary = evaluate_comparisons(records, PRIMARY_FAMILY, "holm")
        tables["primary"] = verdict_table(primary, "holm")
        tables["primary-familywise"] = familywise_line(primary)
        tables["primary-exploratory"] = verdict_table(evaluate_comparisons(records, PRIMARY_EXPLORATORY))
    if any(record["grid"] == "replication" for record in records):  # the family again, from the shipped start
        replication = evaluate_comparisons(records, [(name, "replication", *rest) for name, _, *rest in PRIMARY_FAMILY],
                                           "holm")
        tables["replication"] = verdict_table(replication, "holm")
        tables["replication-familywise"] = familywise_line(replication)
    if any(record["grid"] == "h11" for record in records):
        tables["h11"] = verdict_table(evaluate_comparisons(records, H11_CONFIRMATORY, "holm"), "holm")
    return tables
