"""The statistics behind RESULTS.md's verdicts: Student's t and Benjamini-Hochberg from scipy.stats, and what
scipy does not have: Holm's step-down correction, TOST and a bootstrap over a crossed design of seeds and items.

    paired_t(deltas)                         mean, 95% paired-t interval and two-sided p over seeds
    hierarchical_bootstrap(a, b, k)          a percentile interval over seeds *and* held-out items
    holm(p), benjamini_hochberg(p)           adjusted p-values: a pre-declared family / exploratory ones
    tost(deltas, margin)                     equivalence within +-margin (two one-sided t tests)
    pass_at_k(n, c, k)                       the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)

A comparison here is paired by seed: method B minus method A, each seed's runs sharing the seed's prompts
and start policy. Seeds are independent replicates; the held-out items (mazes, task questions) are a sample
of their population too, and every seed evaluates the same items, so an interval that resamples only seeds
treats the items as fixed. hierarchical_bootstrap resamples both: seeds with replacement, and, once per
replicate, the items within each held-out group (the same draw for every seed: the design is crossed).
"""
import math

import numpy as np
from scipy import stats as scipy_stats


# -----------------------------------------------------------------------------
# paired comparisons over seeds
def paired_t(deltas, level=0.95):
    """deltas: one paired difference per seed. Returns dict(mean, lo, hi, p, n, sd): the level paired-t interval
    of the mean (t with n - 1 degrees of freedom) and the two-sided p of mean = 0. With fewer than two seeds, or no
    spread at all, lo/hi/p are nan unless the spread is exactly 0 (then the interval is the point, p 0 or 1)."""
    values = np.asarray([d for d in deltas if not math.isnan(d)], dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return dict(mean=mean, lo=math.nan, hi=math.nan, p=math.nan, n=n, sd=math.nan)
    sd = float(values.std(ddof=1))
    if sd == 0.0:
        return dict(mean=mean, lo=mean, hi=mean, p=0.0 if mean else 1.0, n=n, sd=0.0)
    # scipy.stats.ttest_rel(b, a)'s test, from the differences: ttest_rel warns of precision loss when they are
    # nearly equal (a method against a near-copy of itself), and the tables only need its t quantile and tail
    se, t = sd / math.sqrt(n), scipy_stats.t(n - 1)
    half = float(t.ppf(0.5 + level / 2.0)) * se
    return dict(mean=mean, lo=mean - half, hi=mean + half, p=min(1.0, 2.0 * float(t.sf(abs(mean) / se))), n=n, sd=sd)


def tost(deltas, margin, alpha=0.05):
    """Two one-sided paired t tests of |mean| < margin (Schuirmann 1987). Returns dict(p, equivalent, lo, hi):
    p = the larger of the two one-sided p-values; equivalent when p < alpha, i.e. when the (1 - 2 alpha) paired-t
    interval [lo, hi] lies inside (-margin, margin)."""
    values = np.asarray([d for d in deltas if not math.isnan(d)], dtype=float)
    n = len(values)
    if n < 2:
        return dict(p=math.nan, equivalent=False, lo=math.nan, hi=math.nan)
    mean, se = float(values.mean()), float(values.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return dict(p=0.0 if abs(mean) < margin else 1.0, equivalent=abs(mean) < margin, lo=mean, hi=mean)
    t = scipy_stats.t(n - 1)
    p = float(max(t.sf((mean + margin) / se), t.sf((margin - mean) / se)))
    half = float(t.ppf(1.0 - alpha)) * se
    return dict(p=p, equivalent=p < alpha, lo=mean - half, hi=mean + half)


# -----------------------------------------------------------------------------
# multiplicity
def holm(pvalues):
    """Holm's step-down adjusted p-values (family-wise error control), in the input order. nan stays nan.
    (scipy.stats has no Holm correction; statsmodels' multipletests(method="holm") is the same.)"""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m, running = len(valid), 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(pvalues):
    """Benjamini-Hochberg q-values (false-discovery-rate control; scipy.stats.false_discovery_control), in the
    input order. nan stays nan and is left out of the family's size."""
    p = np.asarray(pvalues, dtype=float)
    q = np.full(len(p), math.nan)
    valid = ~np.isnan(p)
    if valid.any():
        q[valid] = scipy_stats.false_discovery_control(p[valid], method="bh")
    return q


# -----------------------------------------------------------------------------
# pass@k over items, and the hierarchical bootstrap
def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k), computed as
    1 - prod_{i=n-c+1}^{n} (1 - k / i) (Chen et al. 2021). c: an int or an array of ints; returns the same shape."""
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and n={n} samples")
    counts = np.asarray(c)
    result = np.array([1.0 if n - count < k else 1.0 - float(np.prod(1.0 - k / np.arange(n - count + 1, n + 1)))
                       for count in counts.ravel().tolist()])
    return float(result[0]) if counts.ndim == 0 else result.reshape(counts.shape)


def item_differences(a, b, n, k):
    """a, b: {group: (n_seeds, n_items) correct counts out of n} of two methods on the same seeds and items.
    Returns {group: (n_seeds, n_items) float array of pass@k(b) - pass@k(a)}."""
    if set(a) != set(b):
        raise ValueError(f"the two methods have different held-out groups: {sorted(a)} vs {sorted(b)}")
    out = {}
    for group in a:
        counts_a, counts_b = np.asarray(a[group]), np.asarray(b[group])
        if counts_a.shape != counts_b.shape:
            raise ValueError(f"group {group!r}: shapes {counts_a.shape} and {counts_b.shape} differ (same seeds and items?)")
        out[group] = pass_at_k(n, counts_b, k) - pass_at_k(n, counts_a, k)
    return out


def hierarchical_bootstrap(differences, replicates=4000, level=0.95, seed=0, weights=None):
    """Percentile interval of the mean paired difference over seeds and items.

    differences: {group: (n_seeds, n_items) array}, e.g. from item_differences. The statistic is the weighted mean
    over groups of the mean over seeds and items: weights {group: w} (normalised here), by default equal (the
    'average over sizes' of the tables); weights proportional to the item counts give the mean over all items
    (every item weighs the same). Each replicate draws the
    seeds with replacement (one draw for all groups: a seed is one run) and, in each group, its items with
    replacement (one draw for all seeds: every seed saw the same items). Returns dict(mean, lo, hi, p): p is the
    two-sided bootstrap p of 0 (twice the smaller share of replicates on either side of 0, at least 1/replicates)."""
    groups = list(differences)
    arrays = [np.asarray(differences[g], dtype=float) for g in groups]
    n_seeds = arrays[0].shape[0]
    if any(array.shape[0] != n_seeds for array in arrays):
        raise ValueError("every group needs the same seeds")
    w = np.array([1.0 if weights is None else float(weights[g]) for g in groups])
    w = w / w.sum()
    rng = np.random.default_rng(seed)
    seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=replicates) / n_seeds
    stats = np.zeros(replicates)
    for weight, array in zip(w, arrays):
        n_items = array.shape[1]
        item_weights = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=replicates) / n_items
        stats += weight * np.einsum("rs,si,ri->r", seed_weights, array, item_weights)
    mean = float(sum(weight * array.mean() for weight, array in zip(w, arrays)))
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, max(2 * min((stats <= 0).mean(), (stats >= 0).mean()), 1.0 / replicates))
    return dict(mean=mean, lo=float(lo), hi=float(hi), p=float(p))
