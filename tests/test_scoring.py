"""Tests of scoring.py: the response logprobs and entropies under a model, its shortcuts (the shared-prompt
forward, length chunks) and the chunked output layer against the full logits."""
import pytest
import torch
from conftest import make_micro_model

from rollout import generate_rollouts
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



# the shortcuts: the shared-prompt forward, length chunks

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
    full, full_grads = loss_and_grads(model, lambda: sequence_logprobs(model, *inputs, temperature=0.9))
    shared, shared_grads = loss_and_grads(
        model, lambda: sequence_logprobs(model, *inputs, temperature=0.9, prompt_index=rows // 4))
    mask = rollout.response_mask[rows]
    torch.testing.assert_close(shared * mask, full * mask, atol=1e-5, rtol=0)
    for shared_grad, full_grad in zip(shared_grads, full_grads):
        torch.testing.assert_close(shared_grad, full_grad, atol=1e-5, rtol=1e-4)
    _, full_entropies = sequence_logprobs(model, *inputs, with_entropy=True)
    _, shared_entropies = sequence_logprobs(model, *inputs, with_entropy=True, prompt_index=rows // 4)
    torch.testing.assert_close(shared_entropies * mask, full_entropies * mask, atol=1e-5, rtol=0)


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


def test_length_chunks_is_the_cheapest_split():
    """Against every split of the rows sorted by length into at most max_chunks consecutive chunks (exhaustive,
    small cases)."""
    import itertools
    import random

    from scoring import length_chunks

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


def test_rollout_logprobs_in_length_chunks_equals_one_batch(micro_tokenizer):
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
    for max_chunks in (None, 1, 4):  # None: one sequence_logprobs call, the reference
        model.zero_grad()
        if max_chunks is None:
            logprobs, entropies = sequence_logprobs(model, rollout.input_ids[rows, :columns],
                                                    rollout.attention_mask[rows, :columns], rollout.prompt_length,
                                                    rollout.temperature, with_entropy=True)
        else:
            logprobs, entropies = rollout_logprobs(model, rollout, rows, with_entropy=True, max_chunks=max_chunks)
        mask = rollout.response_mask[rows, :logprobs.shape[1]]
        ((logprobs + 0.1 * entropies) * mask).sum().backward()
        results.append((logprobs * mask, entropies * mask, [p.grad.clone() for p in model.parameters()]))
    from scoring import length_chunks
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
    full, full_grads = loss_and_grads(model, lambda: sequence_logprobs(model, *inputs))
    model.activation_checkpointing_enable({"use_reentrant": False})
    shared, shared_grads = loss_and_grads(model, lambda: sequence_logprobs(model, *inputs, prompt_index=rows // 3))
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=0)
    for shared_grad, full_grad in zip(shared_grads, full_grads):
        torch.testing.assert_close(shared_grad, full_grad, atol=1e-5, rtol=1e-4)
