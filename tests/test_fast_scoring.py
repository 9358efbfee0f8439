"""Tests of infra/fast_scoring.py: its shortcuts (the shared-prompt forward, length chunks, the fallback under
gradient checkpointing) against one forward of every row, and against the textbook scoring.sequence_logprobs at
the real vocabulary width."""
import itertools
import random

import pytest
import torch
from conftest import make_micro_model
from test_chunked_head import assert_same, scores_and_grads, wide_model, wide_rows

import infra.chunked_head
from infra.compat import enable_activation_checkpointing
from infra.fast_scoring import fast_logprobs, length_chunks, uses_checkpointing
from rollout import attention_positions, generate_rollouts
from scoring import sequence_logprobs

PROMPTS = ["S.E", "**..S\nE>.*", "a"]  # different lengths: left padding


def fast(model, input_ids, attention_mask, prompt_length, temperature=1.0, with_entropy=False, **options):
    """fast_logprobs, given the position ids scoring.py gives it; sharded=True: one forward of every row."""
    return fast_logprobs(model, input_ids, attention_mask, attention_positions(attention_mask), prompt_length,
                         temperature, with_entropy, **options)


def loss_and_grads(model, compute):
    model.zero_grad()
    logprobs = compute()
    loss = (logprobs * torch.linspace(-1, 1, logprobs.numel()).view_as(logprobs)).sum()
    loss.backward()
    return logprobs.detach(), [param.grad.clone() for param in model.parameters()]


@pytest.mark.parametrize("response_len", [1, 9])
def test_shared_prompt_forward_equals_full_forward(micro_tokenizer, response_len):
    """Rows of a few prompts (left-padded to different lengths, in no particular order, some rows of a group
    missing): running each prompt once and sharing its KV cache gives the same logprobs, entropies and
    gradients as the full forward of every row."""
    model = make_micro_model(micro_tokenizer).train()
    torch.manual_seed(13)
    rollout = generate_rollouts(model, micro_tokenizer, PROMPTS, 4, response_len)
    rows = torch.tensor([5, 0, 1, 3, 9, 11, 4, 10])  # prompts 1, 0, 0, 0, 2, 2, 1, 2
    inputs = (rollout.input_ids[rows], rollout.attention_mask[rows], rollout.prompt_length)
    full, full_grads = loss_and_grads(model, lambda: fast(model, *inputs, temperature=0.9, sharded=True))
    shared, shared_grads = loss_and_grads(model, lambda: fast(model, *inputs, temperature=0.9,
                                                              prompt_index=rows // 4))
    mask = rollout.response_mask[rows]
    torch.testing.assert_close(shared * mask, full * mask, atol=1e-5, rtol=0)
    for shared_grad, full_grad in zip(shared_grads, full_grads):
        torch.testing.assert_close(shared_grad, full_grad, atol=1e-5, rtol=1e-4)
    _, full_entropies = fast(model, *inputs, with_entropy=True, sharded=True)
    _, shared_entropies = fast(model, *inputs, with_entropy=True, prompt_index=rows // 4)
    torch.testing.assert_close(shared_entropies * mask, full_entropies * mask, atol=1e-5, rtol=0)


def test_length_chunks_is_the_cheapest_split():
    """Against every split of the rows sorted by length into at most max_chunks consecutive chunks (exhaustive,
    small cases)."""
    assert [c.tolist() for c in length_chunks(torch.tensor([3, 4, 4, 20]), chunk_cost=8)] == [[0, 1, 2], [3]]  # the docstring's
    assert len(length_chunks(torch.tensor([3, 4, 4, 20]), chunk_cost=100)) == 1  # a chunk costs more than padding saves
    rng = random.Random(0)
    for _ in range(60):
        n, max_chunks, chunk_cost = rng.randint(1, 9), rng.randint(1, 4), rng.randint(0, 12)
        lengths = torch.tensor([rng.randint(1, 12) for _ in range(n)])
        chunks = length_chunks(lengths, max_chunks, chunk_cost)
        assert sorted(torch.cat(chunks).tolist()) == list(range(n)) and len(chunks) <= max_chunks

        def cost(parts):
            return sum(len(p) * int(lengths[p].max()) + chunk_cost for p in parts if len(p))
        order = torch.argsort(lengths, stable=True)
        best = min(cost(order.tensor_split(list(cut))) for k in range(max_chunks)
                   for cut in itertools.combinations(range(1, n), k))
        assert cost(chunks) == best


def test_length_chunks_equal_one_batch(micro_tokenizer):
    """The same logprobs, entropies and gradients whether the rows run in one batch or in length chunks.
    Tolerances: float rounding of different batch shapes, on values of size ~1."""
    model = make_micro_model(micro_tokenizer, seed=3)
    torch.manual_seed(15)
    rollout = generate_rollouts(model, micro_tokenizer, PROMPTS, 8, 16, temperature=1.2)
    order = torch.argsort(rollout.response_lengths, stable=True)
    rows = torch.cat([order[-1:], order[:6]])[torch.tensor([3, 0, 6, 1, 5, 2, 4])]  # shortest and longest, shuffled
    lengths = rollout.response_lengths[rows]
    assert lengths.max() >= 2 * lengths.float().median() and not torch.equal(lengths, lengths.sort().values)
    results = []
    columns = rollout.prompt_length + int(lengths.max())
    inputs = (rollout.input_ids[rows, :columns], rollout.attention_mask[rows, :columns], rollout.prompt_length,
              rollout.temperature, True)
    for max_chunks in (None, 1, 4):  # None: one forward of every row, the reference
        model.zero_grad()
        options = {"sharded": True} if max_chunks is None else \
            {"prompt_index": rows // rollout.n_rollouts, "response_lengths": lengths, "max_chunks": max_chunks}
        logprobs, entropies = fast(model, *inputs, **options)
        mask = rollout.response_mask[rows, :logprobs.shape[1]]
        ((logprobs + 0.1 * entropies) * mask).sum().backward()
        results.append((logprobs * mask, entropies * mask, [p.grad.clone() for p in model.parameters()]))
    assert len(length_chunks(lengths)) > 1
    (one_lp, one_ent, one_grads), *chunked = results
    for lp, ent, grads in chunked:  # in the order of `rows`, whatever the chunks
        torch.testing.assert_close(lp, one_lp, atol=1e-5, rtol=0)
        torch.testing.assert_close(ent, one_ent, atol=1e-5, rtol=0)
        for grad, one in zip(grads, one_grads):
            torch.testing.assert_close(grad, one, atol=1e-5, rtol=1e-4)


def test_shared_prompt_forward_under_gradient_checkpointing(micro_tokenizer):
    """Checkpointing drops any KV cache in train mode, so prompt_index falls back to the full forward."""
    model = make_micro_model(micro_tokenizer).train()
    torch.manual_seed(15)
    rollout = generate_rollouts(model, micro_tokenizer, PROMPTS, 3, 8)
    rows = torch.arange(9)
    inputs = (rollout.input_ids, rollout.attention_mask, rollout.prompt_length)
    full, full_grads = loss_and_grads(model, lambda: fast(model, *inputs, sharded=True))
    enable_activation_checkpointing(model)
    shared, shared_grads = loss_and_grads(model, lambda: fast(model, *inputs, prompt_index=rows // 3))
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=0)
    for shared_grad, full_grad in zip(shared_grads, full_grads):
        torch.testing.assert_close(shared_grad, full_grad, atol=1e-5, rtol=1e-4)


def test_chunked_head_on_the_shared_prompt_path_and_under_checkpointing(monkeypatch):
    """The shared-prompt forward (the prompts' last hidden states, then the rows' responses), and the full forward
    under gradient checkpointing, both against the textbook without checkpointing (tolerances: test_chunked_head)."""
    model = wide_model()
    input_ids, attention_mask, prompt_length = wide_rows()
    mask = attention_mask[:, prompt_length:].float()
    reference = scores_and_grads(model, lambda: sequence_logprobs(model, input_ids, attention_mask, prompt_length, 0.9,
                                                                  with_entropy=True))
    monkeypatch.setattr(infra.chunked_head, "CHUNK_POSITIONS", 7)
    rows = torch.tensor([3, 0, 5, 1, 2, 4])  # shuffled: prompts 1, 0, 2, 0, 1, 2
    inverse = torch.argsort(rows)

    def shared_in_order():
        return [scores[inverse] for scores in fast(model, input_ids[rows], attention_mask[rows], prompt_length, 0.9,
                                                   True, prompt_index=rows // 2)]
    assert_same(scores_and_grads(model, shared_in_order), reference, mask)
    enable_activation_checkpointing(model)
    checkpointed = scores_and_grads(model, lambda: fast(model, input_ids, attention_mask, prompt_length, 0.9, True,
                                                        prompt_index=torch.arange(6) // 2))
    assert_same(checkpointed, reference, mask)
    assert uses_checkpointing(model)
