"""Rollouts: sample n responses per prompt with HF `generate`, then score them with a forward pass.

`generate_rollouts` makes one batched, left-padded `model.generate` call (pure sampling at the given
temperature / top_p) and returns a `Rollout`: prompt + response token ids, the response mask (every
generated token up to AND including the first eos, which the response is trained to emit), the
decoded texts, and the sampling policy's per-token logprobs and entropies. Rows are prompt-major:
rows i*n_rollouts .. (i+1)*n_rollouts - 1 hold the n rollouts of prompt i (the GRPO group).
Prompts are full texts, tokenized as they are; `chat_prompt` wraps one in a chat template.
`concat_rollouts` joins rollouts generated in several calls (train.py generates in chunks).

`sequence_logprobs` is the one function that turns (input_ids, attention_mask) into per-token
logprobs of the response; rollout calls it under no_grad for the old logprobs, the training loop
calls it with grad for the new ones, so both see exactly the same computation:
  - position_ids = attention_mask.cumsum(-1) - 1 (clamped at 0), as generate uses: HF decoder models
    given no position_ids count from 0 at the first (pad) column, so under left padding the real
    tokens of shorter prompts would sit at shifted positions (exactly harmless only for rotary
    embeddings, which see position differences, and only in exact arithmetic);
  - logits are computed only at response positions (`logits_to_keep`), i.e. logits[:, P-1:-1];
  - logits are divided by the sampling temperature (as verl does), so the logprobs are those of the
    distribution the tokens were sampled from (top_p truncation is not accounted for).
"""
from dataclasses import dataclass

import torch

# transformers fills every generation option we leave unset from the model's generation_config (a
# Qwen2.5-Instruct checkpoint ships top_k=20, repetition_penalty=1.05) and then from global defaults
# (top_k=50). Set them explicitly, so that tokens are sampled from the policy we compute logprobs of.
PURE_SAMPLING = dict(do_sample=True, num_beams=1, top_k=0, typical_p=1.0, repetition_penalty=1.0,
                     no_repeat_ngram_size=0, min_new_tokens=0, epsilon_cutoff=0.0, eta_cutoff=0.0)


@dataclass
class Rollout:
    input_ids: torch.Tensor  # (B, P+R) left-padded prompts then generated tokens, B = n_prompts * n_rollouts
    attention_mask: torch.Tensor  # (B, P+R) prompt padding 0, then response_mask (0 after the first eos)
    prompt_length: int  # P, the padded prompt length: responses start at column P
    response_ids: torch.Tensor  # (B, R) generated tokens (pad after a row has ended)
    response_mask: torch.Tensor  # (B, R) float, 1 up to and including the first eos, 0 after
    response_lengths: torch.Tensor  # (B,) long, number of response tokens (eos included)
    logprobs: torch.Tensor  # (B, R) log pi_old(token) at temperature, from one forward pass
    entropies: torch.Tensor  # (B, R) entropy of pi_old at each response position
    texts: list  # B decoded responses (special tokens like <answer> kept, pad/eos dropped)
    temperature: float
    n_rollouts: int


def _eos_ids(tokenizer):
    eos = tokenizer.eos_token_id
    if eos is None or tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs both an eos_token_id and a pad_token_id")
    return eos if isinstance(eos, list) else [eos]


def response_mask_from_eos(response_ids, eos_token_ids):
    """(B, R) float mask: 1 for every token up to and including the first eos, 0 after; and the
    (B,) lengths. Found from the position of the first eos, so it is right even when pad == eos."""
    response_len = response_ids.shape[1]
    is_eos = torch.isin(response_ids, torch.as_tensor(eos_token_ids, device=response_ids.device))  # (B, R)
    has_eos = is_eos.any(dim=-1)  # (B,)
    first_eos = is_eos.int().argmax(dim=-1)  # (B,) index of the first eos (0 if none)
    response_lengths = torch.where(has_eos, first_eos + 1, response_len)  # (B,)
    positions = torch.arange(response_len, device=response_ids.device)  # (R,)
    response_mask = (positions[None, :] < response_lengths[:, None]).float()  # (B, R)
    return response_mask, response_lengths


def sequence_logprobs(model, input_ids, attention_mask, prompt_length, temperature=1.0, with_entropy=False):
    """Logprobs (B, R) of the tokens input_ids[:, prompt_length:] under `model` at `temperature`, and
    their entropies (B, R) too if with_entropy. Differentiable; wrap in no_grad when not training."""
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must be the same (B, L) shape, got "
                         f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
    response_len = input_ids.shape[1] - prompt_length  # R
    if not (1 <= prompt_length and response_len >= 1):
        raise ValueError(f"need 1 <= prompt_length < sequence length {input_ids.shape[1]}, got {prompt_length}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P+R), left padding -> 0
    output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False, logits_to_keep=response_len + 1)
    # the logits at position t predict token t+1: keep positions P-1 .. P+R-2, i.e. logits[:, P-1:-1]
    logits = output.logits[:, :-1].float() / temperature  # (B, R, V)
    response_ids = input_ids[:, prompt_length:]  # (B, R)
    log_normalizer = torch.logsumexp(logits, dim=-1)  # (B, R)
    logprobs = logits.gather(-1, response_ids[..., None]).squeeze(-1) - log_normalizer  # (B, R)
    if not with_entropy:
        return logprobs
    probs = torch.softmax(logits, dim=-1)  # (B, R, V)
    entropies = log_normalizer - (probs * logits).sum(-1)  # (B, R): H = logZ - E_p[logit]
    return logprobs, entropies


def decode_responses(tokenizer, response_ids, response_lengths):
    """Decode each response up to its length, dropping pad/eos ids but keeping other special tokens."""
    drop = set(_eos_ids(tokenizer)) | {tokenizer.pad_token_id}
    texts = []
    for ids, length in zip(response_ids.tolist(), response_lengths.tolist()):
        kept = [token for token in ids[:length] if token not in drop]
        texts.append(tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False))
    return texts


def chat_prompt(tokenizer, text):
    """`text` as the user turn of the tokenizer's chat template, ending where the assistant's reply
    starts (instruct models); `text` unchanged if the tokenizer has no chat template (tiny.py's)."""
    if not getattr(tokenizer, "chat_template", None):
        return text
    messages = [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def generate_rollouts(model, tokenizer, prompts, n_rollouts, max_new_tokens, temperature=1.0, top_p=1.0,
                      logprob_batch=None):
    """Sample n_rollouts responses for each prompt (one batched generate call); see `Rollout`.

    Prompts are complete texts and are tokenized without adding special tokens (a chat template, see
    `chat_prompt`, already holds them; add a bos yourself if your model wants one).
    logprob_batch: rows per forward pass when scoring the sampled tokens (None = all rows at once);
    with a real vocabulary the (rows, R, V) float32 logits of that pass are the memory peak."""
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings")
    if not (isinstance(n_rollouts, int) and n_rollouts >= 1):
        raise ValueError(f"n_rollouts must be an int >= 1, got {n_rollouts!r}")
    if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (sampling), got {temperature}")
    if not (0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if logprob_batch is not None and not (isinstance(logprob_batch, int) and logprob_batch >= 1):
        raise ValueError(f"logprob_batch must be None or an int >= 1, got {logprob_batch!r}")
    eos_token_ids = _eos_ids(tokenizer)

    device = next(model.parameters()).device
    encoded = tokenizer(list(prompts), padding=True, padding_side="left", add_special_tokens=False,
                        return_tensors="pt")
    if (encoded["attention_mask"].sum(-1) == 0).any():
        raise ValueError("every prompt must encode to at least one token (an empty prompt has no context)")
    prompt_ids = encoded["input_ids"].repeat_interleave(n_rollouts, dim=0).to(device)  # (B, P), prompt-major
    prompt_mask = encoded["attention_mask"].repeat_interleave(n_rollouts, dim=0).to(device)  # (B, P)
    prompt_length = prompt_ids.shape[1]

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            sequences = model.generate(
                input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens,
                temperature=temperature, top_p=top_p, eos_token_id=eos_token_ids,
                pad_token_id=tokenizer.pad_token_id, **PURE_SAMPLING)  # (B, P+R), R <= max_new_tokens
            response_ids = sequences[:, prompt_length:]  # (B, R)
            response_mask, response_lengths = response_mask_from_eos(response_ids, eos_token_ids)
            attention_mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=1)  # (B, P+R)
            rows = logprob_batch or len(sequences)
            scored = [sequence_logprobs(model, sequences[i:i + rows], attention_mask[i:i + rows], prompt_length,
                                        temperature=temperature, with_entropy=True)
                      for i in range(0, len(sequences), rows)]
            logprobs = torch.cat([part[0] for part in scored])  # (B, R)
            entropies = torch.cat([part[1] for part in scored])  # (B, R)
    finally:
        model.train(was_training)

    return Rollout(
        input_ids=sequences, attention_mask=attention_mask, prompt_length=prompt_length,
        response_ids=response_ids, response_mask=response_mask, response_lengths=response_lengths,
        logprobs=logprobs, entropies=entropies,
        texts=decode_responses(tokenizer, response_ids, response_lengths),
        temperature=float(temperature), n_rollouts=n_rollouts,
    )


def concat_rollouts(rollouts, pad_token_id):
    """One `Rollout` from several (e.g. generated in chunks): prompts left-padded again to the longest
    prompt_length, responses right-padded to the longest response (mask 0, logprob 0). Exact: the
    padding is masked and position_ids come from the attention mask."""
    rollouts = list(rollouts)
    if not rollouts:
        raise ValueError("concat_rollouts needs at least one rollout")
    first = rollouts[0]
    if any(r.temperature != first.temperature or r.n_rollouts != first.n_rollouts for r in rollouts):
        raise ValueError("can only concatenate rollouts sampled with the same temperature and n_rollouts")
    if len(rollouts) == 1:
        return first
    prompt_length = max(r.prompt_length for r in rollouts)
    response_len = max(r.response_ids.shape[1] for r in rollouts)
    pad = torch.nn.functional.pad

    def join(name, left_pad, value):
        return torch.cat([pad(getattr(r, name), (prompt_length - r.prompt_length if left_pad else 0,
                                                 response_len - r.response_ids.shape[1]), value=value)
                          for r in rollouts])

    return Rollout(
        input_ids=join("input_ids", True, pad_token_id), attention_mask=join("attention_mask", True, 0),
        prompt_length=prompt_length, response_ids=join("response_ids", False, pad_token_id),
        response_mask=join("response_mask", False, 0.0),
        response_lengths=torch.cat([r.response_lengths for r in rollouts]),
        logprobs=join("logprobs", False, 0.0), entropies=join("entropies", False, 0.0),
        texts=[text for r in rollouts for text in r.texts], temperature=first.temperature,
        n_rollouts=first.n_rollouts,
    )
