"""Rollouts (paper section 2.1): sample N_rollout responses per prompt, recording the sampling policy's logprobs.

`generate_rollouts` samples one left-padded batch of prompts and returns a `Rollout`: prompt + response token ids,
the response mask (every generated token up to AND including the first end token, `end_token_ids`), the decoded
texts, and the policy's per-token logprobs and entropies. Rows are prompt-major: rows i*n .. (i+1)*n - 1 hold the
n rollouts of prompt i (the GRPO group). `concat_rollouts` joins rollouts generated in chunks (train.py).
Departures from the textbook loop (sample with generate, then score the sequences in a second forward):
  - the logprobs and entropies are recorded while sampling (`SamplingPolicy`), from the logits the sampler
    computes anyway; they are those of logits / temperature, NOT truncated by top_p (what scoring.py computes);
    top_p only restricts which tokens can be drawn (`sampling_step`);
  - pure sampling: the model's generation_config (top_k, repetition penalty...) is set aside;
  - each prompt is prefilled once for its n rows (infra/prefill.py), not n times.
The sampler is a swap behind one seam (`SAMPLERS`): HF generate here, our decode loop in infra/fast_sampler.py
(the same tokens for the same seed), or vLLM in infra/vllm_sampler.py (its own draws, the same contract).
"""
from dataclasses import dataclass
from functools import partial
from importlib import import_module

import torch
from infra.prefill import prefill_prompts
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, TopPLogitsWarper


@dataclass
class Rollout:
    input_ids: torch.Tensor  # (B, P+R) left-padded prompts then generated tokens, B = n_prompts * n_rollouts
    attention_mask: torch.Tensor  # (B, P+R) prompt padding 0, then response_mask (0 after the first eos)
    prompt_length: int  # P, the padded prompt length: responses start at column P
    response_ids: torch.Tensor  # (B, R) generated tokens (pad after a row has ended)
    response_mask: torch.Tensor  # (B, R) float, 1 up to and including the first eos, 0 after
    response_lengths: torch.Tensor  # (B,) long, number of response tokens (eos included)
    logprobs: torch.Tensor  # (B, R) log pi_old(token) at temperature, recorded while sampling (0 after the end)
    entropies: torch.Tensor  # (B, R) entropy of pi_old at each response position (0 after the end)
    texts: list  # B decoded responses (special tokens like <answer> kept, pad/eos dropped)
    temperature: float
    n_rollouts: int


def end_token_ids(model, tokenizer):
    """The token ids that end a response: the tokenizer's eos, then each eos_token_id (an int or a list) of the
    model's generation config, which transformers reads from the folder's generation_config.json when it has one
    (Qwen2.5-Instruct's lists <|im_end|> and <|endoftext|>) and otherwise derives from its config.json."""
    eos = tokenizer.eos_token_id
    if eos is None or tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs both an eos_token_id and a pad_token_id")
    listed = getattr(getattr(getattr(model, "module", model), "generation_config", None), "eos_token_id", None)
    ids = [*(eos if isinstance(eos, list) else [eos]), *([] if listed is None else [listed] if isinstance(listed, int)
                                                       else listed)]
    return list(dict.fromkeys(int(token) for token in ids))  # in that order, each once


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


def attention_positions(attention_mask):
    """position_ids (B, L) of a left-padded batch, as HF generate computes them: real tokens count from 0,
    pad columns get 0 (they are masked anyway)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def sampling_step(logits, temperature, top_p):
    """One step of the sampling policy, shared by both samplers. logits (B, V) float ->
    log_probs (B, V): the recorded distribution, logits / temperature log-softmaxed (NOT truncated by top_p);
    entropies (B,) of it; scores (B, V): the scores tokens are drawn from (softmax(scores)), i.e. logits /
    temperature through HF's own top-p warper (which keeps >= 1 token) when top_p < 1."""
    scaled = logits / temperature  # (B, V)
    log_probs = torch.log_softmax(scaled, dim=-1)
    entropies = -(log_probs.exp() * log_probs).sum(-1)  # (B,)
    scores = TopPLogitsWarper(top_p)(None, scaled) if top_p < 1 else scaled
    return log_probs, entropies, scores


class SamplingPolicy(LogitsProcessor):
    """The "generate" sampler's logits processor (generate runs at temperature 1, no top-k / top-p of its
    own): turns each step's raw logits into the scores generate draws from (`sampling_step`) and records
    the entropy of each step and the logprob of each drawn token, read at the next call (the token is then
    input_ids[:, -1]); `finish` records the last one. Keeps one (B, V) tensor, not the logits of every step."""

    def __init__(self, prompt_length, temperature, top_p):
        self.prompt_length, self.temperature, self.top_p = prompt_length, temperature, top_p
        self.log_probs, self.logprobs, self.entropies = None, [], []

    def __call__(self, input_ids, scores):  # (B, P + step), (B, V)
        if input_ids.shape[1] > self.prompt_length:
            self.logprobs.append(self.log_probs.gather(-1, input_ids[:, -1:]).squeeze(1))  # the previous step's
        self.log_probs, step_entropies, scores = sampling_step(scores.float(), self.temperature, self.top_p)
        self.entropies.append(step_entropies)
        return scores

    def finish(self, sequences):
        """(B, R) logprobs and entropies of the R steps of `sequences` (B, P + R), generate's output."""
        last = self.log_probs.gather(-1, sequences[:, -1:]).squeeze(1)
        return torch.stack(self.logprobs + [last], dim=1), torch.stack(self.entropies, dim=1)


def is_sharded(model):
    """A model sharded over processes (FSDP2): each forward gathers weights from all of them."""
    from torch.distributed.fsdp import FSDPModule

    return torch.distributed.is_initialized() and any(isinstance(module, FSDPModule) for module in model.modules())


def generate_responses(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
                       temperature=1.0, top_p=1.0):
    """The "generate" sampler (the seam's contract, `SAMPLERS`): HF `model.generate`, each prompt prefilled once
    (infra/prefill.py: generate gets the B rows with their cache filled up to their last prompt token)."""
    prompts = prefill_prompts(model, prompt_ids, prompt_mask, n_rollouts, attention_positions)
    return generate_from(model, prompts, max_new_tokens, eos_token_ids, pad_token_id, temperature, top_p)


def generate_from(model, prompts, max_new_tokens, eos_token_ids, pad_token_id, temperature, top_p):
    """HF generate as pure sampling from `prompts`, generate's prompt arguments for the B rows (input_ids and
    attention_mask (B, P), maybe a cache: infra/prefill.py), recording with `SamplingPolicy`. The model's own
    generation_config (top_k, repetition_penalty, min_p, suppressed tokens...) is set aside for the call.
    Returns the seam's (response_ids, logprobs, entropies), (B, R) each."""
    prompt_length = prompts["input_ids"].shape[1]
    policy = SamplingPolicy(prompt_length, temperature, top_p)
    config = GenerationConfig(do_sample=True, num_beams=1, max_new_tokens=max_new_tokens, temperature=1.0, top_k=0,
                              top_p=1.0, eos_token_id=list(eos_token_ids),
                              pad_token_id=pad_token_id)  # T and top_p: the policy's
    # generate fills what `config` leaves unset from model.generation_config: a blank one during the call
    model_config, model.generation_config = model.generation_config, GenerationConfig()
    try:
        sequences = model.generate(**prompts, generation_config=config,
                                   logits_processor=LogitsProcessorList([policy]),  # (B, P + R), prompt-major
                                   synced_gpus=is_sharded(model))  # FSDP: every process steps until all are done
    finally:
        model.generation_config = model_config
    response_ids = sequences[:, prompt_length:]  # (B, R) pad after each row's first eos
    logprobs, entropies = policy.finish(sequences)
    response_mask, _ = response_mask_from_eos(response_ids, eos_token_ids)
    return response_ids, logprobs * response_mask, entropies * response_mask


# The sampler seam. A sampler is a function
#     sampler(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
#             temperature, top_p) -> response_ids, logprobs, entropies
# prompt_ids, prompt_mask (U, P): the U distinct prompts, left-padded; it draws n_rollouts responses to each, pure
# sampling at temperature / top_p, ending a row at the first of eos_token_ids or after max_new_tokens. Each output is
# (B, R), B = U * n_rollouts prompt-major, R <= max_new_tokens the longest response: response_ids pad_token_id after
# a row's first end token; logprobs and entropies those of logits / temperature (`sampling_step`, untruncated by
# top_p) at each drawn token, 0 after it. Called under torch.no_grad() with the model in eval mode. "generate" and
# "fast" draw the same tokens for the same torch seed; "vllm" draws its own. SAMPLERS maps a name to a loader that
# returns the sampler, so that a sampler in its own file, and what it needs (vLLM is optional), is imported only
# when it is used.
SAMPLERS = {
    "generate": lambda: generate_responses,
    "fast": lambda: partial(import_module("infra.fast_sampler").sample_responses,  # our decode loop, which draws
                            sampling_step=sampling_step, attention_positions=attention_positions),  # as this file does
    "vllm": lambda: partial(import_module("infra.vllm_sampler").sample_responses, attention_positions=attention_positions),
}
SAME_DRAWS = ("generate", "fast")  # the samplers that draw the same tokens for the same torch seed


def decode_responses(tokenizer, response_ids, response_lengths, end_ids=None):
    """Decode each response up to its length, dropping pad and end tokens (`end_token_ids`; default: the
    tokenizer's eos) but keeping other special tokens."""
    eos = tokenizer.eos_token_id
    drop = set(end_ids or (eos if isinstance(eos, list) else [eos])) | {tokenizer.pad_token_id}
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
                      sampler="fast"):
    """Sample n_rollouts responses for each prompt in one batch with the sampler named `sampler` (`SAMPLERS`:
    "generate", HF generate, or "fast", our decode loop: the same rollouts for the same seed); see `Rollout`.

    Prompts are complete texts and are tokenized without adding special tokens (a chat template, see
    `chat_prompt`, already holds them; add a bos yourself if your model wants one). A response ends at the first
    of `end_token_ids(model, tokenizer)` it emits. Pure sampling: no
    top-k, repetition penalty or other option of the model's generation_config is applied."""
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
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
    eos_token_ids = end_token_ids(model, tokenizer)

    device = next(model.parameters()).device
    encoded = tokenizer(list(prompts), padding=True, padding_side="left", add_special_tokens=False,
                        return_tensors="pt")
    if (encoded["attention_mask"].sum(-1) == 0).any():
        raise ValueError("every prompt must encode to at least one token (an empty prompt has no context)")
    prompt_ids, prompt_mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)  # (U, P)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            response_ids, logprobs, entropies = SAMPLERS[sampler]()(
                model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, tokenizer.pad_token_id,
                temperature, top_p)  # (B, R) each
    finally:
        model.train(was_training)
    response_mask, response_lengths = response_mask_from_eos(response_ids, eos_token_ids)
    prompt_ids, prompt_mask = prompt_ids.repeat_interleave(n_rollouts, 0), prompt_mask.repeat_interleave(n_rollouts, 0)
    return Rollout(
        input_ids=torch.cat([prompt_ids, response_ids], dim=1),
        attention_mask=torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=1),
        prompt_length=prompt_ids.shape[1], response_ids=response_ids, response_mask=response_mask,
        response_lengths=response_lengths, logprobs=logprobs, entropies=entropies,
        texts=decode_responses(tokenizer, response_ids, response_lengths, eos_token_ids),
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
