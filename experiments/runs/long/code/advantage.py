"""Advantage estimators, one function per estimator: Pass@k Training (Chen et al., 2025) and the other
pass@k objectives side by side (our issue 13).

The advantage function is the experiment. Every estimator takes `rewards` of shape
(n_prompts, n_rollouts), one row per prompt's rollouts, plus keyword options, and returns
advantages of the same shape (one per response; every token of a response shares it): float64 for
float64 rewards, float32 otherwise.

    pass1              GRPO/DAPO group-normalised advantage               eq. 1-3
    passk_full         Pass@k with full sampling (disjoint groups)        sec. 2.2, alg. 1
    passk_bootstrap    Pass@k with bootstrap-sampled groups               sec. 2.3, eq. 6, alg. 2
    passk_analytical   closed form of the bootstrap limit                 sec. 2.4, eq. 11-15, app. B
    passk_exceeding    analytical x f(N_pos), earlier peak of eta         sec. 4.2.1, eq. 17
    passk_combination  accuracy-weighted mix of pass1 and passk           sec. 4.2.2, eq. 18
    passk_adaptive     pass1 for high-entropy prompts, passk for the rest sec. 4.2.3
    pass1_no_easy      pass1 with easy prompts' advantages set to 0       sec. 4.1.2
    noise_rewards      flip a fraction of negative rewards, then pass1    sec. 3.1
  other papers:
    pkpo               unbiased pass@k / max@k gradient, LOO baseline     Walder & Karkhanis 2025, arXiv 2505.15201
    risk_seeking       RS-GRPO exponential-utility advantage              Jiang et al. 2025, arXiv 2509.24261
    best_of_n          only the best response: r_max - r_second          Tang et al. 2025, arXiv 2503.19595
    psr, nsr           positive / negative sample reinforcement only      Zhu et al. 2025, arXiv 2506.01347
    w_reinforce        lambda on correct, -1 on wrong                     Zhu et al. 2025, arXiv 2506.01347
    maxrl              (r - mean) / mean                                  Tajwar et al. 2026, arXiv 2602.02710
    unlikeliness       penalise likely correct responses, then GRPO       He, Fried & Welleck 2025, arXiv 2506.02355

Std convention: the population std (1/N, as eq. 2 and eq. 12), floored so a group whose rewards
are all equal gets advantage 0, never NaN. Internals run in float64.

Context: besides its options, an estimator may name what the training loop knows: k, entropies
(passk_adaptive), sequence_logprobs (unlikeliness) and generator; `compute_advantages` passes each
estimator only the keyword arguments its signature names.

To add an estimator: write `def my_adv(rewards, k=..., ...)` and add one line to ADVANTAGES (and a
rule to OPTION_RULES for each option whose values can be wrong).
"""
import functools
import inspect
import math

import torch

from evaluate import pass_at_k

STD_FLOOR = 1e-6


def _out_dtype(rewards):
    """Advantages keep float64 for float64 rewards (exact analyses), float32 otherwise (training)."""
    return torch.float64 if isinstance(rewards, torch.Tensor) and rewards.dtype == torch.float64 else torch.float32


def _check(rewards, k=None, binary=False):
    """Validate rewards (n_prompts, n_rollouts) and k; return rewards as float64."""
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 2 or rewards.numel() == 0:
        got = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a non-empty tensor of shape (n_prompts, n_rollouts), got {got}")
    rewards = rewards.double()
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    n_rollouts = rewards.shape[1]
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_rollouts):
        raise ValueError(f"k must be an integer with 1 <= k <= n_rollouts={n_rollouts}, got {k!r}")
    if binary and not ((rewards == 0) | (rewards == 1)).all():
        raise ValueError("this estimator needs binary rewards (0 or 1)")
    return rewards


def _group_normalise(rewards):
    """(R - mean) / std along the last dim with population std (eq. 1-3); constant groups -> 0."""
    mean = rewards.mean(-1, keepdim=True)
    std = ((rewards - mean) ** 2).mean(-1, keepdim=True).sqrt()
    return (rewards - mean) / std.clamp_min(STD_FLOOR)


def pass1(rewards):
    """GRPO/DAPO: A_i = (R_i - mean(R)) / std(R) within each prompt's group (eq. 1-3)."""
    return _group_normalise(_check(rewards)).to(_out_dtype(rewards))


def passk_full(rewards, k):
    """Full sampling (sec. 2.2, alg. 1): floor(N/k) disjoint groups of consecutive responses, group
    reward = max (eq. 5), group advantage by eq. 1-3 over the groups, shared by the group's members.
    The N mod k leftover responses are discarded (advantage 0); one group alone gets advantage 0."""
    out = _out_dtype(rewards)
    rewards = _check(rewards, k, binary=True)
    n_prompts, n_rollouts = rewards.shape
    n_groups = n_rollouts // k
    group_rewards = rewards[:, : n_groups * k].view(n_prompts, n_groups, k).amax(-1)
    advantages = torch.zeros_like(rewards)
    advantages[:, : n_groups * k] = _group_normalise(group_rewards).repeat_interleave(k, dim=1)
    return advantages.to(out)


def passk_bootstrap(rewards, k, n_groups=None, generator=None, reduce="sum"):
    """Bootstrap sampling (sec. 2.3, alg. 2): n_groups (default N) groups of k distinct responses,
    group advantage by eq. 1-3 over the groups; a response's advantage is
      reduce="sum":  the sum of the advantages of the groups containing it (eq. 6, the paper's method);
      reduce="mean": their mean (appendix B; its limit over all C(N,k) groups is passk_analytical).
    A response in no group gets 0. Pass a torch.Generator for determinism."""
    out = _out_dtype(rewards)
    rewards = _check(rewards, k, binary=True)
    _check_values("passk_bootstrap", {"n_groups": n_groups, "reduce": reduce})
    n_prompts, n_rollouts = rewards.shape
    n_groups = n_rollouts if n_groups is None else n_groups
    # k distinct indices per group: the first k of a random permutation (topk of the negated draws picks the
    # same indices in the same order as argsort()[..., :k], faster)
    members = torch.rand(n_prompts, n_groups, n_rollouts, generator=generator).neg().topk(k, dim=-1).indices
    group_rewards = rewards.gather(1, members.flatten(1)).view(n_prompts, n_groups, k).amax(-1)
    group_advantages = _group_normalise(group_rewards)  # (n_prompts, n_groups)
    advantages = torch.zeros_like(rewards).scatter_add_(
        1, members.flatten(1), group_advantages.repeat_interleave(k, dim=1))
    if reduce == "mean":
        counts = torch.zeros_like(rewards).scatter_add_(1, members.flatten(1), torch.ones_like(members.flatten(1), dtype=rewards.dtype))
        advantages = advantages / counts.clamp_min(1)
    return advantages.to(out)


def passk_analytical(rewards, k):
    """Analytical Pass@k advantage (sec. 2.4, app. B), a function of N, N_pos and k only:
      R_group = 1 - C(N_neg, k) / C(N, k)                                        eq. 11
      sigma   = sqrt(R_group (1 - R_group))                                      eq. 12
      A_pos   = (1 - R_group) / sigma                                            eq. 14
      A_neg   = (1 - R_group - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / sigma    eq. 15
    N_pos = 0 or N_neg < k (every group positive) give sigma = 0 and advantage 0. k = 1 is pass1."""
    out = _out_dtype(rewards)
    rewards = _check(rewards, k, binary=True)
    n_rollouts = rewards.shape[1]
    n_pos = rewards.sum(-1, keepdim=True)  # (n_prompts, 1)
    group_reward = pass_at_k(n_rollouts, n_pos, k)  # eq. 11 is pass@k of the group
    sigma = (group_reward * (1 - group_reward)).sqrt()  # eq. 12
    # C(N_neg-1, k-1) / C(N-1, k-1): the share of a negative response's groups that are negative
    negative_share = 1 - pass_at_k(n_rollouts - 1, n_pos.clamp_max(n_rollouts - 1), k - 1)
    a_pos = (1 - group_reward) / sigma.clamp_min(STD_FLOOR)  # eq. 14
    a_neg = (1 - group_reward - negative_share) / sigma.clamp_min(STD_FLOOR)  # eq. 15
    advantages = torch.where(rewards > 0, a_pos, a_neg)
    return torch.where(sigma > STD_FLOOR, advantages, torch.zeros_like(advantages)).to(out)


def passk_exceeding(rewards, k):
    """Exceeding Pass@k (sec. 4.2.1): A' = f(N_pos) * A_analytical with f(N_pos) = 4 / (10 ln(N_pos + 0.5))
    (eq. 17; log read as the natural log). f is only used where N_pos >= 1 (N_pos = 0 has A = 0)."""
    advantages = passk_analytical(rewards, k).double()
    n_pos = rewards.double().sum(-1, keepdim=True)
    scale = 4 / (10 * torch.log(n_pos.clamp_min(1) + 0.5))
    return (scale * advantages).to(_out_dtype(rewards))


def passk_combination(rewards, k):
    """Combination (sec. 4.2.2, eq. 18): A = (N_pos/N) A_passk + (1 - N_pos/N) A_pass1."""
    accuracy = _check(rewards, k, binary=True).mean(-1, keepdim=True)
    combined = accuracy * passk_analytical(rewards, k).double() + (1 - accuracy) * pass1(rewards).double()
    return combined.to(_out_dtype(rewards))


def passk_adaptive(rewards, k, entropies):
    """Entropy-adaptive (sec. 4.2.3): rank prompts by the mean entropy of their responses
    (`entropies`, shape (n_prompts,)); the higher-entropy half (n_prompts // 2 prompts, ties broken by
    order) gets pass1 to exploit, the rest passk_analytical to explore."""
    checked = _check(rewards, k, binary=True)
    entropies = torch.as_tensor(entropies, dtype=torch.float64).flatten()
    if entropies.shape[0] != checked.shape[0]:
        raise ValueError(f"entropies must hold one mean entropy per prompt ({checked.shape[0]}), got {entropies.shape[0]}")
    high = torch.zeros(checked.shape[0], dtype=torch.bool)
    high[entropies.argsort(descending=True, stable=True)[: checked.shape[0] // 2]] = True
    return torch.where(high[:, None], pass1(rewards), passk_analytical(rewards, k))


def pass1_no_easy(rewards, easy_threshold=0.6):
    """Pass@1 without easy problems (sec. 4.1.2): prompts whose accuracy N_pos/N is above
    `easy_threshold` get advantage 0. Default 0.6: above it sec. 4.1.1 calls a problem easy."""
    _check_values("pass1_no_easy", {"easy_threshold": easy_threshold})
    accuracy = _check(rewards).mean(-1, keepdim=True)
    return torch.where(accuracy > easy_threshold, 0.0, pass1(rewards).double()).to(_out_dtype(rewards))


def noise_rewards(rewards, noise=0.1, generator=None):
    """Noise rewards (sec. 3.1): each negative reward is flipped to positive with probability `noise`
    (paper: 10%, 30%, 50%), then pass1."""
    out = _out_dtype(rewards)
    rewards = _check(rewards, binary=True)
    _check_values("noise_rewards", {"noise": noise})
    flips = (torch.rand(rewards.shape, generator=generator, dtype=torch.float64) < noise) & (rewards == 0)
    return pass1(torch.where(flips, 1.0, rewards)).to(out)


# -----------------------------------------------------------------------------
# the other pass@k objectives (issue 13)
@functools.lru_cache(maxsize=256)
def _pkpo_weights(n, k):
    """Exact weights of PKPO's sorted formulas for n rewards sorted ascending (position i = 0..n-1 holds
    the (i+1)-th smallest), each divided by C(n, k) (exact integer ratios, correctly rounded):
      own[i]   = C(i, k-1):   k-subsets whose maximum is position i (i and k-1 of the i smaller ones)
      above[j] = C(j-1, k-2): k-subsets holding a given i < j whose maximum is j
    Returns two float64 tensors of shape (n,)."""
    total = math.comb(n, k)
    comb = lambda a, b: math.comb(a, b) if 0 <= b <= a else 0
    own = [comb(i, k - 1) / total for i in range(n)]
    above = [comb(j - 1, k - 2) / total if j >= 1 else 0.0 for j in range(n)]
    return torch.tensor(own, dtype=torch.float64), torch.tensor(above, dtype=torch.float64)


def pkpo(rewards, k, baseline="loo"):
    """Pass@k Policy Optimization (Walder & Karkhanis 2025, arXiv 2505.15201): transformed rewards r~ such
    that sum_i r~_i grad log p(x_i) is an unbiased estimate of grad max@k = grad E[max of k samples]
    (pass@k for binary rewards). Any rewards (not only binary). With S ranging over the k-subsets of
    the n responses,
      baseline="none":  r~_i = (1/C(n,k)) sum_{S containing i} max_{j in S} r_j           (eq. 19, 27)
        binary, c correct of n: correct k/n, wrong (k/n)(1 - C(n-c-1, k-1) / C(n-1, k-1))
      baseline="loo":   r~_i = (1/C(n,k)) sum_{S containing i} (max_S r - max_{S minus i} r)  (eq. 33, s^(loo-1))
        the paper's recommended estimator (its experiments' PKPO). The baseline max_{S minus i} r does not
        depend on x_i, so it stays unbiased. Only subsets whose maximum is i contribute: with rewards
        sorted ascending (i-th smallest at position i, 1-based), r~_i = (1/C(n,k)) sum_{j<i} C(j-1, k-2) (r_i - r_j),
        = sum_{m<i} (r_{m+1} - r_m) C(m, k-1) / C(n,k) (hockey stick): a sum of gaps, >= 0 and exact for
        binary rewards (correct C(n-c, k-1) / C(n,k), wrong 0). For k = 1 (S minus i is empty) it is the paper's
        leave-one-out mean centring (eq. 26), (r_i - mean_{j != i} r_j) / n: plain REINFORCE with RLOO.
    Sorted O(n log n): sort each row ascending, then cumulative sums with the exact binomial weights of
    _pkpo_weights (ties: any order of equal rewards gives the same subset maxima, so the same r~).
    k = n with baseline="loo" is best_of_n. Scale: sum_i r~_i is O(k), so advantages are O(k/n), smaller
    than pass1's O(1) (a learning rate tuned for GRPO moves less)."""
    out = _out_dtype(rewards)
    rewards = _check(rewards, k)
    _check_values("pkpo", {"baseline": baseline})
    n_rollouts = rewards.shape[1]
    if k == 1 and baseline == "loo":  # eq. 26 (leave-one-out mean; none to leave for n = 1)
        others_mean = (rewards.sum(-1, keepdim=True) - rewards) / max(n_rollouts - 1, 1)
        return ((rewards - others_mean) / n_rollouts).to(out)
    own, above = _pkpo_weights(n_rollouts, k)
    sorted_rewards, order = rewards.sort(dim=-1, stable=True)  # (P, N) ascending
    if baseline == "none":  # own term + sum over higher positions j of above[j] r_j
        weighted_above = (above * sorted_rewards).flip(-1).cumsum(-1).flip(-1)  # suffix sums, j >= i
        transformed = own * sorted_rewards + weighted_above - above * sorted_rewards
    else:  # cumulative sum of the sorted gaps r_{m+1} - r_m >= 0, each times own[m+1]
        gaps = (sorted_rewards[:, 1:] - sorted_rewards[:, :-1]) * own[1:]  # (P, N-1)
        transformed = torch.cat([torch.zeros_like(sorted_rewards[:, :1]), gaps.cumsum(-1)], dim=-1)
    return torch.empty_like(rewards).scatter_(1, order, transformed).to(out)


def risk_seeking(rewards, beta=2.0):
    """RS-GRPO (Jiang et al. 2025, "Risk-Sensitive RL for Alleviating Exploration Dilemmas in LLMs",
    arXiv 2509.24261): the gradient of the exponential utility (1/beta) log E[exp(beta r)], which moves
    from the mean reward (beta -> 0) to the maximum (beta -> inf), with baseline 1/beta:
      A_i = (1/beta) (exp(beta r_i) / mean_j exp(beta r_j) - 1)
    computed as expm1(beta r_i - logmeanexp(beta r)) / beta. Default beta = 2 (the authors' code).
    Any rewards. Sums to 0 over a group; constant groups get 0."""
    out = _out_dtype(rewards)
    rewards = _check(rewards)
    _check_values("risk_seeking", {"beta": beta})
    scaled = beta * rewards
    log_mean = torch.logsumexp(scaled, -1, keepdim=True) - math.log(rewards.shape[1])
    return (torch.expm1(scaled - log_mean) / beta).to(out)


def best_of_n(rewards):
    """Best-of-N / pass@n (Tang et al. 2025, arXiv 2503.19595; verl's `grpo_passk`): the response with
    the highest reward gets r_max - r_second, every other response exactly 0. It is the unbiased
    gradient of max@n = E[max of the n samples] (= pkpo with k = n and baseline "loo").
    Ties at the top: r_max - r_second = 0, so every response gets 0 (none is singled out).
    n = 1: there is no second response; the baseline is 0 and the lone response gets its reward.
    (verl by default also divides by the group's std; the paper's estimator, used here, does not.
    EasyR1 issue #585: not zeroing the other responses collapses training.)"""
    out = _out_dtype(rewards)
    rewards = _check(rewards)
    if rewards.shape[1] == 1:
        return rewards.to(out)
    top2, top_index = rewards.topk(2, dim=-1)  # (P, 2) each
    gap = top2[:, :1] - top2[:, 1:]  # (P, 1) r_max - r_second, 0 when the top is tied
    return torch.zeros_like(rewards).scatter_(1, top_index[:, :1], gap).to(out)


def psr(rewards):
    """Positive sample reinforcement (Zhu et al. 2025, "The Surprising Effectiveness of Negative
    Reinforcement in LLM Reasoning", arXiv 2506.01347): A = r = 1 on correct responses, 0 on wrong ones
    (likelihood training on the correct responses only). Binary rewards."""
    return _check(rewards, binary=True).to(_out_dtype(rewards))


def nsr(rewards):
    """Negative sample reinforcement (Zhu et al. 2025, arXiv 2506.01347): A = -1 on wrong responses,
    0 on correct ones (only push probability away from the wrong responses). Binary rewards."""
    return (_check(rewards, binary=True) - 1).to(_out_dtype(rewards))


def w_reinforce(rewards, lam=0.1):
    """Weighted REINFORCE (Zhu et al. 2025, arXiv 2506.01347): lam * PSR + NSR, i.e. A = lam on correct
    responses, -1 on wrong ones; default lam (the paper's lambda) = 0.1. Binary rewards."""
    _check_values("w_reinforce", {"lam": lam})
    rewards_ = _check(rewards, binary=True)
    return torch.where(rewards_ > 0, torch.full_like(rewards_, lam), torch.full_like(rewards_, -1.0)).to(_out_dtype(rewards))


def maxrl(rewards, eps=1e-6):
    """Maximum Likelihood RL (Tajwar et al. 2026, arXiv 2602.02710): A_i = (r_i - mean) / (mean + eps),
    the mean over the prompt's group: the gradient estimate of log pass@1 truncated at n samples
    (binary: correct (1 - p) / p with p = c/n, wrong -1; a group with no correct response gets 0).
    Rewards must be >= 0."""
    out = _out_dtype(rewards)
    rewards = _check(rewards)
    _check_values("maxrl", {"eps": eps})
    if (rewards < 0).any():
        raise ValueError("maxrl needs rewards >= 0 (it divides by the group's mean reward)")
    mean = rewards.mean(-1, keepdim=True)
    return ((rewards - mean) / (mean + eps)).to(out)


def unlikeliness(rewards, sequence_logprobs=None, beta=0.25):
    """Unlikeliness reward (He, Fried & Welleck 2025, "Rewarding the Unlikely", arXiv 2506.02355): rank
    the group's responses by their sequence log-probability under the sampling policy,
    rank_i in 0..N-1 (0 = least likely, N-1 = most likely; ties by position), penalise rewards by rank,
      r'_i = r_i (1 - beta rank_i / N)
    so the most likely correct responses lose the most, then GRPO normalisation (eq. 1-3, population std).
    Default beta = 0.25 (the paper's). Rank convention as the authors' code (its penalty is 0 for the
    least likely response). Context `sequence_logprobs`, shape (n_prompts, n_rollouts): each response's
    log-probability summed over its tokens (the authors rank by the per-token mean)."""
    out = _out_dtype(rewards)
    rewards = _check(rewards)
    _check_values("unlikeliness", {"beta": beta})
    if sequence_logprobs is None:
        raise ValueError("unlikeliness needs the context sequence_logprobs (n_prompts, n_rollouts): each response's "
                         "log-probability under the sampling policy; pass compute_advantages(..., sequence_logprobs=...)")
    logprobs = torch.as_tensor(sequence_logprobs, dtype=torch.float64)
    if logprobs.shape != rewards.shape or not torch.isfinite(logprobs).all():
        raise ValueError(f"sequence_logprobs must be finite with the rewards' shape {tuple(rewards.shape)}, "
                         f"got {tuple(logprobs.shape)}")
    rank = logprobs.argsort(dim=-1, stable=True).argsort(dim=-1).double()  # (P, N): 0 = least likely
    return _group_normalise(rewards * (1 - beta * rank / rewards.shape[1])).to(out)


ADVANTAGES = {
    "pass1": pass1,
    "passk_full": passk_full,
    "passk_bootstrap": passk_bootstrap,
    "passk_analytical": passk_analytical,
    "passk_exceeding": passk_exceeding,
    "passk_combination": passk_combination,
    "passk_adaptive": passk_adaptive,
    "pass1_no_easy": pass1_no_easy,
    "noise_rewards": noise_rewards,
    "pkpo": pkpo,
    "risk_seeking": risk_seeking,
    "best_of_n": best_of_n,
    "psr": psr,
    "nsr": nsr,
    "w_reinforce": w_reinforce,
    "maxrl": maxrl,
    "unlikeliness": unlikeliness,
}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# (estimator, option): (test of a value, what a value must be)
OPTION_RULES = {
    ("passk_bootstrap", "n_groups"): (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                                      "a positive integer"),
    ("passk_bootstrap", "reduce"): (lambda v: v in ("sum", "mean"), "'sum' or 'mean'"),
    ("pass1_no_easy", "easy_threshold"): (lambda v: _is_number(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    ("noise_rewards", "noise"): (lambda v: _is_number(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    ("pkpo", "baseline"): (lambda v: v in ("loo", "none"), "'loo' or 'none'"),
    ("risk_seeking", "beta"): (lambda v: _is_number(v) and v > 0, "a number > 0"),
    ("w_reinforce", "lam"): (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ("maxrl", "eps"): (lambda v: _is_number(v) and v > 0, "a number > 0"),
    ("unlikeliness", "beta"): (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1] (0: plain pass1)"),
}


def _check_values(name, options):
    """One clear ValueError for the first option value that breaks its OPTION_RULES rule."""
    for key, value in options.items():
        test, must_be = OPTION_RULES.get((name, key), (lambda v: True, ""))
        if not test(value):
            raise ValueError(f"advantage {name!r}: {key}={value!r} must be {must_be}")


def check_options(name, options):
    """Raise a clear ValueError if `name` is not registered, takes none of the given `options`, or an
    option's value is out of range (OPTION_RULES)."""
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage {name!r}; registered: {sorted(ADVANTAGES)}")
    accepted = inspect.signature(ADVANTAGES[name]).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"advantage {name!r} takes no option(s) {unknown}; it takes {list(accepted)[1:]}")
    _check_values(name, options)


def compute_advantages(name, rewards, options=None, **context):
    """ADVANTAGES[name](rewards, **options, **context). `options` are the user's settings for this
    estimator (each must be one it takes); `context` is what the caller knows (k, entropies,
    sequence_logprobs, generator) and is passed only where the estimator's signature names it."""
    options = dict(options or {})
    check_options(name, options)
    accepted = inspect.signature(ADVANTAGES[name]).parameters
    options.update({key: value for key, value in context.items() if key in accepted and key not in options})
    return ADVANTAGES[name](rewards, **options)


def annealed_k(step, k, k_end=0, anneal_steps=0, schedule="step"):
    """The k of RL step `step` (0-based) under k annealing (PKPO, arXiv 2505.15201, sec. 5.2.3 and figure 3:
    k = 8 up to step 1500, then k = 1). k_end = 0: no annealing, k at every step. schedule "step": k
    before step anneal_steps, k_end from it on; "linear": from k at step 0 to k_end at step anneal_steps
    (rounded to the nearest integer), k_end after."""
    if not k_end:
        return k
    if schedule not in ("step", "linear") or anneal_steps < 1:
        raise ValueError(f"k annealing needs schedule 'step' or 'linear' and anneal_steps >= 1, got {schedule!r}, {anneal_steps}")
    if schedule == "step":
        return k if step < anneal_steps else k_end
    return int(round(k + (k_end - k) * min(step / anneal_steps, 1.0)))


def advantage_curves(name, n_rollouts, k=1, **options):
    """A_pos, A_neg and eta = N_pos |A_pos| + N_neg |A_neg| (eq. 16) for N_pos = 0..n_rollouts
    (figures 9 and 18). Returns three float tensors of shape (n_rollouts + 1,); A_pos at N_pos = 0 and
    A_neg at N_pos = N have no response and are NaN. unlikeliness sees equal sequence logprobs (ranks by
    position: A_pos is then that of the least penalised correct response)."""
    if not isinstance(n_rollouts, int) or n_rollouts < 1:
        raise ValueError(f"n_rollouts must be a positive integer, got {n_rollouts!r}")
    n_pos = torch.arange(n_rollouts + 1)
    rewards = (torch.arange(n_rollouts)[None, :] < n_pos[:, None]).float()  # row p: p positives first
    context = {"k": k, "entropies": torch.zeros(n_rollouts + 1), "sequence_logprobs": torch.zeros(rewards.shape)}
    advantages = compute_advantages(name, rewards, options, **context).double()
    eta = advantages.abs().sum(-1)
    nan = torch.tensor(math.nan, dtype=torch.float64)
    a_pos = torch.where(n_pos > 0, advantages[:, 0], nan)
    a_neg = torch.where(n_pos < n_rollouts, advantages[:, -1], nan)
    return a_pos, a_neg, eta


def eta(name, n_rollouts, k=1, **options):
    """Sum of absolute advantages eta(N_pos) = N_pos |A_pos| + N_neg |A_neg| (eq. 16), N_pos = 0..N."""
    return advantage_curves(name, n_rollouts, k, **options)[2]


def expected_gradient(name, n_rollouts, k, mu_values, seed=0, **options):
    """What does an estimator optimise? Exact mean and variance of its gradient estimate
    g = sum_i A_i s(r_i) for the one-parameter Bernoulli policy: each of the n_rollouts responses is
    correct with probability mu, and the score of reward r is s(r) = d/dmu log p(r) = r/mu - (1-r)/(1-mu).
    Enumerates all 2^n reward vectors (one call of the estimator, n_prompts = 2^n, float64), each weighted
    by mu^c (1-mu)^(n-c). An unbiased estimator of d/dmu pass@k has mean k (1-mu)^(k-1).
    Context (fixed by `seed`): entropies (passk_adaptive) and sequence_logprobs (unlikeliness) are i.i.d.
    random, so which prompts count as high-entropy and how likely each response is are independent of
    the rewards; stochastic estimators (passk_bootstrap, noise_rewards) draw from one seeded generator.
    Returns (mean, variance), float64 tensors of shape (len(mu_values),)."""
    if not isinstance(n_rollouts, int) or not 1 <= n_rollouts <= 20:
        raise ValueError(f"n_rollouts must be an integer in [1, 20] (2^n reward vectors), got {n_rollouts!r}")
    mu = torch.as_tensor(mu_values, dtype=torch.float64).flatten()[:, None]  # (M, 1)
    if not ((mu > 0) & (mu < 1)).all():
        raise ValueError("every mu must be strictly between 0 and 1 (the score is undefined at 0 and 1)")
    n_vectors = 2 ** n_rollouts
    bits = ((torch.arange(n_vectors)[:, None] >> torch.arange(n_rollouts)) & 1).double()  # (2^n, n)
    generator = torch.Generator().manual_seed(seed)
    context = {"k": k, "entropies": torch.rand(n_vectors, generator=generator, dtype=torch.float64),
               "sequence_logprobs": torch.randn(n_vectors, n_rollouts, generator=generator, dtype=torch.float64),
               "generator": generator}
    advantages = compute_advantages(name, bits, options, **context).double()  # (2^n, n)
    # g = P/mu - Q/(1-mu) with P, Q the sums of the advantages of the correct / wrong responses
    correct_sum, wrong_sum = (advantages * bits).sum(-1), (advantages * (1 - bits)).sum(-1)  # (2^n,)
    estimates = correct_sum / mu - wrong_sum / (1 - mu)  # (M, 2^n)
    n_correct = bits.sum(-1)
    weights = torch.exp(n_correct * torch.log(mu) + (n_rollouts - n_correct) * torch.log1p(-mu))  # (M, 2^n)
    mean = (weights * estimates).sum(-1)
    variance = ((weights * (estimates - mean[:, None]) ** 2).sum(-1))
    return mean, variance
