"""lab/stats.py: against scipy's paired t and one-sided t tests, known values, hand-computed corrections,
constructed equivalence cases, bootstrap coverage."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lab import stats


def test_paired_t_is_scipys_ttest_rel():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10, 30):
        a, b = rng.normal(0.3, 0.05, size=n), rng.normal(0.32, 0.05, size=n)
        ours, theirs = stats.paired_t(b - a, level=0.9), scipy_stats.ttest_rel(b, a)
        interval = theirs.confidence_interval(0.9)
        assert ours["p"] == pytest.approx(theirs.pvalue, rel=1e-9)
        assert (ours["lo"], ours["hi"]) == pytest.approx((interval.low, interval.high), rel=1e-9)


def test_paired_t_interval_and_p():
    table = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045}  # two-sided 95% t, any statistics textbook
    for df, value in table.items():
        deltas = [0.01 * (i % 2) for i in range(df + 1)]
        result = stats.paired_t(deltas)
        half = value * np.std(deltas, ddof=1) / math.sqrt(df + 1)
        assert result["hi"] - result["mean"] == pytest.approx(half, rel=1e-3)
    result = stats.paired_t([0.02, 0.021, 0.019])  # mean 0.02, sd 0.001, se 0.001/sqrt(3), t = 34.6 on 2 df
    assert result["mean"] == pytest.approx(0.02)
    assert result["hi"] - result["mean"] == pytest.approx(4.3027 * 0.001 / math.sqrt(3), rel=1e-4)
    assert result["p"] == pytest.approx(2 * scipy_stats.t.sf(0.02 / (0.001 / math.sqrt(3)), 2))
    assert stats.paired_t([0.04, -0.01, 0.03])["p"] > 0.05
    assert math.isnan(stats.paired_t([0.05])["p"])
    assert stats.paired_t([0.0, 0.0])["p"] == 1.0


def test_holm_and_benjamini_hochberg_against_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> monotone 0.06
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005 x4/1 = 0.02, 0.01 x4/2 = 0.02, 0.03 x4/3 = 0.04, 0.04 x4/4 = 0.04
    assert stats.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # Holm: the step-down of Bonferroni, by its definition (reject in order of p while p_(i) <= alpha / (m - i))
    rng = np.random.default_rng(1)
    for _ in range(20):
        p, alpha = rng.uniform(0, 0.1, size=6), 0.05
        order, rejected = np.argsort(p), np.zeros(6, dtype=bool)
        for i, index in enumerate(order):
            if p[index] > alpha / (6 - i):
                break
            rejected[index] = True
        assert ((stats.holm(p) <= alpha) == rejected).all()
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    held = stats.benjamini_hochberg([0.01, math.nan, 0.02])
    assert math.isnan(held[1]) and held[[0, 2]] == pytest.approx([0.02, 0.02])  # nan is left out of m
    rng = np.random.default_rng(0)
    for _ in range(20):  # Holm is never below BH, and neither below the raw p
        p = rng.uniform(size=8)
        assert (stats.holm(p) >= stats.benjamini_hochberg(p) - 1e-12).all()
        assert (stats.benjamini_hochberg(p) >= p - 1e-12).all()


def test_tost_accepts_a_tight_zero_and_rejects_a_wide_or_shifted_one():
    tight = [0.002, -0.003, 0.001, 0.0, -0.001, 0.002, -0.002, 0.001, 0.0, 0.001]
    assert stats.tost(tight, margin=0.02)["equivalent"]
    wide = [0.03, -0.03, 0.025, -0.02, 0.0]  # mean 0.001, but the 90% interval reaches beyond +-0.02
    result = stats.tost(wide, margin=0.02)
    assert not result["equivalent"] and result["p"] > 0.05 and result["lo"] < -0.02
    shifted = [0.019, 0.021, 0.02, 0.022, 0.018]  # precisely measured, at the margin: not equivalent
    assert not stats.tost(shifted, margin=0.02)["equivalent"]
    # TOST p is the larger of scipy's two one-sided t tests, against -margin and +margin
    for deltas in (tight, wide, shifted, [0.01, -0.01, 0.01, -0.01]):
        lower = scipy_stats.ttest_1samp(deltas, -0.02, alternative="greater").pvalue
        upper = scipy_stats.ttest_1samp(deltas, 0.02, alternative="less").pvalue
        assert stats.tost(deltas, 0.02)["p"] == pytest.approx(max(lower, upper), rel=1e-9)


def test_pass_at_k_is_the_unbiased_estimator():
    assert stats.pass_at_k(128, 3, 8) == pytest.approx(1 - math.comb(125, 8) / math.comb(128, 8))
    assert stats.pass_at_k(8, [0, 1, 8], 1).tolist() == pytest.approx([0.0, 0.125, 1.0])
    assert stats.pass_at_k(8, 1, 8) == 1.0
    with pytest.raises(ValueError):
        stats.pass_at_k(8, 1, 9)


def test_item_differences_pair_items_and_seeds():
    a = {"5": [[0, 4], [8, 8]]}
    b = {"5": [[4, 4], [8, 0]]}
    d = stats.item_differences(a, b, n=8, k=1)["5"]
    assert d == pytest.approx(np.array([[0.5, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError):
        stats.item_differences(a, {"7": [[0, 0], [0, 0]]}, 8, 1)


def simulate_crossed(rng, n_seeds, n_items, seed_sd, item_sd, interaction_sd, mean=1.0):
    """(n_seeds, n_items) differences with known variance components."""
    return (mean + rng.normal(0, seed_sd, (n_seeds, 1)) + rng.normal(0, item_sd, (1, n_items))
            + rng.normal(0, interaction_sd, (n_seeds, n_items)))


def test_crossed_variance_is_unbiased_for_known_components_and_its_interval_covers():
    rng = np.random.default_rng(0)
    n_seeds, n_items, truth = 10, 60, (0.5, 1.0, 2.0)
    expected = np.array([truth[0] ** 2 / n_seeds, truth[1] ** 2 / n_items, truth[2] ** 2 / (n_seeds * n_items)])
    components, covered = [], 0
    for _ in range(2000):
        d = simulate_crossed(rng, n_seeds, n_items, *truth)
        result = stats.crossed_test({"g": d})
        components.append([result["seed"], result["item"], result["interaction"]])
        covered += result["lo"] <= 1.0 <= result["hi"]
    np.testing.assert_allclose(np.mean(components, 0), expected, rtol=0.08)
    assert 0.93 <= covered / 2000 <= 0.97


def test_crossed_variance_matches_an_anova_by_least_squares_and_scipy_t():
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(1)
    d = simulate_crossed(rng, 6, 9, 0.7, 0.9, 0.5)
    n_seeds, n_items = d.shape
    # the two-way ANOVA's sums of squares from least-squares fits of the additive model and its parts
    seeds = np.kron(np.eye(n_seeds), np.ones((n_items, 1)))
    items = np.kron(np.ones((n_seeds, 1)), np.eye(n_items))
    y = d.ravel()
    rss = lambda x: float(((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2).sum())  # noqa: E731
    ones = np.ones((len(y), 1))
    ms_seed = (rss(ones) - rss(seeds)) / (n_seeds - 1)
    ms_item = (rss(ones) - rss(items)) / (n_items - 1)
    ms_int = rss(np.hstack([seeds, items])) / ((n_seeds - 1) * (n_items - 1))
    result = stats.crossed_test({"g": d})
    assert result["se"] ** 2 == pytest.approx((ms_seed + ms_item - ms_int) / (n_seeds * n_items), rel=1e-9)
    assert result["interaction"] == pytest.approx(ms_int / (n_seeds * n_items), rel=1e-9)
    # one item per seed: the paired t over seeds, as scipy computes it
    single = stats.crossed_test({"g": d[:, :1]})
    assert single["p"] == pytest.approx(scipy_stats.ttest_1samp(d[:, 0], 0.0).pvalue, rel=1e-9)
    assert single["df"] == pytest.approx(n_seeds - 1)


def test_crossed_variance_sets_negative_components_to_zero_and_weighs_groups():
    rng = np.random.default_rng(2)
    no_items = 1.0 + rng.normal(0, 1.0, (8, 1)) + rng.normal(0, 3.0, (8, 50))  # items add nothing: often < 0
    result = stats.crossed_variance({"g": no_items})
    assert result["seed"] >= 0 and result["item"] >= 0
    assert result["se"] ** 2 == pytest.approx(result["seed"] + result["item"] + result["interaction"])
    a, b = simulate_crossed(rng, 8, 30, 0.5, 1.0, 1.0), simulate_crossed(rng, 8, 10, 0.5, 1.0, 1.0, mean=3.0)
    weighted = stats.crossed_test({"a": a, "b": b}, weights={"a": 3, "b": 1})
    assert weighted["mean"] == pytest.approx(0.75 * a.mean() + 0.25 * b.mean())
    with pytest.raises(ValueError, match="same >= 2 seeds"):
        stats.crossed_variance({"a": a, "b": b[:5]})


def test_crossed_tost_needs_the_interval_inside_the_margin():
    rng = np.random.default_rng(3)
    d = simulate_crossed(rng, 10, 100, 0.2, 0.2, 0.5, mean=0.1)
    assert stats.crossed_tost({"g": d}, margin=1.0)["equivalent"]
    wide = stats.crossed_tost({"g": d}, margin=0.1)
    assert not wide["equivalent"] and wide["lo"] < 0.1 < wide["hi"]
