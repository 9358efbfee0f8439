"""Tests for advantage.py: the paper's estimators, checked against their definitions."""
import ast
import fractions
import inspect
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import advantage
from advantage import ADVANTAGES, compute_advantages, eta, advantage_curves, estimator, pass_at_k


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


def test_analytical_with_k1_is_pass1():
    for n_rollouts in range(1, 33):
        rewards = torch.cat([rewards_with(n_rollouts, n_pos) for n_pos in range(n_rollouts + 1)])
        # two formulas (eq. 11-15 at k = 1 and eq. 1-3), so float rounding may differ in the last place
        torch.testing.assert_close(advantage.passk_analytical(rewards, 1), advantage.pass1(rewards), atol=1e-6, rtol=0,
                                   msg=str(n_rollouts))


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


def context_for(rewards, seed=0):
    """What the training loop passes: k, per-prompt entropies, per-row sequence logprobs, a generator."""
    generator = torch.Generator().manual_seed(seed)
    return {"k": 4, "entropies": torch.rand(rewards.shape[0], generator=generator),
            "sequence_logprobs": -10 * torch.rand(rewards.shape, generator=generator), "generator": generator}


TAKES_K = [name for name in ADVANTAGES if "k" in inspect.signature(ADVANTAGES[name]).parameters]
GENERAL_REWARDS = ["pass1", "pass1_no_easy", "pkpo", "risk_seeking", "best_of_n", "maxrl", "unlikeliness"]  # not only 0/1


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_every_estimator_shape_dtype_finite(name):
    rewards = torch.cat([rewards_with(8, n_pos) for n_pos in range(9)])
    out = compute_advantages(name, rewards, **context_for(rewards))
    assert out.shape == rewards.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    exact = compute_advantages(name, rewards.double(), **context_for(rewards))  # float64 in, float64 out
    assert exact.dtype == torch.float64
    torch.testing.assert_close(exact.float(), out, atol=1e-6, rtol=1e-6)


def test_general_and_binary_reward_estimators_are_as_listed():
    rewards = torch.tensor([[0.2, 1.5, 0.0, 0.7]])
    for name in ADVANTAGES:
        if name in GENERAL_REWARDS:
            assert torch.isfinite(compute_advantages(name, rewards, **context_for(rewards))).all(), name
        else:
            with pytest.raises(ValueError, match="binary"):
                compute_advantages(name, rewards, **context_for(rewards))


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_bad_inputs_are_clear_errors(name):
    rewards = rewards_with(8, 3)
    fn = ADVANTAGES[name]
    extra = {key: value for key, value in context_for(rewards).items()
             if key in inspect.signature(fn).parameters and key != "k"}
    if name in TAKES_K:
        with pytest.raises(ValueError, match="k must be"):
            fn(rewards, k=9, **extra)
        with pytest.raises(ValueError, match="k must be"):
            fn(rewards, k=0, **extra)
    k = {"k": 2} if name in TAKES_K else {}
    if name not in GENERAL_REWARDS:
        with pytest.raises(ValueError, match="binary"):
            fn(rewards * 0.5, **k, **extra)
    with pytest.raises(ValueError, match="shape"):
        fn(rewards[0], **k, **extra)
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.full((1, 8), math.nan), **k, **extra)


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


ZERO_SUM = ["pass1", "passk_analytical", "passk_combination", "passk_exceeding", "risk_seeking", "maxrl", "unlikeliness"]
# correct responses >= 0 >= wrong ones. Not pkpo with baseline "none" (its wrong responses get >= 0) and not
# unlikeliness (a likely correct response may fall below its group's mean: that is its point)
SIGN = ["pass1", "passk_analytical", "passk_combination", "passk_exceeding", "risk_seeking", "maxrl", "psr", "nsr",
        "w_reinforce", "best_of_n", "pkpo"]
DETERMINISTIC = [name for name in ADVANTAGES if name not in ("passk_bootstrap", "noise_rewards", "passk_full",
                                                               "passk_adaptive")]  # order- or draw-dependent


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n), st.lists(st.booleans(), min_size=n, max_size=n))))
def test_properties_zero_sum_sign_and_permutation(case):
    n_rollouts, k, bits = case
    rewards = torch.tensor([bits], dtype=torch.float32)
    logprobs = -torch.rand(1, n_rollouts, generator=torch.Generator().manual_seed(n_rollouts))
    perm = torch.randperm(n_rollouts, generator=torch.Generator().manual_seed(n_rollouts))
    for name in DETERMINISTIC:
        out = compute_advantages(name, rewards, k=k, sequence_logprobs=logprobs)
        if name in ZERO_SUM:
            assert abs(float(out.double().sum())) < 1e-4, name  # advantages of a prompt sum to zero
        if name in SIGN:
            assert (out[rewards == 1] >= 0).all() and (out[rewards == 0] <= 0).all(), name
        permuted = compute_advantages(name, rewards[:, perm], k=k, sequence_logprobs=logprobs[:, perm])
        torch.testing.assert_close(permuted, out[:, perm], msg=name)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.integers(1, 6), st.integers(1, n), st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=n, max_size=n))))
def test_every_estimator_is_finite_on_random_reward_matrices(case):
    n_prompts, k, values = case
    general = torch.tensor(values).repeat(n_prompts, 1)  # (P, N)
    general = general + torch.rand(general.shape, generator=torch.Generator().manual_seed(len(values)))
    binary = (general > general.median()).float()
    for name in ADVANTAGES:
        for rewards in (binary, general.abs()) if name in GENERAL_REWARDS else (binary,):
            out = compute_advantages(name, rewards, **{**context_for(rewards), "k": k})
            assert out.shape == rewards.shape and torch.isfinite(out).all(), name


# -----------------------------------------------------------------------------
# the other pass@k objectives
def all_reward_vectors(n_rollouts):
    """Every binary reward vector of n rollouts as one (2^n, n) float64 tensor."""
    return ((torch.arange(2 ** n_rollouts)[:, None] >> torch.arange(n_rollouts)) & 1).double()


def exact_expected_gradient(advantages, bits, mu):
    """E[sum_i A_i s(r_i)] under the Bernoulli(mu) policy, s(r) = r/mu - (1-r)/(1-mu), by enumeration."""
    n_correct = bits.sum(-1)
    weights = mu ** n_correct * (1 - mu) ** (bits.shape[1] - n_correct)
    return float((weights * (advantages * (bits / mu - (1 - bits) / (1 - mu))).sum(-1)).sum())


@pytest.mark.parametrize("baseline", ["loo", "none"])
def test_pkpo_is_unbiased_for_the_gradient_of_pass_at_k(baseline):
    """The definition of unbiased: E[sum_i A_i s(r_i)] = d/dmu pass@k = k (1-mu)^(k-1), every n <= 12, k <= n."""
    for n_rollouts in range(1, 13):
        bits = all_reward_vectors(n_rollouts)
        for k in range(1, n_rollouts + 1):
            advantages = advantage.pkpo(bits, k, baseline=baseline)
            assert advantages.dtype == torch.float64
            for mu in (0.03, 0.2, 0.5, 0.77, 0.95):
                expected = k * (1 - mu) ** (k - 1)
                assert abs(exact_expected_gradient(advantages, bits, mu) - expected) < 1e-9, (n_rollouts, k, mu)


def test_pkpo_binary_closed_forms_and_edge_cases():
    for n_rollouts in range(1, 13):
        for n_pos in range(n_rollouts + 1):
            rewards = rewards_with(n_rollouts, n_pos, seed=n_pos).double()
            correct, wrong = rewards[0] == 1, rewards[0] == 0
            for k in range(1, n_rollouts + 1):
                none = advantage.pkpo(rewards, k, baseline="none")[0]
                wrong_value = k / n_rollouts * (1 - math.comb(n_rollouts - n_pos - 1, k - 1) / math.comb(n_rollouts - 1, k - 1)) \
                    if n_pos < n_rollouts else math.nan
                torch.testing.assert_close(none[correct], torch.full_like(none[correct], k / n_rollouts))
                torch.testing.assert_close(none[wrong], torch.full_like(none[wrong], wrong_value))
                if k >= 2:
                    loo = advantage.pkpo(rewards, k)[0]
                    value = math.comb(n_rollouts - n_pos, k - 1) / math.comb(n_rollouts, k)
                    torch.testing.assert_close(loo[correct], torch.full_like(loo[correct], value))
                    assert (loo[wrong] == 0).all()
    # all correct: every subset succeeds with or without i, so the baselined advantage is 0
    assert torch.equal(advantage.pkpo(torch.ones(2, 6), 3), torch.zeros(2, 6))
    torch.testing.assert_close(advantage.pkpo(torch.ones(1, 6), 3, baseline="none"), torch.full((1, 6), 0.5))
    # all wrong: nothing to learn in either form
    assert torch.equal(advantage.pkpo(torch.zeros(1, 6), 3), torch.zeros(1, 6))
    assert torch.equal(advantage.pkpo(torch.zeros(1, 6), 3, baseline="none"), torch.zeros(1, 6))
    # n = k: one subset, the whole group; with "loo" only a lone correct response gets 1 (best_of_n)
    torch.testing.assert_close(advantage.pkpo(torch.tensor([[0.0, 1.0, 0.0]]), 3), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(advantage.pkpo(torch.tensor([[1.0, 1.0, 0.0]]), 3), torch.zeros(1, 3))
    torch.testing.assert_close(advantage.pkpo(torch.tensor([[1.0, 0.0, 0.0]]), 3, baseline="none"), torch.ones(1, 3))


def test_pkpo_with_k1_is_plain_reinforce_with_its_baseline():
    rewards = torch.tensor([[0.3, 1.0, 0.0, 2.5], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    n_rollouts = rewards.shape[1]
    torch.testing.assert_close(advantage.pkpo(rewards, 1, baseline="none"), rewards / n_rollouts)
    others_mean = (rewards.sum(-1, keepdim=True) - rewards) / (n_rollouts - 1)  # eq. 26, RLOO
    torch.testing.assert_close(advantage.pkpo(rewards, 1), (rewards - others_mean) / n_rollouts)
    torch.testing.assert_close(advantage.pkpo(torch.tensor([[0.7]]), 1), torch.tensor([[0.7]]))  # n = 1: nothing to leave out


def subset_enumeration(rewards, k, baseline):
    """PKPO by definition: (1/C(n,k)) sum over k-subsets S containing i of max_S r (- max_{S minus i} r)."""
    n_rollouts = len(rewards)
    out = np.zeros(n_rollouts)
    for subset in itertools.combinations(range(n_rollouts), k):
        best = max(rewards[j] for j in subset)
        for i in subset:
            rest = [rewards[j] for j in subset if j != i]
            out[i] += best - (max(rest) if baseline == "loo" else 0)
    return out / math.comb(n_rollouts, k)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-1.5, 0.0, 0.25, 0.25, 1.0, 2.0, 3.75]), min_size=1, max_size=7),
       st.integers(1, 7), st.sampled_from(["loo", "none"]))
def test_pkpo_sorted_formula_equals_subset_enumeration_on_general_rewards(values, k, baseline):
    k = min(k, len(values))
    if baseline == "loo" and k == 1:
        return  # eq. 26, tested above (S minus i is empty)
    rewards = torch.tensor([values], dtype=torch.float64)  # ties on purpose
    expected = subset_enumeration(values, k, baseline)
    np.testing.assert_allclose(advantage.pkpo(rewards, k, baseline=baseline)[0].numpy(), expected, atol=1e-12)


def test_best_of_n_gives_only_the_best_response_a_nonzero_advantage():
    """EasyR1 #585: a grpo_passk that leaves the other responses' advantages nonzero collapses training."""
    rewards = torch.rand(200, 8, generator=torch.Generator().manual_seed(0))  # distinct rewards
    out = advantage.best_of_n(rewards)
    assert ((out != 0).sum(-1) == 1).all()  # exactly one nonzero advantage per group ...
    best = rewards.argmax(-1)
    top2 = rewards.topk(2, -1).values
    torch.testing.assert_close(out.gather(1, best[:, None])[:, 0], top2[:, 0] - top2[:, 1])  # ... r_max - r_second
    # binary: a lone correct response gets 1, two or more correct ones tie at the top: all 0
    torch.testing.assert_close(advantage.best_of_n(torch.tensor([[0.0, 1.0, 0.0]])), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(advantage.best_of_n(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])), torch.zeros(2, 3))
    assert torch.equal(advantage.best_of_n(torch.tensor([[0.2, 0.9, 0.9, 0.1]])), torch.zeros(1, 4))  # tie: nobody
    torch.testing.assert_close(advantage.best_of_n(torch.tensor([[0.4]])), torch.tensor([[0.4]]))  # n = 1
    # it is pkpo's unbiased pass@n gradient (k = n, leave-one-out baseline)
    torch.testing.assert_close(advantage.best_of_n(rewards.double()), advantage.pkpo(rewards.double(), 8))


def test_risk_seeking_closed_form():
    beta = 2.0
    for n_rollouts in (1, 4, 16):
        for n_pos in range(n_rollouts + 1):
            rewards = rewards_with(n_rollouts, n_pos, seed=n_pos).double()
            mean_exp = (n_pos * math.exp(beta) + n_rollouts - n_pos) / n_rollouts
            expected = torch.where(rewards == 1, (math.exp(beta) / mean_exp - 1) / beta, (1 / mean_exp - 1) / beta).double()
            torch.testing.assert_close(advantage.risk_seeking(rewards), expected)
    assert torch.equal(advantage.risk_seeking(torch.ones(1, 5)), torch.zeros(1, 5))  # all correct
    # constant groups of any size get exactly 0: exact by construction (every shifted reward is 0, expm1(0) = 0,
    # log1p(0) = 0); logsumexp - log N left +-2e-16 at N = 8, 9, 12, ..., a wrong sign for the SIGN property
    for n_rollouts in range(1, 33):
        for value in (0.0, 1.0, 0.3, -2.5):
            assert torch.equal(advantage.risk_seeking(torch.full((2, n_rollouts), value)), torch.zeros(2, n_rollouts))
    assert torch.equal(advantage.risk_seeking(torch.zeros(1, 5)), torch.zeros(1, 5))  # all wrong
    rewards = torch.tensor([[0.0, 0.5, 2.0]], dtype=torch.float64)  # small beta: the mean-centred reward
    torch.testing.assert_close(advantage.risk_seeking(rewards, beta=1e-7), rewards - rewards.mean(), atol=1e-6, rtol=0)
    assert torch.isfinite(advantage.risk_seeking(torch.tensor([[0.0, 1.0]]), beta=1000.0)).all()  # no overflow


def test_psr_nsr_w_reinforce_closed_forms():
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(advantage.psr(rewards), rewards)  # 1 on correct, 0 on wrong
    torch.testing.assert_close(advantage.nsr(rewards), rewards - 1)  # -1 on wrong, 0 on correct
    torch.testing.assert_close(advantage.w_reinforce(rewards), torch.where(rewards == 1, 0.1, -1.0))
    torch.testing.assert_close(advantage.w_reinforce(rewards, lam=0.5), torch.where(rewards == 1, 0.5, -1.0))
    assert torch.equal(advantage.w_reinforce(rewards[1:2], lam=0.0), torch.zeros(1, 5))  # lam = 0 is nsr
    # all three are unbiased for (a multiple of) d pass@1 / dmu = 1: n, n and n (1 + lam)
    bits = all_reward_vectors(6)
    for name, expected in (("psr", 6.0), ("nsr", 6.0), ("w_reinforce", 6.6)):
        for mu in (0.1, 0.6):
            assert exact_expected_gradient(ADVANTAGES[name](bits), bits, mu) == pytest.approx(expected, abs=1e-9)


def test_maxrl_closed_form():
    for n_rollouts in (2, 5, 16):
        for n_pos in range(1, n_rollouts + 1):
            rewards = rewards_with(n_rollouts, n_pos, seed=n_pos).double()
            p = n_pos / n_rollouts
            expected = torch.where(rewards == 1, (1 - p) / (p + 1e-6), -p / (p + 1e-6)).double()
            torch.testing.assert_close(advantage.maxrl(rewards), expected)
    assert torch.equal(advantage.maxrl(torch.zeros(1, 6)), torch.zeros(1, 6))  # all wrong: 0, not NaN
    assert torch.equal(advantage.maxrl(torch.ones(1, 6)), torch.zeros(1, 6))  # all correct
    with pytest.raises(ValueError, match=">= 0"):
        advantage.maxrl(torch.tensor([[-1.0, 1.0]]))
    # its expected gradient is n (1 - (1-mu)^(n-1)) / mu = n sum_{j<n} (1/j) d pass@j/dmu: truncated log pass@1
    bits = all_reward_vectors(8)
    for mu in (0.1, 0.5, 0.9):
        got = exact_expected_gradient(advantage.maxrl(bits, eps=1e-12), bits, mu)
        assert got == pytest.approx(8 * (1 - (1 - mu) ** 7) / mu, rel=1e-9)


def test_unlikeliness_penalises_the_likely_correct_responses():
    rewards = torch.tensor([[1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    logprobs = torch.tensor([[-5.0, -1.0, -3.0, -9.0]])  # ranks (0 = least likely): 1, 3, 2, 0
    shaped = torch.tensor([[1 - 0.25 * 1 / 4, 1 - 0.25 * 3 / 4, 0.0, 1.0]], dtype=torch.float64)
    expected = (shaped - shaped.mean()) / shaped.std(unbiased=False)
    out = advantage.unlikeliness(rewards, sequence_logprobs=logprobs)
    torch.testing.assert_close(out, expected)
    assert out[0, 3] > out[0, 0] > out[0, 1]  # the least likely correct response gains most
    torch.testing.assert_close(advantage.unlikeliness(rewards, logprobs, beta=0.0), advantage.pass1(rewards))
    assert torch.equal(advantage.unlikeliness(torch.ones(1, 4), logprobs, beta=0.0), torch.zeros(1, 4))
    assert torch.equal(advantage.unlikeliness(torch.zeros(1, 4), logprobs), torch.zeros(1, 4))  # all wrong
    # all correct with beta > 0: the ranks alone separate them, most likely lowest
    all_correct = advantage.unlikeliness(torch.ones(1, 4), logprobs)
    assert all_correct[0].argmin() == 1 and all_correct[0].argmax() == 3
    with pytest.raises(ValueError, match="needs the context sequence_logprobs"):
        advantage.unlikeliness(rewards)
    with pytest.raises(ValueError, match="needs the context sequence_logprobs"):
        compute_advantages("unlikeliness", rewards, k=2)
    with pytest.raises(ValueError, match="sequence_logprobs must be finite"):
        advantage.unlikeliness(rewards, sequence_logprobs=torch.zeros(1, 3))


@pytest.mark.parametrize("name, options, message", [
    ("pkpo", {"baseline": "mean"}, "baseline='mean' must be 'loo' or 'none'"),
    ("risk_seeking", {"beta": 0.0}, "beta=0.0 must be a number > 0"),
    ("risk_seeking", {"beta": "2"}, "must be a number > 0"),
    ("w_reinforce", {"lam": -0.1}, "lam=-0.1 must be a number >= 0"),
    ("maxrl", {"eps": 0}, "eps=0 must be a number > 0"),
    ("unlikeliness", {"beta": 1.5}, r"beta=1.5 must be a number in \[0, 1\]"),
    ("noise_rewards", {"noise": 1.2}, r"noise=1.2 must be a fraction in \[0, 1\]"),
    ("passk_bootstrap", {"reduce": "max"}, "reduce='max' must be 'sum' or 'mean'"),
    ("passk_bootstrap", {"n_groups": 0}, "n_groups=0 must be a positive integer"),
])
def test_check_options_validates_values(name, options, message):
    with pytest.raises(ValueError, match=message):
        advantage.check_options(name, options)
    rewards = rewards_with(4, 1)
    with pytest.raises(ValueError, match=message):  # a direct call says the same
        compute_advantages(name, rewards, options, **{**context_for(rewards), "k": 2})
    default_value = inspect.signature(ADVANTAGES[name]).parameters[next(iter(options))].default
    advantage.check_options(name, {next(iter(options)): default_value})  # the default passes


def test_annealed_k_schedules():
    assert [advantage.annealed_k(s, 4) for s in (0, 10, 10_000)] == [4, 4, 4]  # off by default
    assert [advantage.annealed_k(s, 8, 1, 1500) for s in (0, 1499, 1500, 5000)] == [8, 8, 1, 1]  # the paper's
    assert [advantage.annealed_k(s, 8, 1, 7, "linear") for s in range(9)] == [8, 7, 6, 5, 4, 3, 2, 1, 1]
    assert [advantage.annealed_k(s, 1, 4, 3, "linear") for s in range(5)] == [1, 2, 3, 4, 4]  # up works too
    with pytest.raises(ValueError, match="anneal"):
        advantage.annealed_k(0, 8, 1, 0)
    with pytest.raises(ValueError, match="anneal"):
        advantage.annealed_k(0, 8, 1, 10, "cosine")


def test_expected_gradient_matches_closed_forms():
    mu = [0.05, 0.3, 0.5, 0.8, 0.97]
    n_rollouts = 10
    for k in (1, 3, 10):  # pkpo: unbiased, k (1-mu)^(k-1)
        mean, _ = advantage.expected_gradient("pkpo", n_rollouts, k, mu)
        np.testing.assert_allclose(mean.numpy(), [k * (1 - m) ** (k - 1) for m in mu], atol=1e-9)
    # pass1 (GRPO): sum_i A_i s(r_i) = n sigma_hat / (mu (1 - mu)), sigma_hat = sqrt(p (1-p)), p = c/n: it
    # follows d pass@1/dmu = 1 only in sign, reweighted by E[sigma_hat] / (mu (1-mu)) (larger near 0 and 1)
    mean, variance = advantage.expected_gradient("pass1", n_rollouts, 1, mu)
    for m, got_mean, got_variance in zip(mu, mean.tolist(), variance.tolist()):
        p_c = [math.comb(n_rollouts, c) * m ** c * (1 - m) ** (n_rollouts - c) for c in range(n_rollouts + 1)]
        g_c = [n_rollouts * math.sqrt(c / n_rollouts * (1 - c / n_rollouts)) / (m * (1 - m)) for c in range(n_rollouts + 1)]
        expected_mean = sum(p * g for p, g in zip(p_c, g_c))
        assert got_mean == pytest.approx(expected_mean, rel=1e-6)  # 1e-6: pass1's std floor
        assert got_variance == pytest.approx(sum(p * (g - expected_mean) ** 2 for p, g in zip(p_c, g_c)), rel=1e-5)
    assert advantage.expected_gradient("pkpo", 6, 2, [0.5])[1].item() > 0  # an estimate, not a constant
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        advantage.expected_gradient("pkpo", 6, 2, [0.0, 0.5])
    with pytest.raises(ValueError, match="n_rollouts"):
        advantage.expected_gradient("pkpo", 25, 2, [0.5])


# -----------------------------------------------------------------------------
# advantage.py stands alone: torch and the standard library, pass_at_k included
def test_advantage_imports_only_torch_and_the_standard_library():
    source = Path(advantage.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." if node.level else node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"torch"}, imported
    # and at run time, in a fresh interpreter: importing advantage after torch loads only standard modules
    # (numpy is not tested absent: torch itself imports it; the static check above keeps advantage off it)
    script = ("import sys, torch; before = set(sys.modules); import advantage; "
              "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))")
    added = subprocess.run([sys.executable, "-c", script], cwd=Path(advantage.__file__).parent,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert not set(ast.literal_eval(added)) - set(sys.stdlib_module_names) - {"advantage"}, added
    for heavy in ("transformers", "evaluate", "rollout"):
        assert f"'{heavy}'" not in added


def brute_force_pass_at_k(n, c, k):
    """The share of the C(n, k) k-subsets of n samples (the first c correct) holding a correct one, exactly."""
    subsets = list(itertools.combinations(range(n), k))
    return fractions.Fraction(sum(any(i < c for i in subset) for subset in subsets), len(subsets))


def test_pass_at_k_lives_here_and_equals_brute_force():
    for n in range(0, 9):
        for c in range(n + 1):
            for k in range(n + 1):
                # 1e-12, not equality: the product of k float ratios rounds; the subset count is exact
                assert pass_at_k(n, c, k) == pytest.approx(float(brute_force_pass_at_k(n, c, k)), abs=1e-12), (n, c, k)
    counts = torch.tensor([[0], [3], [7], [8]])  # a tensor of counts gives a float64 tensor of that shape
    got = pass_at_k(8, counts, 3)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.shape == (4, 1)
    expected = torch.tensor([[float(brute_force_pass_at_k(8, c, 3))] for c in (0, 3, 7, 8)], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    assert isinstance(pass_at_k(8, 3, 3), float)
    assert pass_at_k(1000, 1, 999) == pytest.approx(0.999)  # no large binomials
    for bad, message in (((4, 1, 5), "0 <= k <= n"), ((4, 5, 2), "correct samples c"), ((4.0, 1, 2), "n must be"),
                         ((4, 1.5, 2), "correct samples c"), ((4, 1, True), "k must be")):
        with pytest.raises(ValueError, match=message):
            pass_at_k(*bad)


# -----------------------------------------------------------------------------
# the registry: one decorator declares an estimator; its wrapper does every check
@pytest.fixture
def registry(monkeypatch):
    """A copy of ADVANTAGES that the test may register into; the real one is restored afterwards."""
    monkeypatch.setattr(advantage, "ADVANTAGES", dict(ADVANTAGES))
    return advantage.ADVANTAGES


def test_a_decorated_estimator_is_registered_with_its_option_rules(registry):
    seen = []

    @estimator(binary=True, options={"scale": advantage.POSITIVE, "mode": advantage.one_of("plain", "flip")})
    def toy(rewards, k, scale=1.0, mode="plain"):
        seen.append(rewards)
        rewards += 1  # edits the copy it was given, never the caller's tensor
        return scale * (rewards - 1) * (-1 if mode == "flip" else 1) * k

    assert registry["toy"] is toy and "toy" not in ADVANTAGES  # the real registry is untouched
    assert list(inspect.signature(toy).parameters) == ["rewards", "k", "scale", "mode"]
    rewards = torch.tensor([[1.0, 0.0, 1.0]])
    out = compute_advantages("toy", rewards, {"scale": 2.0}, k=2, generator=None)  # context it does not take: dropped
    # exact: x + 1 - 1 = x for x in {0, 1}, times 2 and 2 are exact in float64 and float32
    assert out.dtype == torch.float32 and torch.equal(out, 4 * rewards)
    assert torch.equal(rewards, torch.tensor([[1.0, 0.0, 1.0]]))  # the caller's tensor is unchanged
    assert seen[-1].dtype == torch.float64
    assert compute_advantages("toy", rewards.double(), k=1).dtype == torch.float64
    assert torch.equal(toy(rewards, 1, mode="flip"), -rewards)  # a direct call: the same checks and cast
    advantage.check_options("toy", {"scale": 0.5, "mode": "flip"})
    for options, message in (({"scale": 0}, "scale=0 must be a number > 0"),
                             ({"mode": "x"}, "mode='x' must be 'plain' or 'flip'"),
                             ({"beta": 1.0}, r"takes no option\(s\) \['beta'\]")):
        with pytest.raises(ValueError, match=message):
            advantage.check_options("toy", options)
        with pytest.raises(ValueError, match=message):
            compute_advantages("toy", rewards, options, k=2)
    calls = len(seen)
    for bad, k, message in ((rewards[0], 2, "shape"), (torch.full((1, 3), math.nan), 2, "NaN"),
                            (rewards, 4, "k must be"), (rewards * 0.5, 2, "binary")):
        with pytest.raises(ValueError, match=message):
            compute_advantages("toy", bad, k=k)
    assert len(seen) == calls  # the body never saw bad input


def test_registration_mistakes_are_caught_when_declared(registry):
    with pytest.raises(TypeError, match="first argument must be rewards"):
        estimator(lambda r: r)
    with pytest.raises(TypeError, match="rules for"):
        @estimator(options={"betta": advantage.POSITIVE})
        def typo(rewards, beta=1.0):
            return rewards
    assert "typo" not in registry


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_every_estimator_is_checked_once_by_compute_advantages(name):
    """The checks every estimator shares come from its registration, through compute_advantages."""
    fn = ADVANTAGES[name]
    rewards = rewards_with(8, 3)
    context = {**context_for(rewards), "k": 2}
    bad_rewards = [(rewards[0], "rewards must be a non-empty tensor of shape"), (torch.zeros(1, 0), "shape"),
                   ([[1.0, 0.0]], "got list"), (torch.full((1, 8), math.nan), "NaN or inf"),
                   (torch.full((1, 8), math.inf), "NaN or inf")]
    assert fn.binary == (name not in GENERAL_REWARDS)
    if fn.binary:
        bad_rewards.append((rewards * 0.5, "needs binary rewards"))
    for bad, message in bad_rewards:
        with pytest.raises(ValueError, match=message):
            compute_advantages(name, bad, **context)
    if "k" in inspect.signature(fn).parameters:
        for k in (9, 0, 2.0, None, True):
            with pytest.raises(ValueError, match="k must be an integer with 1 <= k <= n_rollouts=8"):
                compute_advantages(name, rewards, **{**context, "k": k})
