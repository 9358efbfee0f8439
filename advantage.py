"""Advantage estimators of Pass@k Training (Chen et al., 2025), one function per estimator.

The advantage function is the experiment. Every estimator takes `rewards` of shape
(n_prompts, n_rollouts), one row per prompt's rollouts, plus keyword options, and returns
float32 advantages of the same shape (one per response; every token of a response shares it).

    pass1              GRPO/DAPO group-normalised advantage               eq. 1-3
    passk_full         Pass@k with full sampling (disjoint groups)        sec. 2.2, alg. 1
    passk_bootstrap    Pass@k with bootstrap-sampled groups               sec. 2.3, eq. 6, alg. 2
    passk_analytical   closed form of the bootstrap limit                 sec. 2.4, eq. 11-15, app. B
    passk_exceeding    analytical x f(N_pos), earlier peak of eta         sec. 4.2.1, eq. 17
    passk_combination  accuracy-weighted mix of pass1 and passk           sec. 4.2.2, eq. 18
    passk_adaptive     pass1 for high-entropy prompts, passk for the rest sec. 4.2.3
    pass1_no_easy      pass1 with easy prompts' advantages set to 0       sec. 4.1.2
    noise_rewards      flip a fraction of negative rewards, then pass1    sec. 3.1

Std convention: the population std (1/N, as eq. 2 and eq. 12), floored so a group whose rewards
are all equal gets advantage 0, never NaN. Internals run in float64.

To add an estimator: write `def my_adv(rewards, k=..., ...)` and add one line to ADVANTAGES.
`compute_advantages` passes each estimator only the keyword arguments its signature names.
"""
import inspect
import math

import torch

from evaluate import pass_at_k

STD_FLOOR = 1e-6


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
        raise ValueError("the pass@k estimators need binary rewards (0 or 1)")
    return rewards


def _group_normalise(rewards):
    """(R - mean) / std along the last dim with population std (eq. 1-3); constant groups -> 0."""
    mean = rewards.mean(-1, keepdim=True)
    std = ((rewards - mean) ** 2).mean(-1, keepdim=True).sqrt()
    return (rewards - mean) / std.clamp_min(STD_FLOOR)


def pass1(rewards):
    """GRPO/DAPO: A_i = (R_i - mean(R)) / std(R) within each prompt's group (eq. 1-3)."""
    return _group_normalise(_check(rewards)).float()


def passk_full(rewards, k):
    """Full sampling (sec. 2.2, alg. 1): floor(N/k) disjoint groups of consecutive responses, group
    reward = max (eq. 5), group advantage by eq. 1-3 over the groups, shared by the group's members.
    The N mod k leftover responses are discarded (advantage 0); one group alone gets advantage 0."""
    rewards = _check(rewards, k, binary=True)
    n_prompts, n_rollouts = rewards.shape
    n_groups = n_rollouts // k
    group_rewards = rewards[:, : n_groups * k].view(n_prompts, n_groups, k).amax(-1)
    advantages = torch.zeros_like(rewards)
    advantages[:, : n_groups * k] = _group_normalise(group_rewards).repeat_interleave(k, dim=1)
    return advantages.float()


def passk_bootstrap(rewards, k, n_groups=None, generator=None, reduce="sum"):
    """Bootstrap sampling (sec. 2.3, alg. 2): n_groups (default N) groups of k distinct responses,
    group advantage by eq. 1-3 over the groups; a response's advantage is
      reduce="sum":  the sum of the advantages of the groups containing it (eq. 6, the paper's method);
      reduce="mean": their mean (appendix B; its limit over all C(N,k) groups is passk_analytical).
    A response in no group gets 0. Pass a torch.Generator for determinism."""
    rewards = _check(rewards, k, binary=True)
    n_prompts, n_rollouts = rewards.shape
    n_groups = n_rollouts if n_groups is None else n_groups
    if not isinstance(n_groups, int) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive integer, got {n_groups!r}")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    # k distinct indices per group: the first k of a random permutation
    members = torch.rand(n_prompts, n_groups, n_rollouts, generator=generator).argsort(-1)[..., :k]
    group_rewards = rewards.gather(1, members.flatten(1)).view(n_prompts, n_groups, k).amax(-1)
    group_advantages = _group_normalise(group_rewards)  # (n_prompts, n_groups)
    advantages = torch.zeros_like(rewards).scatter_add_(
        1, members.flatten(1), group_advantages.repeat_interleave(k, dim=1))
    if reduce == "mean":
        counts = torch.zeros_like(rewards).scatter_add_(1, members.flatten(1), torch.ones_like(members.flatten(1), dtype=rewards.dtype))
        advantages = advantages / counts.clamp_min(1)
    return advantages.float()


def passk_analytical(rewards, k):
    """Analytical Pass@k advantage (sec. 2.4, app. B), a function of N, N_pos and k only:
      R_group = 1 - C(N_neg, k) / C(N, k)                                        eq. 11
      sigma   = sqrt(R_group (1 - R_group))                                      eq. 12
      A_pos   = (1 - R_group) / sigma                                            eq. 14
      A_neg   = (1 - R_group - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / sigma    eq. 15
    N_pos = 0 or N_neg < k (every group positive) give sigma = 0 and advantage 0. k = 1 is pass1."""
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
    return torch.where(sigma > STD_FLOOR, advantages, torch.zeros_like(advantages)).float()


def passk_exceeding(rewards, k):
    """Exceeding Pass@k (sec. 4.2.1): A' = f(N_pos) * A_analytical with f(N_pos) = 4 / (10 ln(N_pos + 0.5))
    (eq. 17; log read as the natural log). f is only used where N_pos >= 1 (N_pos = 0 has A = 0)."""
    advantages = passk_analytical(rewards, k).double()
    n_pos = rewards.double().sum(-1, keepdim=True)
    scale = 4 / (10 * torch.log(n_pos.clamp_min(1) + 0.5))
    return (scale * advantages).float()


def passk_combination(rewards, k):
    """Combination (sec. 4.2.2, eq. 18): A = (N_pos/N) A_passk + (1 - N_pos/N) A_pass1."""
    accuracy = _check(rewards, k, binary=True).mean(-1, keepdim=True)
    return (accuracy * passk_analytical(rewards, k) + (1 - accuracy) * pass1(rewards)).float()


def passk_adaptive(rewards, k, entropies):
    """Entropy-adaptive (sec. 4.2.3): rank prompts by the mean entropy of their responses
    (`entropies`, shape (n_prompts,)); the higher-entropy half (n_prompts // 2 prompts, ties broken by
    order) gets pass1 to exploit, the rest passk_analytical to explore."""
    rewards = _check(rewards, k, binary=True)
    entropies = torch.as_tensor(entropies, dtype=torch.float64).flatten()
    if entropies.shape[0] != rewards.shape[0]:
        raise ValueError(f"entropies must hold one mean entropy per prompt ({rewards.shape[0]}), got {entropies.shape[0]}")
    high = torch.zeros(rewards.shape[0], dtype=torch.bool)
    high[entropies.argsort(descending=True, stable=True)[: rewards.shape[0] // 2]] = True
    return torch.where(high[:, None], pass1(rewards), passk_analytical(rewards, k))


def pass1_no_easy(rewards, easy_threshold=0.6):
    """Pass@1 without easy problems (sec. 4.1.2): prompts whose accuracy N_pos/N is above
    `easy_threshold` get advantage 0. Default 0.6: above it sec. 4.1.1 calls a problem easy."""
    accuracy = _check(rewards).mean(-1, keepdim=True)
    return torch.where(accuracy > easy_threshold, 0.0, pass1(rewards).double()).float()


def noise_rewards(rewards, noise=0.1, generator=None):
    """Noise rewards (sec. 3.1): each negative reward is flipped to positive with probability `noise`
    (paper: 10%, 30%, 50%), then pass1."""
    rewards = _check(rewards, binary=True)
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a fraction in [0, 1], got {noise}")
    flips = (torch.rand(rewards.shape, generator=generator, dtype=torch.float64) < noise) & (rewards == 0)
    return pass1(torch.where(flips, 1.0, rewards))


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
}


def check_options(name, options):
    """Raise a clear ValueError if `name` is not registered or takes none of the given `options`."""
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage {name!r}; registered: {sorted(ADVANTAGES)}")
    accepted = inspect.signature(ADVANTAGES[name]).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"advantage {name!r} takes no option(s) {unknown}; it takes {list(accepted)[1:]}")


def compute_advantages(name, rewards, options=None, **context):
    """ADVANTAGES[name](rewards, **options, **context). `options` are the user's settings for this
    estimator (each must be one it takes); `context` is what the caller knows (k, entropies,
    generator) and is passed only where the estimator's signature names it."""
    options = dict(options or {})
    check_options(name, options)
    accepted = inspect.signature(ADVANTAGES[name]).parameters
    options.update({key: value for key, value in context.items() if key in accepted and key not in options})
    return ADVANTAGES[name](rewards, **options)


def advantage_curves(name, n_rollouts, k=1, **options):
    """A_pos, A_neg and eta = N_pos |A_pos| + N_neg |A_neg| (eq. 16) for N_pos = 0..n_rollouts
    (figures 9 and 18). Returns three float tensors of shape (n_rollouts + 1,); A_pos at N_pos = 0 and
    A_neg at N_pos = N have no response and are NaN."""
    if not isinstance(n_rollouts, int) or n_rollouts < 1:
        raise ValueError(f"n_rollouts must be a positive integer, got {n_rollouts!r}")
    n_pos = torch.arange(n_rollouts + 1)
    rewards = (torch.arange(n_rollouts)[None, :] < n_pos[:, None]).float()  # row p: p positives first
    context = {"k": k, "entropies": torch.zeros(n_rollouts + 1)}
    advantages = compute_advantages(name, rewards, options, **context).double()
    eta = advantages.abs().sum(-1)
    nan = torch.tensor(math.nan, dtype=torch.float64)
    a_pos = torch.where(n_pos > 0, advantages[:, 0], nan)
    a_neg = torch.where(n_pos < n_rollouts, advantages[:, -1], nan)
    return a_pos, a_neg, eta


def eta(name, n_rollouts, k=1, **options):
    """Sum of absolute advantages eta(N_pos) = N_pos |A_pos| + N_neg |A_neg| (eq. 16), N_pos = 0..N."""
    return advantage_curves(name, n_rollouts, k, **options)[2]
