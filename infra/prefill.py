"""The prompt prefill of both samplers: the n rollouts of a prompt share its tokens, so each prompt runs through the
model once and its KV cache serves the n rows of its group, instead of HF generate's prefill of n copies.

`prefill` runs left-padded prompts once (the fast sampler's first forward); `prefill_prompts` gives HF generate its
prompts with that cache already filled (rollout.generate_responses); `repeated_prompts` is generate's own way, every
copy prefilled, kept to compare against (tests, benchmarks/prefill.py, benchmarks/bench.py's static cache). The
position ids come from the caller's `attention_positions` (rollout.py), so that they are computed in one place.
"""
import torch
from transformers import DynamicCache, StaticCache

from infra.compat import kv_cache


def prefill(model, prompt_ids, prompt_mask, position_ids):
    """Left-padded prompts (U, P) through the model once, into a new DynamicCache: the cache and the logits (U, V)
    of their last column."""
    cache = DynamicCache(config=model.config)
    output = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids, **kv_cache(cache),
                   use_cache=True, logits_to_keep=1)
    return cache, output.logits[:, -1]


def prefill_prompts(model, prompt_ids, prompt_mask, n_rollouts, attention_positions):
    """generate's prompt arguments (input_ids and attention_mask (B, P'), and their cache), each prompt prefilled
    once: every prompt but its last column run through the model once, the cache then repeated to the n_rollouts rows
    of its group (each layer's keys and values (U, ...) -> (B, ...), as generate's own prefill of B repeated prompts
    would hold them); generate then runs only their last column. A prompt batch one column wide gets a pad column on
    its left first (masked, so nothing changes), so that every call runs this one forward: under FSDP every process
    must run the same number of forwards."""
    if prompt_ids.shape[1] == 1:
        prompt_ids = torch.nn.functional.pad(prompt_ids, (1, 0), value=0)  # (U, 2): masked, so any token id
        prompt_mask = torch.nn.functional.pad(prompt_mask, (1, 0), value=0)
    cache, _ = prefill(model, prompt_ids[:, :-1], prompt_mask[:, :-1], attention_positions(prompt_mask[:, :-1]))
    cache.batch_repeat_interleave(n_rollouts)
    return dict(input_ids=prompt_ids.repeat_interleave(n_rollouts, 0),
                attention_mask=prompt_mask.repeat_interleave(n_rollouts, 0), **kv_cache(cache))


def repeated_prompts(model, prompt_ids, prompt_mask, n_rollouts, static_cache_tokens=None):
    """generate's prompt arguments for its own prefill: every prompt repeated to its n_rollouts rows (as generate's
    num_return_sequences repeats them) and each copy's tokens run by generate. static_cache_tokens: new tokens to
    make room for in a preallocated cache (transformers' StaticCache, with which it torch.compiles the decode step
    on a GPU; the first calls pay the compile time); None: generate's DynamicCache."""
    prompts = dict(input_ids=prompt_ids.repeat_interleave(n_rollouts, 0),
                   attention_mask=prompt_mask.repeat_interleave(n_rollouts, 0))
    if static_cache_tokens is None:
        return prompts
    cache = StaticCache(config=model.config, max_cache_len=prompt_ids.shape[1] + static_cache_tokens)
    return dict(prompts, **kv_cache(cache))
