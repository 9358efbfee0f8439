"""The clipped policy-gradient loss of DAPO as the paper uses it (section 2.1 eq. 4, appendix A.2).

Per response token t of response i, with ratio r = pi_theta / pi_old = exp(logprobs - old_logprobs)
and the response's advantage A_i (the same for all its tokens):

    objective_t = min(r * A_i, clip(r, 1 - eps_low, 1 + eps_high) * A_i)

The paper keeps two of DAPO's changes to GRPO: clip-higher (eps_low = 0.2, eps_high = 0.28) and the token-level
loss (summed over all response tokens of the mini-batch, divided by their count, so a long response weighs by its
length; GRPO's eq. 4 averages per response first). No KL term by default (beta = 0). Off by default: entropy
regularisation (section 3.1's baseline) and a KL penalty to a reference policy (k3 estimator, GRPO). Gradient
accumulation: every micro-batch call gets `n_tokens` = the whole mini-batch's token count, so the micro-batch
losses add up to the mini-batch's.

`update_policy` is one RL step's update (GRPO-Zero's shape): rollouts and advantages in, mini-batches of
`policy_loss` with an AdamW step each, statistics out; on one process, DDP or FSDP alike.
"""
import contextlib
import math

import torch

from scoring import rollout_logprobs


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
DIAGNOSTIC_STATS = ("clip_fraction", "clip_fraction_low", "clip_fraction_high", "approx_kl", "ratio_mean",
                    "sampler_mismatch_mean")


def policy_loss(logprobs, old_logprobs, advantages, response_mask, eps_low=0.2, eps_high=0.28,
                n_tokens=None, entropies=None, entropy_coef=0.0, ref_logprobs=None, kl_coef=0.0, token_weights=None):
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
    token_weights (B, R) optional per-token weights of the policy-gradient objective, no grad: the truncated
                  importance weights min(pi_old / pi_sampler, cap) when another engine sampled (`tis_weights`)

    Returns (loss, stats). Every stat is a detached 0-dim tensor and, like the loss, a token sum
    divided by n_tokens, so stats also add up over micro-batches (no host sync happens here):
      pg_loss, clip_fraction (tokens where the clipped branch of the min is active), clip_fraction_low
      (ratio < 1 - eps_low, A < 0), clip_fraction_high (ratio > 1 + eps_high, A > 0), approx_kl (k3
      estimate of KL(pi_old || pi_theta)), ratio_mean, and loss_entropy / kl_ref when those are given.
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
    if token_weights is not None:
        _check_token_tensor("token_weights", token_weights, logprobs.shape)
        objective = objective * token_weights.detach()
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
        stats["loss_entropy"] = entropy.detach()  # the current policy's; train.py's `entropy` is the rollouts'
    if ref_logprobs is not None:
        _check_token_tensor("ref_logprobs", ref_logprobs, logprobs.shape)
        kl_ref = token_sum_over(k3_kl(logprobs, ref_logprobs.detach()), mask, n_tokens)
        loss = loss + kl_coef * kl_ref
        stats["kl_ref"] = kl_ref.detach()
    return loss, stats


def tis_weights(old_logprobs, sampler_logprobs, cap):
    """Truncated importance sampling (TRL's and verl's correction for a sampler whose numbers differ from the
    trainer's, e.g. vLLM's kernels): per token min(pi_old / pi_sampler, cap) = min(exp(old - sampler), cap), where
    pi_old is the trainer's score of the sampling weights. (B, R) -> (B, R), no grad."""
    return torch.exp(old_logprobs.detach() - sampler_logprobs).clamp(max=cap)


def update_policy(policy, optimizer, rollout, advantages, mini_tokens, mini_rows, *, accelerator, micro_batch,
                  eps_low=0.2, eps_high=0.28, grad_clip=1.0, entropy_coef=0.0, kl_coef=0.0, reference=None,
                  sharded=False, phase=None, tis_cap=0.0):
    """One RL step's policy update: DAPO's clipped token-level loss (eq. 4) on each mini-batch, one AdamW step
    per mini-batch. Returns {stat: value} (floats) of the step over ALL processes.

    rollout      this process's rows (a `rollout.Rollout`): its share of every mini-batch, mini-batch-major,
                 so rows j*R .. (j+1)*R - 1 (R = rows // n_minis) belong to mini-batch j
    advantages   (rows,) the advantage of each of those rows (one per response, from advantage.py)
    mini_tokens  (n_minis,) the response-token count of each GLOBAL mini-batch (every process's rows): the
                 divisor of the token-level mean, so a mini-batch's loss is its token sum over all
                 processes / its token count, however its rows are split into processes and micro-batches
    mini_rows    (n_minis,) how many rows EVERY process runs in mini-batch j: at least the most rows with a
                 gradient (advantage != 0) any process has. Each process runs its rows with advantage != 0
                 first, then pads with its own rows of advantage 0, masked out of the loss and the stats, up
                 to mini_rows[j]: every process runs the same forward and backward passes, so no collective
                 waits. One process: mini_rows = its rows with a gradient; the others are skipped. The cost:
                 each process runs as many rows as the busiest one.

    pi_old is the sampling policy. The first mini-batch is trained before any optimizer step of this RL
    step, so there pi_old IS the policy: old logprobs = logprobs.detach() and the ratio is exactly 1. The
    rows of later mini-batches are scored first, under no_grad, before the first optimizer step.

    Data parallel (DDP or FSDP through `accelerator.prepare`) averages the gradients over processes; each
    process's loss is scaled by the number of processes so that the step's gradient is the SUM over
    processes of (token sum / global token count): exactly the single-process gradient. Gradients are
    synchronised once per mini-batch (on its last micro-batch; `accelerator.no_sync` before). sharded (FSDP):
    every forward gathers weights from every process, so each micro-batch is one forward (`rollout_logprobs`).
    phase: called with "scoring", then "update", as each part starts (train.py times and measures them).
    Sampler against trainer: rollout.logprobs are the sampler's, `old` the trainer's of the same weights, so the
    step reports sampler_mismatch_mean / _max, |log pi_sampler - log pi_old| over the run response tokens; tis_cap > 0
    weights each token's objective by `tis_weights` (0: off).
    """
    n_minis = len(mini_tokens)
    rows_per_mini = len(advantages) // n_minis
    device = accelerator.device
    has_gradient = (advantages != 0) | (entropy_coef != 0 or kl_coef != 0)  # (rows,)
    micro_batches = []  # per mini-batch: its rows to run, rows with a gradient first, in micro-batches
    for mini in range(n_minis):
        rows = torch.arange(mini * rows_per_mini, (mini + 1) * rows_per_mini)
        run = rows[torch.argsort((~has_gradient[rows]).int(), stable=True)][:int(mini_rows[mini])]
        micro_batches.append(list(run.split(micro_batch)) if len(run) else [])
    phase = phase or (lambda name: None)
    phase("scoring")
    old_logprobs = rollout.logprobs.clone()  # (rows, R) the sampling policy's; exact for mini-batch 0
    with torch.no_grad(), accelerator.autocast():
        for micro in (micro for micros in micro_batches[1:] for micro in micros):
            scored = rollout_logprobs(policy, rollout, micro, sharded=sharded)  # (rows, length)
            old_logprobs[micro, :scored.shape[1]] = scored.float().cpu()

    phase("update")
    policy.train()
    sums = {}  # token sums of every stat (stat * mini_tokens), over this process's run rows
    run_tokens, grad_norms = torch.zeros((), dtype=torch.float64, device=device), []
    mismatch_max = torch.zeros((), dtype=torch.float64, device=device)
    for mini, micros in enumerate(micro_batches):
        n_tokens = mini_tokens[mini].clamp_min(1).to(device)
        for index, micro in enumerate(micros):
            length = int(rollout.response_lengths[micro].max())  # trim padding beyond the longest response
            # a padding row (no gradient) keeps its forward and backward but is masked out of the loss and stats
            response_mask = (rollout.response_mask[micro, :length] * has_gradient[micro, None]).to(device)
            last = index == len(micros) - 1
            with (contextlib.nullcontext() if last else accelerator.no_sync(policy)), accelerator.autocast():
                out = rollout_logprobs(policy, rollout, micro, entropy_coef != 0, sharded)
                logprobs, entropies = out if entropy_coef != 0 else (out, None)
                old = logprobs.detach() if mini == 0 else old_logprobs[micro, :length].to(device)
                sampler_logprobs = rollout.logprobs[micro, :length].to(device)
                mismatch = (old.float() - sampler_logprobs).abs() * response_mask  # (rows, length)
                mismatch_max = torch.maximum(mismatch_max, mismatch.max().double())
                ref_logprobs = None
                if reference is not None:
                    with torch.no_grad():
                        ref_logprobs = rollout_logprobs(reference, rollout, micro)
                loss, stats = policy_loss(logprobs, old, advantages[micro].to(device), response_mask, eps_low,
                                          eps_high, n_tokens=n_tokens, entropies=entropies,
                                          entropy_coef=entropy_coef, ref_logprobs=ref_logprobs, kl_coef=kl_coef,
                                          token_weights=tis_weights(old, sampler_logprobs, tis_cap) if tis_cap else None)
                stats["sampler_mismatch_mean"] = token_sum_over(mismatch, response_mask, n_tokens)
                accelerator.backward(loss * accelerator.num_processes)  # DDP/FSDP average: x processes = sum
            for name, value in stats.items():  # kept on the device: no host sync per micro-batch
                sums[name] = sums.get(name, 0.0) + value.double() * n_tokens
            run_tokens = run_tokens + response_mask.sum().double()
        norm = accelerator.clip_grad_norm_(policy.parameters(), grad_clip)
        grad_norms.append(float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))  # FSDP: a DTensor
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    # one reduction: every stat's token sum, the run tokens, over the processes
    names = sorted(sums)
    totals = torch.stack([torch.as_tensor(sums[name], device=device) for name in names] + [run_tokens])
    totals = accelerator.reduce(totals, "sum").cpu().tolist() if accelerator.num_processes > 1 else totals.tolist()
    total_tokens = float(mini_tokens.sum())
    if accelerator.num_processes > 1:
        mismatch_max = accelerator.gather(mismatch_max[None]).max()
    result = {"grad_norm": sum(grad_norms) / n_minis, "sampler_mismatch_max": float(mismatch_max)}
    for name, total in zip(names, totals):  # the loss terms per token of the step; diagnostics per trained token
        result[name] = total / max(totals[-1], 1.0) if name in DIAGNOSTIC_STATS else total / max(total_tokens, 1.0)
    return result
