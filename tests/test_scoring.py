"""Tests of scoring.py: the response logprobs and entropies under a model (the textbook sequence_logprobs), and
what the update runs (rollout_logprobs, through infra/fast_scoring.py) against it."""
import pytest
import torch
from conftest import make_micro_model
from test_chunked_head import LOGPROB_ATOL, WIDE_VOCAB, assert_same, scores_and_grads, wide_model

import infra.chunked_head
from infra.fast_scoring import length_chunks
from rollout import Rollout, generate_rollouts
from scoring import rollout_logprobs, sequence_logprobs

PROMPTS = ["S.E", "**..S\nE>.*", "a"]  # different lengths: left padding


def test_padding_does_not_change_logprobs(micro_model, micro_tokenizer):
    short, long = "a", "**..S\nE>.*..S"
    torch.manual_seed(3)
    rollout = generate_rollouts(micro_model, micro_tokenizer, [short, long], 2, 12)
    n_pad = rollout.prompt_length - len(micro_tokenizer(short)["input_ids"])
    assert n_pad > 0
    for row in range(2):  # the short prompt's rows, recomputed alone (no padding)
        alone_logprobs, alone_entropies = sequence_logprobs(
            micro_model, rollout.input_ids[row:row + 1, n_pad:], rollout.attention_mask[row:row + 1, n_pad:],
            rollout.prompt_length - n_pad, with_entropy=True)
        mask = rollout.response_mask[row].bool()
        torch.testing.assert_close(alone_logprobs[0][mask], rollout.logprobs[row][mask], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone_entropies[0][mask], rollout.entropies[row][mask], atol=1e-5, rtol=0)


def test_position_ids_follow_the_attention_mask(micro_model):
    seen = {}
    hook = micro_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True)
    try:
        input_ids = torch.tensor([[0, 0, 2, 5, 6, 7], [2, 5, 6, 7, 8, 9]])
        attention_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
        sequence_logprobs(micro_model, input_ids, attention_mask, prompt_length=4)
    finally:
        hook.remove()
    assert seen["position_ids"].tolist() == [[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]


def test_sequence_logprobs_supports_autograd(micro_tokenizer):
    model = make_micro_model(micro_tokenizer).train()
    torch.manual_seed(4)
    rollout = generate_rollouts(model, micro_tokenizer, PROMPTS, 2, 8, temperature=1.3)
    assert model.training  # generate_rollouts switches to eval and back
    logprobs = sequence_logprobs(model, rollout.input_ids, rollout.attention_mask, rollout.prompt_length,
                                 temperature=1.3)
    assert logprobs.requires_grad
    torch.testing.assert_close(logprobs.detach() * rollout.response_mask, rollout.logprobs, atol=1e-5, rtol=0)
    (logprobs * rollout.response_mask).sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0


def test_bad_input(micro_model):
    input_ids, attention_mask = torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)
    for prompt_length in (0, 5):
        with pytest.raises(ValueError, match="prompt_length"):
            sequence_logprobs(micro_model, input_ids, attention_mask, prompt_length)
    with pytest.raises(ValueError, match="shape"):
        sequence_logprobs(micro_model, input_ids, attention_mask[:, :4], 2)


def test_rollout_logprobs_cuts_at_the_longest_response(micro_model, micro_tokenizer):
    torch.manual_seed(14)
    rollout = generate_rollouts(micro_model, micro_tokenizer, PROMPTS, 4, 16, temperature=1.2)
    rows = torch.tensor([2, 3, 7, 8])
    length = int(rollout.response_lengths[rows].max())
    logprobs, entropies = rollout_logprobs(micro_model, rollout, rows, with_entropy=True)
    assert logprobs.shape == entropies.shape == (4, length)
    mask = rollout.response_mask[rows, :length]
    torch.testing.assert_close(logprobs * mask, rollout.logprobs[rows, :length], atol=1e-5, rtol=0)
    torch.testing.assert_close(entropies * mask, rollout.entropies[rows, :length], atol=1e-5, rtol=0)


# what the update runs against the textbook

def wide_rollout(temperature=0.9, prompt_length=7, seed=2):
    """A Rollout at the real vocabulary width, not sampled: 4 prompts x 2 rows of random tokens, the prompts
    left-padded by 0 to 3 columns, one response of 24 tokens and the others of 1 to 3 (so that they run in two
    length chunks)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([24, 1, 2, 3, 1, 2, 3, 2])
    input_ids = torch.randint(0, WIDE_VOCAB, (8, prompt_length + 24), generator=generator)
    input_ids[:, :prompt_length] = input_ids[::2, :prompt_length].repeat_interleave(2, 0)
    response_mask = (torch.arange(24) < lengths[:, None]).float()
    attention_mask = torch.cat([torch.ones(8, prompt_length, dtype=torch.long), response_mask.long()], dim=1)
    for row in range(8):
        attention_mask[row, :row // 2] = 0  # left padding of the prompt
    return Rollout(input_ids, attention_mask, prompt_length, input_ids[:, prompt_length:], response_mask, lengths,
                   torch.zeros(8, 24), torch.zeros(8, 24), [""] * 8, temperature, n_rollouts=2)


@pytest.mark.parametrize("sharded", [False, True])
def test_rollout_logprobs_equals_the_textbook(monkeypatch, sharded):
    """What the update runs (rollout_logprobs: the chunked head, each prompt run once for its rows, the rows in
    length chunks; or, sharded, one forward through the chunked head) against the textbook sequence_logprobs of
    the same rows: log-probs, entropies and the gradients of every parameter, at the real vocabulary width, with
    head chunks of 7 positions that cut rows. Tolerances: test_chunked_head's (LOGPROB_ATOL, GRAD_SCALE_TOLERANCE):
    the same float32 numbers summed in another order, over V = 151,936 terms."""
    model, rollout = wide_model(), wide_rollout()
    rows = torch.tensor([6, 0, 3, 7, 2, 5])  # shuffled, prompts 3, 0, 1, 3, 1, 2: prompt 0 has one row here
    columns = rollout.prompt_length + int(rollout.response_lengths[rows].max())
    mask = rollout.response_mask[rows, :columns - rollout.prompt_length]
    reference = scores_and_grads(model, lambda: [scores * mask for scores in sequence_logprobs(  # a loss of the
        model, rollout.input_ids[rows, :columns], rollout.attention_mask[rows, :columns], rollout.prompt_length,
        rollout.temperature, with_entropy=True)])  # response tokens: padding is left out, as the update leaves it
    monkeypatch.setattr(infra.chunked_head, "CHUNK_POSITIONS", 7)
    fast = scores_and_grads(model, lambda: [scores * mask for scores in rollout_logprobs(
        model, rollout, rows, with_entropy=True, sharded=sharded)])
    assert_same(fast, reference, mask)
    with torch.no_grad():  # and without the entropies, as the old-policy scoring runs it
        logprobs = rollout_logprobs(model, rollout, rows, sharded=sharded)
    torch.testing.assert_close(logprobs * mask, reference[0] * mask, atol=LOGPROB_ATOL, rtol=0)
    assert len(length_chunks(rollout.response_lengths[rows])) == 2  # the length chunks are in play
    assert reference[1][mask > 0].min() > 5  # ~log V: the wide vocabulary is in play
