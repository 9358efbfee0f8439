"""Rollouts: sample n responses per prompt, recording the sampling policy's logprobs as they are drawn.

`generate_rollouts` samples one left-padded batch (pure sampling at the given temperature / top_p)
and returns a `Rollout`: prompt + response token ids, the response mask (every
generated token up to AND including the first end token, which the response is trained to emit: any of
`end_token_ids`, the tokenizer's eos and those of the model's generation_config.json), the
decoded texts, and the sampling policy's per-token logprobs and entropies. Rows are prompt-major:
rows i*n_rollouts .. (i+1)*n_rollouts - 1 hold the n rollouts of prompt i (the GRPO group).
Prompts are full texts, tokenized as they are; `chat_prompt` wraps one in a chat template.
`concat_rollouts` joins rollouts generated in several calls (train.py generates in chunks).

Two samplers draw the same tokens for the same seed and record the same numbers (up to float rounding);
`generate_rollouts(..., sampler=)` picks one:
  - "generate": HF `model.generate` (any architecture and cache class transformers supports). Its logits
    processor `SamplingPolicy` applies temperature and HF's top-p warper and records, step by step, the
    logprob of the drawn token and the entropy (no (B, R, V) logits kept, unlike output_logits=True);
    generate itself draws the tokens (softmax, torch.multinomial over the whole batch), pads ended rows
    and stops. Each prompt is prefilled once (`prefill_prompts`: all but its last token, the cache then
    repeated to its n rows) rather than generate's prefill of its n copies; with cache_implementation="static"
    generate prefills every copy itself.
  - "fast": our own short loop (`sample_responses`, tested on Qwen2), four savings over plain HF generate
    (the "generate" sampler above shares the first):
      - shared-prompt prefill: the n rollouts of a prompt share its tokens, so each prompt is run through
        the model once (HF's forward), and its KV cache serves the n rows of its group;
      - decode steps without HF's per-token overhead: for Qwen2 (`DirectDecoder`) the loop runs the model's
        layers itself on a preallocated cache, the prompt part kept once per prompt and attended by the n
        rows of its group in one grouped matmul; any other model runs HF's forward with a DynamicCache
        repeated to the n rows (`HFDecoder`); both in decoders.py;
      - the logprob of each sampled token and the entropy at each step are taken from the logits the loop
        computes anyway, instead of a second forward pass over the whole sequences;
      - rows that have emitted eos leave the batch (their cache rows are dropped) once they are a quarter of
        it (`COMPACT_AT`; dropping at every end costs more in copies than it saves), so later steps run
        mostly the rows still generating: with short, uneven responses most rows are done long before the
        last one.
    Its tokens are drawn like generate draws them: the same `sampling_step` (logits / temperature, HF's
    top-p warper), softmax, and ONE torch.multinomial call over the whole batch each step, rows that
    ended included (their draw is discarded, whether or not they are still in the decoder's batch): torch.multinomial(probs, 1) draws Exp(1) noise for every
    entry of `probs` whatever the values, so the random stream, and with it every token, is generate's.
A third, "vllm" (infra/vllm_sampler.py, `vllm_responses`), draws with vLLM, colocated: other draws, the same contract.
All record the logprob of the temperature-scaled distribution, NOT truncated by top_p (what
scoring.sequence_logprobs computes); top_p only restricts which tokens can be drawn. Our model calls pass the
KV cache under the installed transformers' keyword (`infra.compat.kv_cache`: `cache=` from 5.24, else `past_key_values=`).
"""
from dataclasses import dataclass

import torch
from infra.decoders import DirectDecoder, HFDecoder
from infra.compat import kv_cache
from transformers import DynamicCache, GenerationConfig, LogitsProcessor, LogitsProcessorList, TopPLogitsWarper

SAMPLERS = ("fast", "generate")  # the same draws for the same seed; "vllm" draws its own
COMPACT_AT = 0.25  # the fast loop drops ended rows from its batch once they are this fraction of it


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


def sample_responses(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
                     temperature=1.0, top_p=1.0, direct=None, compact_at=COMPACT_AT):
    """The "fast" sampler: n_rollouts responses to each of the U distinct left-padded prompts (U, P), prompt-major.

    Returns response_ids (B, R) (pad after a row's first eos), logprobs and entropies (B, R) (0 after
    it), B = U * n_rollouts and R <= max_new_tokens the longest response. The logprobs and entropies are
    those of the sampling distribution at `temperature` WITHOUT top_p truncation (what
    scoring.sequence_logprobs computes); top_p only restricts which tokens can be drawn.
    The model runs each prompt once; rows that have emitted eos leave the batch once they are `compact_at` of
    it, but every step still draws for the whole batch, as generate does, so the same seed draws the same
    tokens (module doc). direct: run the decode steps with `DirectDecoder` (default: where it supports the
    model), else `HFDecoder`."""
    n_prompts, device = len(prompt_ids), prompt_ids.device
    batch = n_prompts * n_rollouts
    cache = DynamicCache(config=model.config)
    output = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=attention_positions(prompt_mask),
                   **kv_cache(cache), use_cache=True, logits_to_keep=1)
    if direct is None:
        direct = DirectDecoder.supports(model)
    decoder = (DirectDecoder if direct else HFDecoder)(model, cache, prompt_mask, n_rollouts, max_new_tokens)
    logits = output.logits[:, -1].float().repeat_interleave(n_rollouts, dim=0)  # (B, V) predicting token 0
    first_position = prompt_mask.sum(-1).repeat_interleave(n_rollouts)  # (B,) position of response token 0
    eos = torch.as_tensor(eos_token_ids, device=device)

    response_ids = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    entropies = torch.zeros(batch, max_new_tokens, device=device)
    probs = torch.ones_like(logits)  # (B, V) the distribution every row draws from; ended rows keep their last
    running = torch.arange(batch, device=device)  # the batch row of each row of the decoder (its cache, logits)
    alive = torch.ones(batch, dtype=torch.bool, device=device)  # (running,) not ended yet
    for step in range(max_new_tokens):
        log_probs, step_entropies, scores = sampling_step(logits, temperature, top_p)  # (running, V), (running,)
        probs[running] = torch.softmax(scores, dim=-1)
        tokens = torch.multinomial(probs, num_samples=1)[running, 0]  # (running,) one draw for all B rows
        response_ids[running, step] = torch.where(alive, tokens, pad_token_id)
        logprobs[running, step] = log_probs.gather(-1, tokens[:, None]).squeeze(1) * alive
        entropies[running, step] = step_entropies * alive
        alive &= ~torch.isin(tokens, eos)
        ended = len(running) - int(alive.sum())
        if step == max_new_tokens - 1 or ended == len(running):
            break
        if ended >= compact_at * len(running):  # drop the rows that ended from the batch and the cache
            keep = alive.nonzero().squeeze(1)
            decoder.select(keep)
            running, tokens, alive = running[keep], tokens[keep], alive[keep]
        logits = decoder(tokens, first_position[running] + step).float()  # (running, V) predicting token step + 1
    response_len = step + 1
    return response_ids[:, :response_len], logprobs[:, :response_len], entropies[:, :response_len]


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


def prefill_prompts(model, prompt_ids, prompt_mask, n_rollouts):
    """The "generate" sampler's shared-prompt prefill: every prompt but its last column run through the model once,
    into a DynamicCache then repeated to the n_rollouts rows of its group (each layer's keys and values (U, ...) ->
    (B, ...), as HF generate's own prefill of B repeated prompts would hold them). Returns the cache and the prompts
    (B, P') to give generate: it then runs only their last column. A prompt batch one column wide gets a pad column
    on its left first (masked, so nothing changes), so that every call runs this one forward: under FSDP every
    process must run the same number of forwards."""
    if prompt_ids.shape[1] == 1:
        prompt_ids = torch.nn.functional.pad(prompt_ids, (1, 0), value=0)  # (U, 2): masked, so any token id
        prompt_mask = torch.nn.functional.pad(prompt_mask, (1, 0), value=0)
    cache = DynamicCache(config=model.config)
    model(input_ids=prompt_ids[:, :-1], attention_mask=prompt_mask[:, :-1],
          position_ids=attention_positions(prompt_mask[:, :-1]), **kv_cache(cache), use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(n_rollouts)
    return cache, prompt_ids.repeat_interleave(n_rollouts, 0), prompt_mask.repeat_interleave(n_rollouts, 0)


def generate_responses(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
                       temperature=1.0, top_p=1.0, cache_implementation=None, prefill_once=True):
    """The "generate" sampler: `sample_responses`'s contract (same tokens for the same seed, module doc)
    with HF `model.generate` doing the decoding. Pure sampling: the model's own generation_config
    (top_k, repetition_penalty, min_p, suppressed tokens...) is set aside for the call.
    prefill_once: each prompt is prefilled once (`prefill_prompts`) and generate, given its prompts repeated and
    that cache, runs only their last token, instead of prefilling every one of the n_rollouts copies of a prompt
    (num_return_sequences=n_rollouts). The same draws (generate draws once over the (B, V) batch either way), the
    logits to float rounding. False: generate's own repeated prefill (tests and benchmarks/prefill.py compare them).
    cache_implementation: None (a DynamicCache) or "static": a preallocated cache, with which transformers
    also torch.compiles the decode step on a GPU (its auto-compile; the first calls pay the compile time). generate
    takes a cache or a cache_implementation, not both, so "static" keeps generate's repeated prefill."""
    prefill_once = prefill_once and cache_implementation is None
    if prefill_once:  # generate gets B prompts and their cache up to the last token
        cache, prompt_ids, prompt_mask = prefill_prompts(model, prompt_ids, prompt_mask, n_rollouts)  # (B, P)
        prompts, copies = dict(input_ids=prompt_ids, attention_mask=prompt_mask, **kv_cache(cache)), 1
    else:  # generate repeats each of the U prompts n_rollouts times and prefills every copy
        prompts, copies = dict(input_ids=prompt_ids, attention_mask=prompt_mask), n_rollouts
    policy = SamplingPolicy(prompt_ids.shape[1], temperature, top_p)
    config = GenerationConfig(do_sample=True, num_beams=1, num_return_sequences=copies,
                              max_new_tokens=max_new_tokens, temperature=1.0, top_k=0, top_p=1.0,
                              eos_token_id=list(eos_token_ids), pad_token_id=pad_token_id,
                              cache_implementation=cache_implementation)  # T and top_p: the policy's
    # generate fills what `config` leaves unset from model.generation_config: a blank one during the call
    model_config, model.generation_config = model.generation_config, GenerationConfig()
    try:
        sequences = model.generate(**prompts, generation_config=config,
                                   logits_processor=LogitsProcessorList([policy]),  # (B, P + R), prompt-major
                                   synced_gpus=is_sharded(model))  # FSDP: every process steps until all are done
    finally:
        model.generation_config = model_config
    response_ids = sequences[:, prompt_ids.shape[1]:]  # (B, R) pad after each row's first eos
    logprobs, entropies = policy.finish(sequences)
    response_mask, _ = response_mask_from_eos(response_ids, eos_token_ids)
    return response_ids, logprobs * response_mask, entropies * response_mask


def vllm_responses(*args):
    """The "vllm" sampler (infra/vllm_sampler.py), imported on first use; its entropies are scored by the model."""
    from infra.vllm_sampler import sample_responses as vllm_sample
    from scoring import sequence_logprobs

    return vllm_sample(*args, score=sequence_logprobs)


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
                      sampler="fast", cache_implementation=None):
    """Sample n_rollouts responses for each prompt in one batch, with `sampler` "fast" (`sample_responses`)
    or "generate" (`generate_responses`, HF generate): the same rollouts for the same seed; see `Rollout`.

    Prompts are complete texts and are tokenized without adding special tokens (a chat template, see
    `chat_prompt`, already holds them; add a bos yourself if your model wants one). A response ends at the first
    of `end_token_ids(model, tokenizer)` it emits. Pure sampling: no
    top-k, repetition penalty or other option of the model's generation_config is applied.
    cache_implementation: "static" for sampler="generate" (`generate_responses`; on a GPU transformers then
    compiles the decode step), None for HF's dynamic cache; the fast loop has its own cache."""
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
    if sampler not in (*SAMPLERS, "vllm"):
        raise ValueError(f"sampler must be one of {(*SAMPLERS, 'vllm')}, got {sampler!r}")
    if cache_implementation not in (None, "static"):
        raise ValueError(f"cache_implementation must be None or 'static', got {cache_implementation!r}")
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
            options = dict(cache_implementation=cache_implementation) if sampler == "generate" else {}
            sample = {"fast": sample_responses, "generate": generate_responses, "vllm": vllm_responses}[sampler]
            response_ids, logprobs, entropies = sample(
                model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, tokenizer.pad_token_id,
                temperature, top_p, **options)  # (B, R) each
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
