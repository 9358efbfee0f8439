"""Tests of infra/chunked_head.py: the chunked output layer against the textbook head (scoring.sequence_logprobs,
every position's logits at once), at the real vocabulary width; and the helpers of the other wide-vocabulary tests
(test_fast_scoring.py, test_scoring.py)."""
import math

import pytest
import torch

import infra.chunked_head
from infra.chunked_head import head_logprobs
from infra.fast_scoring import forward_scores
from rollout import attention_positions
from scoring import sequence_logprobs

WIDE_VOCAB = 151_936  # Qwen2.5's


def wide_model(num_layers=2, seed=0):
    """A tiny Qwen2 with the real vocabulary width and tied embeddings (as Qwen2.5-0.5B)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=WIDE_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=num_layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, initializer_range=0.2)
    return Qwen2ForCausalLM(config).train()


def wide_rows(n_rows=6, prompt_length=7, response_length=9, seed=1):
    """Random rows of 3 prompts (2 rows each), the prompts left-padded to 7, 5 and 3 real tokens, the responses
    right-padded to 9, 4, 1 ... tokens."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, WIDE_VOCAB, (n_rows, prompt_length + response_length), generator=generator)
    input_ids[:, :prompt_length] = input_ids[::2, :prompt_length].repeat_interleave(2, 0)
    attention_mask = torch.ones_like(input_ids)
    for row in range(n_rows):
        attention_mask[row, :2 * (row // 2)] = 0  # left padding of the prompt
        attention_mask[row, prompt_length + max(1, response_length - 4 * row):] = 0  # the response's end
    return input_ids, attention_mask, prompt_length


def scores_and_grads(model, compute, with_entropy=True):
    """Log-probs, entropies and the gradients of a loss mixing both, over the response tokens."""
    model.zero_grad()
    logprobs, entropies = compute()
    weights = torch.linspace(-1, 1, logprobs.numel()).view_as(logprobs)
    ((logprobs + (0.3 * entropies if with_entropy else 0)) * weights).sum().backward()
    return logprobs.detach(), entropies.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


# Tolerances: both paths compute the same float32 numbers in another order (products of other shapes, sums over
# the V = 151,936 terms of a logsumexp or of d loss / d hidden = sum_v g_v W_v, per chunk or per batch). Float32
# rounds each step by u = 2**-24 = 6e-8 relative; over a V-term sum the errors add up like a random walk, to about
# sqrt(V) u = 2.3e-5 of the sum of the terms' magnitudes. Log-probs and entropies are ~12 nats (log V) and their
# terms are of that size: atol sqrt(V) u log V = 2.7e-4 nats (one standard deviation of the walk; torch's plain
# kernels, ATEN_CPU_CAPABILITY=default, sum in another order than the vectorised ones). A gradient entry is such a sum with cancellations, so it is compared to
# the scale of its parameter's gradient: max |difference| <= 4 sqrt(V) u = 9.3e-5 x max |reference| (4 standard
# deviations of the walk). Measured, chunked head against the textbook: log-probs within 2e-6, entropies 1.5e-5
# (the textbook sums -p_v log p_v, the chunked head log Z - sum_v p_v logit_v; 2.0e-5 on the plain kernels),
# gradients 1.2e-6 of the largest entry; against float64 the chunked head, in chunks of 5, is within 1e-5 of it.
LOGPROB_ATOL = WIDE_VOCAB ** 0.5 * 2 ** -24 * math.log(WIDE_VOCAB)
GRAD_SCALE_TOLERANCE = 4 * WIDE_VOCAB ** 0.5 * 2 ** -24


def chunked_forward(model, input_ids, attention_mask, prompt_length, temperature=1.0):
    """(logprobs, entropies) (B, R): one forward of the rows through the chunked head."""
    return forward_scores(model, input_ids, attention_mask, attention_positions(attention_mask), prompt_length,
                          temperature, with_entropy=True)


def assert_same(scores, reference, mask):
    (logprobs, entropies, grads), (ref_logprobs, ref_entropies, ref_grads) = scores, reference
    torch.testing.assert_close(logprobs * mask, ref_logprobs * mask, atol=LOGPROB_ATOL, rtol=0)
    torch.testing.assert_close(entropies * mask, ref_entropies * mask, atol=LOGPROB_ATOL, rtol=0)
    assert grads.keys() == ref_grads.keys() and "model.embed_tokens.weight" in grads  # tied: the head's weight too
    for name, grad in grads.items():
        scale = ref_grads[name].abs().max()
        error = float((grad - ref_grads[name]).abs().max() / scale)
        assert scale > 0 and error <= GRAD_SCALE_TOLERANCE, (name, error)


@pytest.mark.parametrize("chunk, temperature", [(5, 1.0), (7, 0.7), (1024, 1.3)])
def test_chunked_head_equals_full_logits(monkeypatch, chunk, temperature):
    """The model's forward through the chunked head against the textbook: log-probs, entropies and gradients (the
    tied embedding's included), with chunks that cut rows unevenly (54 positions in chunks of 5 or 7) or one chunk,
    at temperatures, under left and right padding."""
    model = wide_model()
    input_ids, attention_mask, prompt_length = wide_rows()
    mask = attention_mask[:, prompt_length:].float()
    reference = scores_and_grads(model, lambda: sequence_logprobs(model, input_ids, attention_mask, prompt_length,
                                                                  temperature, with_entropy=True))
    monkeypatch.setattr(infra.chunked_head, "CHUNK_POSITIONS", chunk)
    chunked = scores_and_grads(model, lambda: chunked_forward(model, input_ids, attention_mask, prompt_length,
                                                              temperature))
    assert_same(chunked, reference, mask)
    assert reference[0].abs().max() > 5 and reference[1].min() > 5  # ~log V: the wide vocabulary is in play


def test_chunked_head_under_bf16():
    """bf16 autocast (the projection in bf16 as autocast runs it, the log-softmax in float32) and bf16 weights:
    the same as the textbook under the same precision. Tolerance: the logits are rounded to bf16 (8 bits, 2**-9
    relative, ~0.01 on logits of a few units) in both paths; products of other shapes may round an entry the other
    way, moving a log-prob by about one such step."""
    model = wide_model(num_layers=1)
    input_ids, attention_mask, prompt_length = wide_rows()
    mask = attention_mask[:, prompt_length:].float()
    with torch.no_grad():
        exact = sequence_logprobs(model, input_ids, attention_mask, prompt_length, with_entropy=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reference = sequence_logprobs(model, input_ids, attention_mask, prompt_length, with_entropy=True)
            chunked = chunked_forward(model, input_ids, attention_mask, prompt_length)
        model.to(torch.bfloat16)
        bf16_reference = sequence_logprobs(model, input_ids, attention_mask, prompt_length, with_entropy=True)
        bf16_chunked = chunked_forward(model, input_ids, attention_mask, prompt_length)
    for (logprobs, entropies), (ref_logprobs, ref_entropies) in [(chunked, reference), (bf16_chunked, bf16_reference)]:
        assert logprobs.dtype == entropies.dtype == torch.float32
        torch.testing.assert_close(logprobs * mask, ref_logprobs * mask, atol=0.02, rtol=0)
        torch.testing.assert_close(entropies * mask, ref_entropies * mask, atol=0.02, rtol=0)
    assert ((chunked[0] - exact[0]) * mask).abs().max() > 1e-4  # autocast did change the precision


def test_head_logprobs_with_a_bias():
    """head_logprobs alone, with a bias on the output layer and a temperature, in chunks of 4 of 15 positions:
    values and the gradients of hidden, weight and bias against autograd of the textbook formula."""
    generator = torch.Generator().manual_seed(0)
    hidden, weight, bias = (torch.randn(shape, generator=generator, requires_grad=True)
                            for shape in [(3, 5, 16), (1000, 16), (1000,)])
    targets = torch.randint(0, 1000, (3, 5), generator=generator)
    upstream = torch.randn(2, 3, 5, generator=generator)
    results = []
    for chunked in (False, True):
        if chunked:
            logprobs, entropies = head_logprobs(hidden, weight, bias, targets, 1.4, with_entropy=True, chunk=4)
        else:
            log_probs = torch.log_softmax((hidden @ weight.T + bias) / 1.4, dim=-1)  # (3, 5, V)
            logprobs = log_probs.gather(-1, targets[..., None]).squeeze(-1)
            entropies = -(log_probs.exp() * log_probs).sum(-1)
        grads = torch.autograd.grad((upstream[0] * logprobs + upstream[1] * entropies).sum(), (hidden, weight, bias))
        results.append((logprobs, entropies, *grads))
    for chunked, textbook in zip(*results):
        torch.testing.assert_close(chunked, textbook, atol=1e-5, rtol=1e-5)
