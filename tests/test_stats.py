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


def test_hierarchical_bootstrap_is_deterministic_and_wider_than_seeds_alone():
    rng = np.random.default_rng(1)
    item_effects = rng.normal(0, 0.1, size=(1, 40))  # items differ a lot, seeds little
    differences = {"g": 0.02 + item_effects + rng.normal(0, 0.005, size=(5, 40))}
    first = stats.hierarchical_bootstrap(differences, replicates=2000, seed=3)
    assert first == stats.hierarchical_bootstrap(differences, replicates=2000, seed=3)
    seeds_only = stats.paired_t(differences["g"].mean(1))
    assert first["hi"] - first["lo"] > 3 * (seeds_only["hi"] - seeds_only["lo"])  # item noise is counted
    assert first["lo"] < first["mean"] < first["hi"]


def test_hierarchical_bootstrap_covers_the_truth():
    """Synthetic crossed design: a true mean difference, an item population and seed noise. The 95% interval
    from each of 60 independent data sets covers the truth in most of them (percentile intervals undercover a
    little at 10 seeds and 30 items)."""
    truth, covered = 0.03, 0
    rng = np.random.default_rng(7)
    for trial in range(60):
        items = rng.normal(0, 0.08, size=(1, 30))  # this data set's items, drawn from a population centred on 0
        seeds = rng.normal(0, 0.02, size=(10, 1))
        data = {"g": truth + items + seeds + rng.normal(0, 0.02, size=(10, 30))}
        result = stats.hierarchical_bootstrap(data, replicates=1000, seed=trial)
        covered += result["lo"] <= truth <= result["hi"]
    assert covered >= 51  # >= 85 %


def test_hierarchical_bootstrap_weights_groups():
    differences = {"a": np.full((3, 10), 0.1), "b": np.full((3, 30), 0.5)}
    assert stats.hierarchical_bootstrap(differences, replicates=50)["mean"] == pytest.approx(0.3)
    pooled = stats.hierarchical_bootstrap(differences, replicates=50, weights={"a": 10, "b": 30})
    assert pooled["mean"] == pytest.approx((10 * 0.1 + 30 * 0.5) / 40) and pooled["lo"] == pytest.approx(pooled["mean"])
