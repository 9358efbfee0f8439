"""Tests of infra/fast_sampler.py, our decode loop: each of its variants against plain HF generate."""
import copy

import pytest
import torch
from plain_generate import assert_same_samples, plain_generate

from infra.fast_sampler import DirectDecoder, sample_responses
from rollout import SAMPLERS, attention_positions, response_mask_from_eos, sampling_step

PROMPTS = ["S.E", "**..S\nE>.*", "a"]  # different lengths: left padding


@pytest.mark.parametrize("direct, compact_at, prompts", [(True, 0.0, PROMPTS), (True, 0.5, PROMPTS),
                                                     (True, 2.0, PROMPTS), (False, 0.25, PROMPTS),
                                                     (True, 0.25, PROMPTS[1:2])])
def test_fast_loop_variants_equal_plain_generate(micro_model, micro_tokenizer, direct, compact_at, prompts):
    """The fast loop's decoders (our Qwen2 layers on a preallocated cache, or HF's forward with a DynamicCache) and
    any batch compaction (at every step, once half the rows ended, never) draw the tokens of a plain HF generate
    call, the same seed, to the end (rows end at different steps), and record the logprobs and entropies of its
    logits. Tolerance 1e-5: float rounding of different op orders (a grouped attention, a cache instead of one
    prefill) on values of size ~1 in float32, whose rounding is ~1e-7 an op."""
    assert DirectDecoder.supports(micro_model)
    encoded = micro_tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
    arguments = (micro_model, encoded["input_ids"], encoded["attention_mask"], 6, 16, [micro_tokenizer.eos_token_id],
                 micro_tokenizer.pad_token_id, 1.2, 0.9)
    torch.manual_seed(4)
    reference = plain_generate(*arguments)
    torch.manual_seed(4)
    with torch.no_grad():
        samples = sample_responses(*arguments, sampling_step=sampling_step, attention_positions=attention_positions,
                                   direct=direct, compact_at=compact_at)
    lengths = response_mask_from_eos(reference[0], [micro_tokenizer.eos_token_id])[1]
    assert (lengths < reference[0].shape[1]).sum() >= 2 and lengths.min() < lengths.max()
    assert_same_samples(samples, reference)


def test_the_seam_binds_rollouts_sampling_step():
    """SAMPLERS["fast"] is sample_responses with rollout.py's sampling_step and attention_positions, its defaults."""
    sampler = SAMPLERS["fast"]()
    assert sampler.func is sample_responses
    assert sampler.keywords == dict(sampling_step=sampling_step, attention_positions=attention_positions)


def test_direct_decoder_only_for_plain_qwen2(micro_model):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    assert DirectDecoder.supports(micro_model) and not DirectDecoder.supports(llama)  # llama: HF's forward
    sliding = copy.deepcopy(micro_model)
    sliding.config.use_sliding_window = True
    assert not DirectDecoder.supports(sliding)
