"""Tests for advantage.py: the paper's estimators, checked against their definitions."""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import advantage
from advantage import ADVANTAGES, compute_advantages, eta, advantage_curves


def rewards_with(n_rollouts, n_pos, seed=0):
    """One prompt's rewards with n_pos ones at random positions, shape (1, n_rollouts)."""
    order = np.random.default_rng(seed).permutation(n_rollouts)
    rewards = np.zeros(n_rollouts)
    rewards[order[:n_pos]] = 1
    return torch.tensor(rewards[None], dtype=torch.float32)


def exhaustive_bootstrap(rewards, k):
    """The limit of bootstrap sampling: every one of the C(N, k) groups once; group advantage by
    eq. 1-3 over all groups (population std); a response's advantage = mean over its groups."""
    rewards = rewards.numpy().astype(np.float64)  # (P, N)
    n_rollouts = rewards.shape[1]
    groups = np.array(list(itertools.combinations(range(n_rollouts), k)))  # (C, k)
    group_rewards = rewards[:, groups].max(-1)  # (P, C)
    std = group_rewards.std(-1, keepdims=True)  # numpy std is the population std
    group_adv = np.where(std > 0, (group_rewards - group_rewards.mean(-1, keepdims=True)) / np.where(std > 0, std, 1), 0)
    sums = np.zeros_like(rewards)
    for j in range(k):
        np.add.at(sums, (slice(None), groups[:, j]), group_adv)
    return sums / math.comb(n_rollouts - 1, k - 1)


def test_pass1_matches_eq_1_to_3_with_population_std():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0], [0.5, 0.2, 0.9, 0.0, 0.3]])
    expected = (rewards - rewards.mean(-1, keepdim=True)) / rewards.std(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(advantage.pass1(rewards), expected)


def test_pass1_constant_groups_get_zero_not_nan():
    out = advantage.pass1(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(out, torch.zeros(2, 3))


@pytest.mark.parametrize("n_rollouts", range(1, 17))
def test_analytical_equals_exhaustive_bootstrap(n_rollouts):
    """Eq. 11-15 equal the mean over all C(N,k) groups, for every k <= N and every N_pos."""
    for k in range(1, n_rollouts + 1):
        rewards = torch.cat([rewards_with(n_rollouts, n_pos, seed=n_pos) for n_pos in range(n_rollouts + 1)])
        expected = exhaustive_bootstrap(rewards, k)
        got = advantage.passk_analytical(rewards, k).double().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0, err_msg=f"N={n_rollouts} k={k}")


def test_analytical_with_k1_is_pass1_exactly():
    for n_rollouts in range(1, 33):
        rewards = torch.cat([rewards_with(n_rollouts, n_pos) for n_pos in range(n_rollouts + 1)])
        assert torch.equal(advantage.passk_analytical(rewards, 1), advantage.pass1(rewards)), n_rollouts


def test_analytical_edge_cases_are_zero():
    n_rollouts, k = 8, 4
    assert torch.equal(advantage.passk_analytical(rewards_with(8, 0), k), torch.zeros(1, 8))  # N_pos = 0
    for n_pos in range(n_rollouts - k + 1, n_rollouts + 1):  # N_neg < k: every group is positive
        assert torch.equal(advantage.passk_analytical(rewards_with(8, n_pos), k), torch.zeros(1, 8))
    assert advantage.passk_analytical(rewards_with(8, 4), k).abs().sum() > 0  # N_neg = k: not zero


def test_analytical_known_value():
    # N=4, k=2, one positive: R_group = 1 - C(3,2)/C(4,2) = 1/2, sigma = 1/2,
    # A_pos = 1, A_neg = (1 - 1/2 - C(2,1)/C(3,1)) / (1/2) = -1/3
    out = advantage.passk_analytical(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), 2)
    torch.testing.assert_close(out, torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]]))


def test_full_sampling_groups_and_leftovers():
    # N=7, k=3: groups (0,1,2) (3,4,5), response 6 discarded
    rewards = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    out = advantage.passk_full(rewards, 3)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 0.0]]))


def test_bootstrap_is_deterministic_and_converges_to_analytical():
    rewards = torch.cat([rewards_with(8, n_pos) for n_pos in range(9)])
    run = lambda seed, **kw: advantage.passk_bootstrap(rewards, 3, generator=torch.Generator().manual_seed(seed), **kw)
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    many = advantage.passk_bootstrap(rewards, 3, n_groups=20000, reduce="mean", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(many, advantage.passk_analytical(rewards, 3), atol=0.05, rtol=0)


def test_bootstrap_sum_is_eq6():
    # one group of all k = N responses: each response is in exactly that group; a single group has std 0
    out = advantage.passk_bootstrap(torch.tensor([[1.0, 0.0, 0.0]]), 3, n_groups=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.zeros(1, 3))
    # N=2, k=1: groups are single responses, sum over groups = count * pass1 advantage of the response
    gen = torch.Generator().manual_seed(3)
    members = torch.rand(1, 10, 2, generator=torch.Generator().manual_seed(3)).argsort(-1)[..., :1].flatten()
    assert 0 < int((members == 0).sum()) < 10  # both responses drawn, so the groups' std is not 0
    out = advantage.passk_bootstrap(torch.tensor([[1.0, 0.0]]), 1, n_groups=10, generator=gen)
    group_rewards = (members == 0).double()
    group_adv = (group_rewards - group_rewards.mean()) / group_rewards.std(unbiased=False)
    torch.testing.assert_close(out[0, 0].double(), group_adv[members == 0].sum(), check_dtype=False)


def test_exceeding_is_eq17():
    rewards = rewards_with(32, 3)
    scale = 4 / (10 * math.log(3.5))
    torch.testing.assert_close(advantage.passk_exceeding(rewards, 8), scale * advantage.passk_analytical(rewards, 8))
    assert int(torch.argmax(eta("passk_exceeding", 32, k=8))) == 1  # sec. 4.2.1: peak at 1/32


def test_combination_is_eq18():
    rewards = rewards_with(16, 5)
    expected = 5 / 16 * advantage.passk_analytical(rewards, 4) + 11 / 16 * advantage.pass1(rewards)
    torch.testing.assert_close(advantage.passk_combination(rewards, 4), expected)


def test_adaptive_splits_by_entropy():
    rewards = torch.cat([rewards_with(8, 2), rewards_with(8, 3), rewards_with(8, 5), rewards_with(8, 1)])
    out = advantage.passk_adaptive(rewards, 4, entropies=torch.tensor([0.1, 2.0, 0.5, 3.0]))
    high = torch.tensor([1, 3])
    low = torch.tensor([0, 2])
    torch.testing.assert_close(out[high], advantage.pass1(rewards[high]))
    torch.testing.assert_close(out[low], advantage.passk_analytical(rewards[low], 4))
    with pytest.raises(ValueError, match="entropies"):
        advantage.passk_adaptive(rewards, 4, entropies=torch.ones(3))


def test_no_easy_zeroes_easy_prompts_only():
    rewards = torch.cat([rewards_with(10, 7), rewards_with(10, 6), rewards_with(10, 2)])
    out = advantage.pass1_no_easy(rewards, easy_threshold=0.6)
    assert torch.equal(out[0], torch.zeros(10))
    torch.testing.assert_close(out[1:], advantage.pass1(rewards[1:]))


def test_noise_rewards_flips_only_negatives():
    rewards = rewards_with(64, 16)
    none = advantage.noise_rewards(rewards, noise=0.0)
    torch.testing.assert_close(none, advantage.pass1(rewards))
    all_flipped = advantage.noise_rewards(rewards, noise=1.0)
    assert torch.equal(all_flipped, torch.zeros(1, 64))  # every reward positive -> constant group
    half = advantage.noise_rewards(rewards, noise=0.5, generator=torch.Generator().manual_seed(0))
    assert (half[rewards == 1] > 0).all()  # positives stay positive-advantaged


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_every_estimator_shape_dtype_finite(name):
    rewards = torch.cat([rewards_with(8, n_pos) for n_pos in range(9)])
    out = compute_advantages(name, rewards, k=4, entropies=torch.arange(9.0), generator=torch.Generator().manual_seed(0))
    assert out.shape == rewards.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in ADVANTAGES if n not in ("pass1", "pass1_no_easy", "noise_rewards")])
def test_bad_options_are_clear_errors(name):
    rewards = rewards_with(8, 3)
    fn = ADVANTAGES[name]
    extra = {"entropies": torch.zeros(1)} if name == "passk_adaptive" else {}
    with pytest.raises(ValueError, match="k must be"):
        fn(rewards, k=9, **extra)
    with pytest.raises(ValueError, match="k must be"):
        fn(rewards, k=0, **extra)
    with pytest.raises(ValueError, match="binary"):
        fn(rewards * 0.5, k=2, **extra)
    with pytest.raises(ValueError, match="shape"):
        fn(rewards[0], k=2, **extra)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown advantage"):
        compute_advantages("pass2", rewards_with(4, 1))
    with pytest.raises(ValueError, match="takes no option"):
        compute_advantages("passk_analytical", rewards_with(4, 1), {"noise": 0.1}, k=2)
    # context the estimator does not take is simply not passed
    out = compute_advantages("pass1", rewards_with(4, 1), k=2, generator=None)
    torch.testing.assert_close(out, advantage.pass1(rewards_with(4, 1)))


def test_eta_curves_match_figure_9_shape():
    eta1 = eta("pass1", 32)
    assert int(torch.argmax(eta1)) == 16  # pass@1 peaks at 50% accuracy
    torch.testing.assert_close(eta1, eta1.flip(0))  # and is symmetric
    eta8 = eta("passk_analytical", 32, k=8)
    assert int(torch.argmax(eta8)) < 16 and eta8.max() < eta1.max()  # pass@k peaks earlier and lower
    assert eta8[-8:].abs().sum() == 0  # N_neg < k: nothing to learn
    a_pos, a_neg, _ = advantage_curves("passk_analytical", 32, k=8)
    assert math.isnan(a_pos[0]) and math.isnan(a_neg[-1])
    assert (a_pos[1:-1] >= 0).all() and (a_neg[1:-1] <= 0).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n), st.lists(st.booleans(), min_size=n, max_size=n))))
def test_properties_zero_sum_sign_and_permutation(case):
    n_rollouts, k, bits = case
    rewards = torch.tensor([bits], dtype=torch.float32)
    for name in ("pass1", "passk_analytical", "passk_combination", "passk_exceeding"):
        out = compute_advantages(name, rewards, k=k)
        assert abs(float(out.double().sum())) < 1e-4, name  # advantages of a prompt sum to zero
        assert (out[rewards == 1] >= 0).all() and (out[rewards == 0] <= 0).all(), name
        perm = torch.randperm(n_rollouts, generator=torch.Generator().manual_seed(n_rollouts))
        torch.testing.assert_close(compute_advantages(name, rewards[:, perm], k=k), out[:, perm])
