"""Tests of infra/prefill.py: the generate sampler's prefill of each prompt once, and generate's own prefill of every
copy (with a dynamic or a static cache), each against plain HF generate."""
import pytest
import torch
from plain_generate import assert_same_samples, plain_generate

from infra.prefill import repeated_prompts
from mazes import format_prompt, make_mazes
from rollout import (chat_prompt, end_token_ids, generate_from, generate_responses, generate_rollouts,
                     response_mask_from_eos)

PROMPTS = ["S.E", "**..S\nE>.*", "a"]  # different lengths: left padding


def forward_shapes(model, sample):
    """sample()'s result and the (batch, length) of the input_ids of each forward of `model` it ran."""
    shapes = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        with torch.no_grad():
            return sample(), shapes
    finally:
        hook.remove()


@pytest.mark.parametrize("prompts", [PROMPTS, ["a", "b"]])  # left-padded 10, 4 and 1 tokens; one column wide
def test_generate_prefills_each_prompt_once(micro_model, micro_tokenizer, prompts):
    """The generate sampler runs each of the U prompts once (all but its last token), then generate runs the B rows
    from their last prompt token on: the tokens of a plain generate call (its prefill of every copy), the same seed,
    to the end (rows end at different steps); logprobs and entropies to 1e-5 (float rounding: the last prompt
    token's attention over a cache instead of inside one prefill, on float32 values of size ~1)."""
    n_rollouts, eos = 5, [micro_tokenizer.eos_token_id]
    encoded = micro_tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
    (n_prompts, prompt_length), batch = encoded["input_ids"].shape, len(prompts) * n_rollouts
    arguments = (micro_model, encoded["input_ids"], encoded["attention_mask"], n_rollouts, 16, eos,
                 micro_tokenizer.pad_token_id, 1.1, 0.9)
    torch.manual_seed(9)
    reference = plain_generate(*arguments)
    torch.manual_seed(9)
    samples, shapes = forward_shapes(micro_model, lambda: generate_responses(*arguments))
    assert_same_samples(samples, reference)
    lengths = response_mask_from_eos(reference[0], eos)[1]
    assert len(reference[0]) == batch and lengths.min() < lengths.max()
    prefilled = max(prompt_length - 1, 1)  # a one-column batch prefills one masked pad column
    assert shapes[0] == (n_prompts, prefilled) and set(shapes[1:]) == {(batch, 1)}
    assert len(shapes) == 1 + reference[0].shape[1]  # the prefill, then one token a step (the last prompt token first)


@pytest.mark.parametrize("static_cache_tokens", [None, 12])
def test_generates_own_prefill_equals_plain_generate(micro_model, micro_tokenizer, static_cache_tokens):
    """`repeated_prompts`, generate's prefill of every copy with a DynamicCache or a StaticCache (no compile on a
    CPU), through generate_from: plain generate's tokens and numbers. Tolerance 1e-5: the same float32 computation,
    a differently shaped attention (the static cache's masked columns) at most."""
    eos, pad = [micro_tokenizer.eos_token_id], micro_tokenizer.pad_token_id
    encoded = micro_tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    torch.manual_seed(6)
    reference = plain_generate(micro_model, encoded["input_ids"], encoded["attention_mask"], 4, 12, eos, pad, 1.1, 0.9)
    torch.manual_seed(6)
    prompts = repeated_prompts(micro_model, encoded["input_ids"], encoded["attention_mask"], 4, static_cache_tokens)
    samples, shapes = forward_shapes(micro_model, lambda: generate_from(micro_model, prompts, 12, eos, pad, 1.1, 0.9))
    assert_same_samples(samples, reference)
    assert shapes[0] == (len(PROMPTS) * 4, encoded["input_ids"].shape[1])  # every copy, every token


def test_generate_prefills_once_at_the_real_vocabulary(qwen_model_dir, qwen_tokenizer):
    """Qwen2.5's tokenizer, chat template and 151,936-token vocabulary, maze prompts of different lengths
    (left-padded), 8 rollouts: prefill once, plain generate and the fast sampler draw the same tokens; logprobs and
    entropies to 1e-4 (float32 rounding of a log-softmax over 151,936 logits, values ~12: 5e-6 apart at most here)."""
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_pretrained(qwen_model_dir).eval()
    bias = torch.zeros(model.config.vocab_size)
    bias[151645] = 10.0  # <|im_end|> p ~ 0.13 a step: rows end unevenly
    model.lm_head.register_forward_hook(lambda module, inputs, logits: logits + bias)
    mazes = make_mazes((5, 7), {5: 3, 7: 3}, (5,), 1, seed=1)["train"]["maze"][:3]
    prompts = [chat_prompt(qwen_tokenizer, format_prompt(maze, "paper")) for maze in mazes]
    encoded = qwen_tokenizer(prompts, padding=True, padding_side="left", add_special_tokens=False,
                             return_tensors="pt")
    lengths = encoded["attention_mask"].sum(-1)
    assert lengths.min() < lengths.max()  # left padding
    arguments = (model, encoded["input_ids"], encoded["attention_mask"], 8, 12, end_token_ids(model, qwen_tokenizer),
                 qwen_tokenizer.pad_token_id, 1.0, 0.95)
    torch.manual_seed(3)
    once, shapes = forward_shapes(model, lambda: generate_responses(*arguments))
    assert shapes[0] == (3, encoded["input_ids"].shape[1] - 1)
    torch.manual_seed(3)
    reference = plain_generate(*arguments)
    torch.manual_seed(3)
    fast = generate_rollouts(model, qwen_tokenizer, prompts, 8, 12, top_p=0.95, sampler="fast")
    for samples in (once, (fast.response_ids, fast.logprobs, fast.entropies)):
        assert_same_samples(samples, reference, atol=1e-4)
    assert fast.response_lengths.min() < fast.response_lengths.max()
