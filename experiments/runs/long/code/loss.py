"""The clipped policy-gradient loss of DAPO as the paper uses it (section 2.1 eq. 4, appendix A.2).

Per response token t of response i, with ratio r = pi_theta / pi_old = exp(logprobs - old_logprobs)
and the response's advantage A_i (the same for all its tokens):

    objective_t = min(r * A_i, clip(r, 1 - eps_low, 1 + eps_high) * A_i)

The paper keeps only two of DAPO's changes to GRPO:
  - clip-higher: an asymmetric clip range, eps_low = 0.2, eps_high = 0.28;
  - token-level loss: the objective is summed over all response tokens of the mini-batch and divided
    by their count, so a long response weighs by its length (GRPO's eq. 4 averages per response first).
There is no KL term by default (beta = 0).

Gradient accumulation: pass `n_tokens` = the token count of the whole mini-batch to every micro-batch
call; the micro-batch losses (and their gradients, and the stats) then add up to those of the full
mini-batch, instead of being a mean of per-micro-batch means.

Two optional extras, both off by default:
  - entropy regularisation (the baseline of section 3.1): loss -= entropy_coef * token-mean entropy;
  - a KL penalty to a reference policy, k3 estimator (GRPO): loss += kl_coef * token-mean k3.
"""
import math

import torch


def _check_token_tensor(name, tensor, shape):
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)} like logprobs, got {tuple(tensor.shape)}")


def token_sum_over(values, response_mask, n_tokens):
    """sum(values over masked tokens) / n_tokens: the token-level mean of DAPO (a 0-dim tensor)."""
    return (values * response_mask).sum() / n_tokens


def k3_kl(logprobs, ref_logprobs):
    """Per-token k3 estimate of KL(pi_theta || pi_ref) on tokens sampled from pi_theta (GRPO, verl's
    "low_var_kl"): exp(ref - logp) - (ref - logp) - 1 >= 0. Clamped at 10 like verl.  (B, R) -> (B, R)"""
    log_ratio = ref_logprobs - logprobs
    return (torch.exp(log_ratio) - log_ratio - 1).clamp(max=10.0)


# the stats of policy_loss that describe the trained tokens (not the loss): a trainer that skips rows (advantage 0)
# but divides by all tokens should renormalise these to the trained tokens before logging them
DIAGNOSTIC_STATS = ("clip_fraction", "clip_fraction_low", "clip_fraction_high", "approx_kl", "ratio_mean")


def policy_loss(logprobs, old_logprobs, advantages, response_mask, eps_low=0.2, eps_high=0.28,
                n_tokens=None, entropies=None, entropy_coef=0.0, ref_logprobs=None, kl_coef=0.0):
    """Token-level clipped PPO loss (to minimise) and detached stats.

    logprobs      (B, R) log pi_theta of each response token (with grad)
    old_logprobs  (B, R) log pi_old of the same tokens (the sampling policy; no grad is taken)
    advantages    (B,)   one advantage per response, broadcast over its tokens; (B, R) also accepted
    response_mask (B, R) 1 for response tokens that are trained on, 0 for padding
    n_tokens      the divisor: defaults to response_mask.sum(); give the token count of the whole
                  mini-batch when this call sees one micro-batch of it (gradient accumulation); a
                  number or 0-dim tensor (checked > 0 unless it is on an accelerator: no host sync)
    entropies     (B, R) optional policy entropy per token (with grad); in the loss if entropy_coef != 0
    ref_logprobs  (B, R) optional log pi_ref of the tokens; in the loss if kl_coef != 0

    Returns (loss, stats). Every stat is a detached 0-dim tensor and, like the loss, a token sum
    divided by n_tokens, so stats also add up over micro-batches (no host sync happens here):
      pg_loss, clip_fraction (tokens where the clipped branch of the min is active), clip_fraction_low
      (ratio < 1 - eps_low, A < 0), clip_fraction_high (ratio > 1 + eps_high, A > 0), approx_kl (k3
      estimate of KL(pi_old || pi_theta)), ratio_mean, and entropy / kl_ref when those are given.
    """
    if not isinstance(logprobs, torch.Tensor) or logprobs.dim() != 2:
        got = tuple(logprobs.shape) if isinstance(logprobs, torch.Tensor) else type(logprobs).__name__
        raise ValueError(f"logprobs must be a 2-D tensor (batch, response_len), got {got}")
    _check_token_tensor("old_logprobs", old_logprobs, logprobs.shape)
    _check_token_tensor("response_mask", response_mask, logprobs.shape)
    if not isinstance(advantages, torch.Tensor) or advantages.shape not in (logprobs.shape[:1], logprobs.shape):
        got = tuple(advantages.shape) if isinstance(advantages, torch.Tensor) else type(advantages).__name__
        raise ValueError(f"advantages must have shape ({logprobs.shape[0]},) (one per response), got {got}")
    if not (0.0 <= eps_low < 1.0):
        raise ValueError(f"eps_low must be in [0, 1) so that 1 - eps_low > 0, got {eps_low}")
    if not (0.0 <= eps_high < math.inf):
        raise ValueError(f"eps_high must be >= 0 and finite, got {eps_high}")
    if entropy_coef != 0.0 and entropies is None:
        raise ValueError("entropy_coef != 0 needs the per-token entropies")
    if kl_coef != 0.0 and ref_logprobs is None:
        raise ValueError("kl_coef != 0 needs the reference policy's ref_logprobs")

    mask = response_mask.to(logprobs.dtype)  # (B, R)
    if n_tokens is None:
        n_tokens = mask.sum().clamp(min=1.0)  # an all-padding batch gives loss 0, not nan
    elif not isinstance(n_tokens, torch.Tensor) or n_tokens.device.type == "cpu":  # no GPU->host sync
        if not n_tokens > 0:
            raise ValueError(f"n_tokens must be > 0, got {n_tokens}")
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # (B, 1), broadcast over tokens
    advantages = advantages.detach().to(logprobs.dtype)

    # masked (padding) tokens get log_ratio 0: garbage there (even inf) can give neither nan nor grad
    log_ratio = torch.where(mask > 0, logprobs - old_logprobs.detach(), 0.0)  # (B, R)
    ratio = torch.exp(log_ratio)  # (B, R)
    unclipped = ratio * advantages  # (B, R)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages  # (B, R)
    objective = torch.minimum(unclipped, clipped)  # (B, R)
    pg_loss = -token_sum_over(objective, mask, n_tokens)
    loss = pg_loss

    with torch.no_grad():
        stats = {
            "pg_loss": pg_loss.detach(),
            "clip_fraction": token_sum_over((clipped < unclipped).to(mask.dtype), mask, n_tokens),
            "clip_fraction_low": token_sum_over(((ratio < 1 - eps_low) & (advantages < 0)).to(mask.dtype),
                                                mask, n_tokens),
            "clip_fraction_high": token_sum_over(((ratio > 1 + eps_high) & (advantages > 0)).to(mask.dtype),
                                                 mask, n_tokens),
            "approx_kl": token_sum_over(ratio - 1 - log_ratio, mask, n_tokens),
            "ratio_mean": token_sum_over(ratio, mask, n_tokens),
        }

    if entropies is not None:  # reported whenever given
        _check_token_tensor("entropies", entropies, logprobs.shape)
        entropy = token_sum_over(entropies, mask, n_tokens)
        loss = loss - entropy_coef * entropy
        stats["entropy"] = entropy.detach()
    if ref_logprobs is not None:
        _check_token_tensor("ref_logprobs", ref_logprobs, logprobs.shape)
        kl_ref = token_sum_over(k3_kl(logprobs, ref_logprobs.detach()), mask, n_tokens)
        loss = loss + kl_coef * kl_ref
        stats["kl_ref"] = kl_ref.detach()
    return loss, stats
