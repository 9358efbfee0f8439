"""The statistics behind RESULTS.md's verdicts: Student's t and Benjamini-Hochberg from scipy.stats, and what
scipy does not have: Holm's step-down correction, TOST and the variance of a crossed design of seeds and items.

    paired_t(deltas)                         mean, 95% paired-t interval and two-sided p over seeds
    crossed_test(differences)                the same with seeds *and* held-out items random (two-way ANOVA)
    holm(p), benjamini_hochberg(p)           adjusted p-values: a pre-declared family / exploratory ones
    tost(deltas, margin), crossed_tost       equivalence within +-margin (two one-sided t tests)
    pass_at_k(n, c, k)                       the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)

A comparison here is paired by seed: method B minus method A, each seed's runs sharing the seed's prompts
and start policy. Seeds are independent replicates; the held-out items (mazes, task questions) are a sample
of their population too, and every seed evaluates the same items, so an interval that resamples only seeds
treats the items as fixed. crossed_variance counts both, each variance component once: the seed, item and
seed x item components of a two-way random-effects ANOVA (a bootstrap resampling seeds and items of this crossed
design counts the interaction about three times: Owen 2007).
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
# pass@k over items, and the variance of a mean over seeds and items (crossed design)
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


def crossed_variance(differences, weights=None):
    """The variance of a mean paired difference with seeds and items both random (two-way random-effects ANOVA).

    differences: {group: (n_seeds, n_items) array} of per-item differences (B - A), every seed on the same items;
    the statistic is sum_g w_g * mean(differences[g]), weights {group: w} normalised (default equal). Model, per
    group: d_si = mu + seed_s + item_i + (seed x item)_si, one value per cell (so the interaction holds the two
    evaluations' sampling noise too). The mean squares of a group's seeds x items table have expectations
        E MS_seed = s_int^2 + I s_seed^2,   E MS_item = s_int^2 + S s_item^2,   E MS_int = s_int^2,
    so the variance of its grand mean, s_seed^2 / S + s_item^2 / I + s_int^2 / (S I), counts each component once
    (the crossed bootstrap counts the interaction about 3 times: Owen 2007). Over groups, the seed and interaction
    terms are those of the per-seed statistic y_s = sum_g w_g mean_i d_si, whose variance over seeds is the paired
    t's; the items add sum_g w_g^2 s_item,g^2 / I_g:
        var = s_y^2 / S + sum_g w_g^2 (MS_item,g - MS_int,g) / (S I_g),
    with a component estimated below 0 set to 0 (an item component when MS_item < MS_int; the seed component when
    s_y^2 / S is below the interaction's sum_g w_g^2 MS_int,g / (S I_g), which then stands in for it). Degrees of
    freedom by Satterthwaite (1946) over the independent mean squares combined. Returns dict(mean, se, df, seed,
    item, interaction): the components' shares of var (summing to se^2). One item per group (a scalar metric per
    seed) leaves the paired t."""
    groups = list(differences)
    arrays = [np.asarray(differences[g], dtype=float) for g in groups]
    n_seeds = arrays[0].shape[0]
    if n_seeds < 2 or any(array.shape != (n_seeds, array.shape[1]) for array in arrays):
        raise ValueError(f"every group needs the same >= 2 seeds, got shapes {[a.shape for a in arrays]}")
    w = np.array([1.0 if weights is None else float(weights[g]) for g in groups])
    w = w / w.sum()
    per_seed = sum(weight * array.mean(1) for weight, array in zip(w, arrays))  # (n_seeds,): y_s
    combination = {"seeds": [1.0 / n_seeds, float(per_seed.var(ddof=1)), n_seeds - 1]}  # [coefficient, MS, df]
    interaction = item = 0.0
    for g, weight, array in zip(groups, w, arrays):
        n_items = array.shape[1]
        if n_items < 2:
            continue
        residual = array - array.mean(1, keepdims=True) - array.mean(0, keepdims=True) + array.mean()
        ms_int = float((residual ** 2).sum()) / ((n_seeds - 1) * (n_items - 1))
        ms_item = n_seeds * float(array.mean(0).var(ddof=1))
        c = weight ** 2 / (n_seeds * n_items)
        combination[("interaction", g)] = [0.0, ms_int, (n_seeds - 1) * (n_items - 1)]
        interaction += c * ms_int
        if ms_item > ms_int:
            combination[("items", g)] = [c, ms_item, n_items - 1]
            combination[("interaction", g)][0] -= c
            item += c * (ms_item - ms_int)
    seed = combination["seeds"][0] * combination["seeds"][1] - interaction
    if seed < 0:  # the seed component below 0: 0, and the interaction from the residual mean squares
        seed = 0.0
        combination["seeds"][0] = 0.0
        for g, weight, array in zip(groups, w, arrays):
            if ("interaction", g) in combination:
                combination[("interaction", g)][0] += weight ** 2 / (n_seeds * array.shape[1])
    variance = seed + item + interaction
    denominator = sum((c * ms) ** 2 / df for c, ms, df in combination.values() if c)
    df = variance ** 2 / denominator if denominator > 0 else math.inf
    return dict(mean=float(per_seed.mean()), se=math.sqrt(variance), df=float(df), seed=float(seed), item=float(item),
                interaction=float(interaction))


def crossed_test(differences, weights=None, level=0.95):
    """The mean paired difference with seeds and items both random: crossed_variance's SE, a t interval at level
    and the two-sided p of 0, on Satterthwaite's degrees of freedom. Returns crossed_variance's dict with lo, hi, p."""
    result = crossed_variance(differences, weights)
    mean, se, df = result["mean"], result["se"], result["df"]
    if se == 0.0:
        return dict(result, lo=mean, hi=mean, p=0.0 if mean else 1.0)
    half = float(scipy_stats.t.ppf(0.5 + level / 2.0, df)) * se
    return dict(result, lo=mean - half, hi=mean + half, p=float(min(1.0, 2.0 * scipy_stats.t.sf(abs(mean) / se, df))))


def crossed_tost(differences, margin, weights=None, alpha=0.05):
    """Equivalence within +-margin with seeds and items both random: two one-sided t tests on crossed_variance's
    SE and degrees of freedom. Returns dict(p, equivalent, lo, hi): [lo, hi] the (1 - 2 alpha) interval."""
    result = crossed_variance(differences, weights)
    mean, se, df = result["mean"], result["se"], result["df"]
    if se == 0.0:
        return dict(p=0.0 if abs(mean) < margin else 1.0, equivalent=abs(mean) < margin, lo=mean, hi=mean)
    p = float(max(scipy_stats.t.sf((mean + margin) / se, df), scipy_stats.t.sf((margin - mean) / se, df)))
    half = float(scipy_stats.t.ppf(1.0 - alpha, df)) * se
    return dict(p=p, equivalent=p < alpha, lo=mean - half, hi=mean + half)
