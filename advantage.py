"""Advantage estimators: Pass@k Training (Chen et al., 2025) and the other pass@k objectives, one function each.

The advantage function is the experiment. Every estimator maps `rewards` (n_prompts, n_rollouts) to one advantage
per response (every token of a response shares it), float64 for float64 rewards, float32 otherwise; the std is the
population std (1/N, eq. 2 and 12), floored so that a group of equal rewards gets 0, never NaN.

    pass1 (eq. 1-3, GRPO/DAPO)        passk_full (sec. 2.2, alg. 1)        passk_bootstrap (sec. 2.3, eq. 6, alg. 2)
    passk_analytical (sec. 2.4, eq. 11-15, app. B)     passk_exceeding (sec. 4.2.1, eq. 17)
    passk_combination (sec. 4.2.2, eq. 18)    passk_adaptive (sec. 4.2.3)    pass1_no_easy (sec. 4.1.2)
    noise_rewards (sec. 3.1)
    other papers: pkpo (arXiv 2505.15201), risk_seeking (2509.24261), best_of_n (2503.19595), psr, nsr and
    w_reinforce (2506.01347), maxrl (2602.02710), unlikeliness (2506.02355)

`compute_advantages` (train.py's call) passes an estimator its options and only the context its signature names
(k, entropies, sequence_logprobs, generator). To add one, write one function under `@estimator` (its docstring).
"""
import functools
import inspect
import math

import torch

STD_FLOOR = 1e-6


def pass_at_k(n, c, k):
    """Unbiased pass@k for n samples with c correct (c an int or a tensor of counts), k in 0..n.

    Computed as the product prod_{i=0}^{k-1} (n - c - i) / (n - i) = C(n-c, k) / C(n, k), which never
    forms a large binomial and is exact to float precision; a factor that would go negative means
    fewer than k failures exist, so the product is 0 and pass@k is 1. pass@0 is 0 (empty product).
    """
    for name, value in (("n", n), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 0 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= k <= n, got k={k} with n={n} samples")
    counts = torch.as_tensor(c, dtype=torch.float64)
    if ((counts < 0) | (counts > n) | (counts != counts.round())).any():
        raise ValueError(f"the number of correct samples c must be an integer in [0, n={n}], got {c}")
    steps = torch.arange(k, dtype=torch.float64)  # (k,)
    all_wrong = ((n - counts[..., None] - steps) / (n - steps)).clamp_min(0).prod(-1)
    result = 1 - all_wrong
    return result.item() if not isinstance(c, torch.Tensor) else result


# -----------------------------------------------------------------------------
# the registry: every check and dtype in one place
ADVANTAGES = {}  # name -> estimator, in the order of the table above


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# option rules: (test of a value, what a value must be)
POSITIVE = (lambda v: _is_number(v) and v > 0, "a number > 0")
FRACTION = (lambda v: _is_number(v) and 0 <= v <= 1, "a fraction in [0, 1]")


def one_of(*values):
    return (lambda v: v in values, " or ".join(map(repr, values)))


def _check(rewards, binary, takes_k, k=None):
    """Validate rewards (n_prompts, n_rollouts) and, if the estimator takes one, k; return rewards as a
    float64 copy (no estimator aliases or edits the caller's tensor)."""
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 2 or rewards.numel() == 0:
        got = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a non-empty tensor of shape (n_prompts, n_rollouts), got {got}")
    rewards = rewards.to(torch.float64, copy=True)
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    n_rollouts = rewards.shape[1]
    if takes_k and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_rollouts):
        raise ValueError(f"k must be an integer with 1 <= k <= n_rollouts={n_rollouts}, got {k!r}")
    if binary and not ((rewards == 0) | (rewards == 1)).all():
        raise ValueError("this estimator needs binary rewards (0 or 1)")
    return rewards


def _check_values(name, rules, options):
    """One clear ValueError for the first option value that breaks its rule."""
    for key, value in options.items():
        test, must_be = rules.get(key, (lambda v: True, ""))
        if not test(value):
            raise ValueError(f"advantage {name!r}: {key}={value!r} must be {must_be}")


def estimator(equation=None, *, binary=False, options=None):
    """Register `equation(rewards, ...)` in ADVANTAGES under its name; return it wrapped with the checks.
    binary: it needs 0/1 rewards. options: {option: (test, what a value must be)}.

        @estimator(binary=True, options={"scale": POSITIVE})  # needs 0/1 rewards; the rule for scale
        def my_advantage(rewards, k, scale=1.0):
            return scale * passk_analytical(rewards, k)

    Then `python train.py --advantage=my_advantage "--advantage_options={'scale': 2.0}"` runs it. The decorator
    does every check once, for direct calls and `compute_advantages` alike: rewards a finite (n_prompts,
    n_rollouts) tensor (0/1 if binary), k an integer in [1, n_rollouts] where the signature names k, each option
    value passing its rule ((test, "what a value must be"): POSITIVE, FRACTION, one_of("sum", "mean") or your
    own). The body gets float64 rewards and may call other estimators; its result is cast to the output dtype.
    So each body is its equation."""
    if equation is None:  # used as @estimator(...)
        return functools.partial(estimator, binary=binary, options=options)
    signature, rules = inspect.signature(equation), dict(options or {})
    if list(signature.parameters)[:1] != ["rewards"] or set(rules) - set(signature.parameters):
        raise TypeError(f"estimator {equation.__name__}: the first argument must be rewards, and every rule "
                        f"an argument's; got {list(signature.parameters)} and rules for {sorted(rules)}")

    @functools.wraps(equation)  # inspect.signature(checked) is the equation's
    def checked(*args, **kwargs):
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        rewards = call.arguments["rewards"]
        out = torch.float64 if isinstance(rewards, torch.Tensor) and rewards.dtype == torch.float64 else torch.float32
        call.arguments["rewards"] = _check(rewards, binary, "k" in signature.parameters, call.arguments.get("k"))
        _check_values(equation.__name__, rules, call.arguments)
        return equation(*call.args, **call.kwargs).to(out)

    checked.binary, checked.rules = binary, rules
    ADVANTAGES[equation.__name__] = checked
    return checked


def check_options(name, options):
    """Raise a clear ValueError if `name` is not registered, takes none of the given `options`, or an
    option's value breaks the rule declared with its estimator."""
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage {name!r}; registered: {sorted(ADVANTAGES)}")
    accepted = inspect.signature(ADVANTAGES[name]).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"advantage {name!r} takes no option(s) {unknown}; it takes {list(accepted)[1:]}")
    _check_values(name, getattr(ADVANTAGES[name], "rules", {}), options)  # {}: a function put in by hand


def compute_advantages(name, rewards, options=None, **context):
    """ADVANTAGES[name](rewards, **options, **context), checked and cast (module docstring). `options` are
    the user's settings for this estimator (each must be one it takes); `context` is what the caller knows
    (k, entropies, sequence_logprobs, generator) and is passed only where the estimator's signature names it."""
    options = dict(options or {})
    check_options(name, options)
    accepted = inspect.signature(ADVANTAGES[name]).parameters
    options.update({key: value for key, value in context.items() if key in accepted and key not in options})
    return ADVANTAGES[name](rewards, **options)


# -----------------------------------------------------------------------------
# the paper's estimators. Each body gets float64 rewards, checked (binary where declared) and k in [1, N].
def _group_normalise(rewards):
    """(R - mean) / std along the last dim with population std (eq. 1-3); constant groups -> 0."""
    mean = rewards.mean(-1, keepdim=True)  # eq. 1
    std = ((rewards - mean) ** 2).mean(-1, keepdim=True).sqrt()  # eq. 2
    return (rewards - mean) / std.clamp_min(STD_FLOOR)  # eq. 3


@estimator
def pass1(rewards):
    """GRPO/DAPO: A_i = (R_i - mean(R)) / std(R) within each prompt's group (eq. 1-3)."""
    return _group_normalise(rewards)


@estimator(binary=True)
def passk_full(rewards, k):
    """Full sampling (sec. 2.2, alg. 1): floor(N/k) disjoint groups of consecutive responses, group
    reward = max (eq. 5), group advantage by eq. 1-3 over the groups, shared by the group's members.
    The N mod k leftover responses are discarded (advantage 0); one group alone gets advantage 0."""
    n_prompts, n_rollouts = rewards.shape
    n_groups = n_rollouts // k
    group_rewards = rewards[:, : n_groups * k].view(n_prompts, n_groups, k).amax(-1)  # eq. 5
    advantages = torch.zeros_like(rewards)
    advantages[:, : n_groups * k] = _group_normalise(group_rewards).repeat_interleave(k, dim=1)
    return advantages


@estimator(binary=True, options={"reduce": one_of("sum", "mean"), "n_groups": (
    lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1), "a positive integer")})
def passk_bootstrap(rewards, k, n_groups=None, generator=None, reduce="sum"):
    """Bootstrap sampling (sec. 2.3, alg. 2): n_groups (default N) groups of k distinct responses,
    group advantage by eq. 1-3 over the groups; a response's advantage is
      reduce="sum":  the sum of the advantages of the groups containing it (eq. 6, the paper's method);
      reduce="mean": their mean (appendix B; its limit over all C(N,k) groups is passk_analytical).
    A response in no group gets 0. Pass a torch.Generator for determinism."""
    n_prompts, n_rollouts = rewards.shape
    n_groups = n_rollouts if n_groups is None else n_groups
    # k distinct indices per group: the first k of a random permutation (topk of the negated draws picks the
    # same indices in the same order as argsort()[..., :k], faster)
    draws = torch.rand(n_prompts, n_groups, n_rollouts, generator=generator)
    members = draws.neg().topk(k, dim=-1).indices.flatten(1)  # (n_prompts, n_groups * k)
    group_rewards = rewards.gather(1, members).view(n_prompts, n_groups, k).amax(-1)  # eq. 5
    group_advantages = _group_normalise(group_rewards).repeat_interleave(k, dim=1)  # eq. 1-3 over the groups
    advantages = torch.zeros_like(rewards).scatter_add_(1, members, group_advantages)  # eq. 6
    if reduce == "mean":
        counts = torch.zeros_like(rewards).scatter_add_(1, members, torch.ones_like(members, dtype=rewards.dtype))
        advantages = advantages / counts.clamp_min(1)
    return advantages


@estimator(binary=True)
def passk_analytical(rewards, k):
    """Analytical Pass@k advantage (sec. 2.4, app. B), a function of N, N_pos and k only:
      R_group = 1 - C(N_neg, k) / C(N, k)                                        eq. 11
      sigma   = sqrt(R_group (1 - R_group))                                      eq. 12
      A_pos   = (1 - R_group) / sigma                                            eq. 14
      A_neg   = (1 - R_group - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / sigma    eq. 15
    N_pos = 0 or N_neg < k (every group positive) give sigma = 0 and advantage 0. k = 1 is pass1."""
    n, n_pos = rewards.shape[1], rewards.sum(-1, keepdim=True)  # N, N_pos: (n_prompts, 1)
    group_reward = pass_at_k(n, n_pos, k)  # eq. 11 (pass@k of the prompt's N rollouts)
    sigma = (group_reward * (1 - group_reward)).sqrt()  # eq. 12
    negative_share = 1 - pass_at_k(n - 1, n_pos.clamp_max(n - 1), k - 1)  # C(N_neg-1, k-1) / C(N-1, k-1)
    a_pos = (1 - group_reward) / sigma.clamp_min(STD_FLOOR)  # eq. 14
    a_neg = (1 - group_reward - negative_share) / sigma.clamp_min(STD_FLOOR)  # eq. 15
    return torch.where(sigma > STD_FLOOR, torch.where(rewards > 0, a_pos, a_neg), 0.0)


@estimator(binary=True)
def passk_exceeding(rewards, k):
    """Exceeding Pass@k (sec. 4.2.1): A' = f(N_pos) * A_analytical with f(N_pos) = 4 / (10 ln(N_pos + 0.5))
    (eq. 17; log read as the natural log). f is only used where N_pos >= 1 (N_pos = 0 has A = 0)."""
    n_pos = rewards.sum(-1, keepdim=True)
    return 4 / (10 * torch.log(n_pos.clamp_min(1) + 0.5)) * passk_analytical(rewards, k)  # eq. 17


@estimator(binary=True)
def passk_combination(rewards, k):
    """Combination (sec. 4.2.2, eq. 18): A = (N_pos/N) A_passk + (1 - N_pos/N) A_pass1."""
    accuracy = rewards.mean(-1, keepdim=True)  # N_pos / N
    return accuracy * passk_analytical(rewards, k) + (1 - accuracy) * pass1(rewards)  # eq. 18


@estimator(binary=True)
def passk_adaptive(rewards, k, entropies):
    """Entropy-adaptive (sec. 4.2.3): rank prompts by the mean entropy of their responses
    (`entropies`, shape (n_prompts,)); the higher-entropy half (n_prompts // 2 prompts, ties broken by
    order) gets pass1 to exploit, the rest passk_analytical to explore."""
    n_prompts = rewards.shape[0]
    entropies = torch.as_tensor(entropies, dtype=torch.float64).flatten()
    if entropies.shape[0] != n_prompts:
        raise ValueError(f"entropies must hold one mean entropy per prompt ({n_prompts}), got {entropies.shape[0]}")
    high = torch.zeros(n_prompts, dtype=torch.bool)
    high[entropies.argsort(descending=True, stable=True)[: n_prompts // 2]] = True
    return torch.where(high[:, None], pass1(rewards), passk_analytical(rewards, k))


@estimator(options={"easy_threshold": FRACTION})
def pass1_no_easy(rewards, easy_threshold=0.6):
    """Pass@1 without easy problems (sec. 4.1.2): prompts whose accuracy N_pos/N is above
    `easy_threshold` get advantage 0. Default 0.6: above it sec. 4.1.1 calls a problem easy."""
    return torch.where(rewards.mean(-1, keepdim=True) > easy_threshold, 0.0, pass1(rewards))


@estimator(binary=True, options={"noise": FRACTION})
def noise_rewards(rewards, noise=0.1, generator=None):
    """Noise rewards (sec. 3.1): each negative reward is flipped to positive with probability `noise`
    (paper: 10%, 30%, 50%), then pass1."""
    flips = (torch.rand(rewards.shape, generator=generator, dtype=torch.float64) < noise) & (rewards == 0)
    return pass1(torch.where(flips, 1.0, rewards))


# -----------------------------------------------------------------------------
# the other pass@k objectives
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


@estimator(options={"baseline": one_of("loo", "none")})
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
    n_rollouts = rewards.shape[1]
    if k == 1 and baseline == "loo":  # eq. 26 (leave-one-out mean; none to leave for n = 1)
        others_mean = (rewards.sum(-1, keepdim=True) - rewards) / max(n_rollouts - 1, 1)
        return (rewards - others_mean) / n_rollouts
    own, above = _pkpo_weights(n_rollouts, k)
    sorted_rewards, order = rewards.sort(dim=-1, stable=True)  # (P, N) ascending
    if baseline == "none":  # own term + sum over higher positions j of above[j] r_j
        weighted_above = (above * sorted_rewards).flip(-1).cumsum(-1).flip(-1)  # suffix sums, j >= i
        transformed = own * sorted_rewards + weighted_above - above * sorted_rewards
    else:  # cumulative sum of the sorted gaps r_{m+1} - r_m >= 0, each times own[m+1]
        gaps = (sorted_rewards[:, 1:] - sorted_rewards[:, :-1]) * own[1:]  # (P, N-1)
        transformed = torch.cat([torch.zeros_like(sorted_rewards[:, :1]), gaps.cumsum(-1)], dim=-1)
    return torch.empty_like(rewards).scatter_(1, order, transformed)


@estimator(options={"beta": POSITIVE})
def risk_seeking(rewards, beta=2.0):
    """RS-GRPO (Jiang et al. 2025, "Risk-Sensitive RL for Alleviating Exploration Dilemmas in LLMs",
    arXiv 2509.24261): the gradient of the exponential utility (1/beta) log E[exp(beta r)], which moves
    from the mean reward (beta -> 0) to the maximum (beta -> inf), with baseline 1/beta:
      A_i = (1/beta) (exp(beta r_i) / mean_j exp(beta r_j) - 1)
    computed as expm1(beta r_i - logmeanexp(beta r)) / beta. Default beta = 2 (the authors' code).
    Any rewards. Sums to 0 over a group; constant groups get exactly 0."""
    scaled = beta * (rewards - rewards.amax(-1, keepdim=True))  # <= 0, and A does not change with a shift of r
    log_mean = torch.expm1(scaled).mean(-1, keepdim=True).log1p()  # log mean exp, in [-log N, 0]; constant: 0
    return torch.expm1(scaled - log_mean) / beta


@estimator
def best_of_n(rewards):
    """Best-of-N / pass@n (Tang et al. 2025, arXiv 2503.19595; verl's `grpo_passk`): the response with
    the highest reward gets r_max - r_second, every other response exactly 0. It is the unbiased
    gradient of max@n = E[max of the n samples] (= pkpo with k = n and baseline "loo").
    Ties at the top: r_max - r_second = 0, so every response gets 0 (none is singled out).
    n = 1: there is no second response; the baseline is 0 and the lone response gets its reward.
    (verl by default also divides by the group's std; the paper's estimator, used here, does not.
    EasyR1 issue #585: not zeroing the other responses collapses training.)"""
    if rewards.shape[1] == 1:
        return rewards
    top2, top_index = rewards.topk(2, dim=-1)  # (P, 2) each
    gap = top2[:, :1] - top2[:, 1:]  # (P, 1) r_max - r_second, 0 when the top is tied
    return torch.zeros_like(rewards).scatter_(1, top_index[:, :1], gap)


@estimator(binary=True)
def psr(rewards):
    """Positive sample reinforcement (Zhu et al. 2025, "The Surprising Effectiveness of Negative
    Reinforcement in LLM Reasoning", arXiv 2506.01347): A = r = 1 on correct responses, 0 on wrong ones
    (likelihood training on the correct responses only)."""
    return rewards


@estimator(binary=True)
def nsr(rewards):
    """Negative sample reinforcement (Zhu et al. 2025, arXiv 2506.01347): A = r - 1 = -1 on wrong
    responses, 0 on correct ones (only push probability away from the wrong responses)."""
    return rewards - 1


@estimator(binary=True, options={"lam": (lambda v: _is_number(v) and v >= 0, "a number >= 0")})
def w_reinforce(rewards, lam=0.1):
    """Weighted REINFORCE (Zhu et al. 2025, arXiv 2506.01347): lam * PSR + NSR, i.e. A = lam on correct
    responses, -1 on wrong ones; default lam (the paper's lambda) = 0.1."""
    return lam * rewards + (rewards - 1)  # exact for 0/1 rewards: lam + 0 and 0 - 1


@estimator(options={"eps": POSITIVE})
def maxrl(rewards, eps=1e-6):
    """Maximum Likelihood RL (Tajwar et al. 2026, arXiv 2602.02710): A_i = (r_i - mean) / (mean + eps),
    the mean over the prompt's group: the gradient estimate of log pass@1 truncated at n samples
    (binary: correct (1 - p) / p with p = c/n, wrong -1; a group with no correct response gets 0).
    Rewards must be >= 0."""
    if (rewards < 0).any():
        raise ValueError("maxrl needs rewards >= 0 (it divides by the group's mean reward)")
    mean = rewards.mean(-1, keepdim=True)
    return (rewards - mean) / (mean + eps)


@estimator(options={"beta": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1] (0: plain pass1)")})
def unlikeliness(rewards, sequence_logprobs=None, beta=0.25):
    """Unlikeliness reward (He, Fried & Welleck 2025, "Rewarding the Unlikely", arXiv 2506.02355): rank
    the group's responses by their sequence log-probability under the sampling policy,
    rank_i in 0..N-1 (0 = least likely, N-1 = most likely; ties by position), penalise rewards by rank,
      r'_i = r_i (1 - beta rank_i / N)
    so the most likely correct responses lose the most, then GRPO normalisation (eq. 1-3, population std).
    Default beta = 0.25 (the paper's). Rank convention as the authors' code (its penalty is 0 for the
    least likely response). Context `sequence_logprobs`, shape (n_prompts, n_rollouts): each response's
    log-probability summed over its tokens (the authors rank by the per-token mean)."""
    if sequence_logprobs is None:
        raise ValueError("unlikeliness needs the context sequence_logprobs (n_prompts, n_rollouts): each response's "
                         "log-probability under the sampling policy; pass compute_advantages(..., sequence_logprobs=...)")
    logprobs = torch.as_tensor(sequence_logprobs, dtype=torch.float64)
    if logprobs.shape != rewards.shape or not torch.isfinite(logprobs).all():
        raise ValueError(f"sequence_logprobs must be finite with the rewards' shape {tuple(rewards.shape)}, "
                         f"got {tuple(logprobs.shape)}")
    rank = logprobs.argsort(dim=-1, stable=True).argsort(dim=-1).double()  # (P, N): 0 = least likely
    return _group_normalise(rewards * (1 - beta * rank / rewards.shape[1]))


# -----------------------------------------------------------------------------
# k annealing and what an estimator optimises (eta curves, expected gradients)
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
