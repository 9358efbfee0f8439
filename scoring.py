"""Scoring responses under a model: log pi_theta of each response token, the pi_theta of the ratio of eq. 4
(section 2.1), and its entropy. Used by the update, by the old-policy scoring of later mini-batches and by the
reference policy of the KL penalty; sampling records its own log-probs (rollout.py).

`sequence_logprobs` is the textbook computation: a forward pass, logits / temperature, log_softmax, gather the
response tokens, entropy -sum_v p_v log p_v. It departs from the textbook where sampling does, so that the
log-probs are those of the distribution the tokens were drawn from:
  - logits are divided by the sampling temperature (as verl does); top_p truncation is not accounted for;
  - position ids come from the attention mask (`attention_positions`), as HF generate computes them: without
    them a left-padded row's real tokens would sit at shifted positions.

`rollout_logprobs` is what the update runs: the same numbers, computed by infra/fast_scoring.py, which never
holds the logits of every position (a chunked output layer), runs each shared prompt once and the responses in
chunks of similar length. tests/test_scoring.py checks it against `sequence_logprobs`, gradients included.
"""
import torch

from infra.fast_scoring import fast_logprobs
from rollout import attention_positions


def sequence_logprobs(model, input_ids, attention_mask, prompt_length, temperature=1.0, with_entropy=False):
    """Logprobs (B, R) float32 of the tokens input_ids[:, prompt_length:] under `model` at `temperature`, and
    their entropies (B, R) too if with_entropy. input_ids, attention_mask (B, P + R), left-padded prompts.
    Differentiable; wrap in no_grad when not training."""
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must be the same (B, L) shape, got "
                         f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
    if not 1 <= prompt_length < input_ids.shape[1]:
        raise ValueError(f"need 1 <= prompt_length < sequence length {input_ids.shape[1]}, got {prompt_length}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # the hidden state at position t predicts token t+1: keep the logits of positions P-1 .. P+R-2
    positions = torch.arange(prompt_length - 1, input_ids.shape[1] - 1, device=input_ids.device)  # (R,)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=attention_positions(attention_mask),
                   use_cache=False, logits_to_keep=positions).logits  # (B, R, V)
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, R, V)
    logprobs = log_probs.gather(-1, input_ids[:, prompt_length:, None]).squeeze(-1)  # (B, R)
    if not with_entropy:
        return logprobs
    entropies = -(log_probs.exp() * log_probs).sum(-1)  # (B, R)
    return logprobs, entropies


def rollout_logprobs(model, rollout, rows, with_entropy=False, sharded=False):
    """`sequence_logprobs` of rows `rows` (1-D index tensor) of `rollout` under `model`, at the rollout's
    temperature, cut after the longest response among those rows: (len(rows), length) logprobs, and entropies if
    with_entropy (after a row's response: padding, to be masked with its response_mask). Inputs move to the
    model's device. Rows of one prompt (row // n_rollouts) share its forward. sharded (FSDP): every process must
    run the same forward passes, so the rows run in one forward (module doc of infra/fast_scoring.py)."""
    device = next(model.parameters()).device
    columns = rollout.prompt_length + int(rollout.response_lengths[rows].max())
    input_ids = rollout.input_ids[rows, :columns].to(device)
    attention_mask = rollout.attention_mask[rows, :columns].to(device)
    return fast_logprobs(model, input_ids, attention_mask, attention_positions(attention_mask),
                         rollout.prompt_length, rollout.temperature, with_entropy,
                         prompt_index=(rows // rollout.n_rollouts).to(device),
                         response_lengths=rollout.response_lengths[rows], sharded=sharded)
