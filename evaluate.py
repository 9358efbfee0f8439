"""Evaluation: the unbiased pass@k estimator (Chen et al., 2021), as the paper uses it (appendix A.2).

pass@k = 1 - C(n - c, k) / C(n, k): the chance that k of the n samples, c of them correct, drawn
without replacement, contain a correct one. It is also eq. 11 of the paper: the mean group reward
over all C(N, k) groups of k rollouts, so advantage.py reuses it.
"""
import torch


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
