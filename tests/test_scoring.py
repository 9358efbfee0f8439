"""Tests of scoring.py: the response logprobs and entropies under a model, its shortcuts (the shared-prompt
forward, length chunks) and the chunked output layer against the full logits."""
import pytest
import torch
from conftest import make_micro_model

from rollout import generate_rollouts
from infra.compat import enable_activation_checkpointing
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
    enable_activation_checkpointing(model)
    shared, shared_grads = loss_and_grads(model, lambda: sequence_logprobs(model, *inputs, prompt_index=rows // 3))
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=0)
    for shared_grad, full_grad in zip(shared_grads, full_grads):
        torch.testing.assert_close(shared_grad, full_grad, atol=1e-5, rtol=1e-4)


# the chunked output layer against the full logits (today's textbook path), at the real vocabulary width

WIDE_VOCAB = 151_936  # Qwen2.5's


def full_logits_scores(model, input_ids, attention_mask, prompt_length, temperature=1.0):
    """The reference: every response position's logits (B, R, V) at once, then a float32 log-softmax."""
    from rollout import attention_positions

    response_len = input_ids.shape[1] - prompt_length
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=attention_positions(attention_mask),
                   use_cache=False, logits_to_keep=response_len + 1).logits[:, :-1].float() / temperature
    log_normalizer = torch.logsumexp(logits, dim=-1)  # (B, R)
    logprobs = logits.gather(-1, input_ids[:, prompt_length:, None]).squeeze(-1) - log_normalizer
    return logprobs, log_normalizer - (torch.softmax(logits, dim=-1) * logits).sum(-1)


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
# terms are of that size: atol 2e-5 nats. A gradient entry is such a sum with cancellations, so it is compared to
# the scale of its parameter's gradient: max |difference| <= 4 sqrt(V) u = 9.3e-5 x max |reference| (4 standard
# deviations of the walk; measured: 1e-5 at temperature 1, 2.3e-5 at 0.7, whose logits are larger. Against float64
# the full-logits path is within 2e-6 of the largest entry, the chunked one, in chunks of 5, within 1e-5).
LOGPROB_ATOL, GRAD_SCALE_TOLERANCE = 2e-5, 4 * WIDE_VOCAB ** 0.5 * 2 ** -24


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
    """Log-probs, entropies and gradients (the tied embedding's included), with chunks that cut rows unevenly
    (54 positions in chunks of 5 or 7) or one chunk, at temperatures, under left and right padding."""
    import scoring

    model = wide_model()
    input_ids, attention_mask, prompt_length = wide_rows()
    mask = attention_mask[:, prompt_length:].float()
    reference = scores_and_grads(model, lambda: full_logits_scores(model, input_ids, attention_mask, prompt_length,
                                                                   temperature))
    monkeypatch.setattr(scoring, "CHUNK_POSITIONS", chunk)
    chunked = scores_and_grads(model, lambda: sequence_logprobs(model, input_ids, attention_mask, prompt_length,
                                                                temperature, with_entropy=True))
    assert_same(chunked, reference, mask)
    assert reference[0].abs().max() > 5 and reference[1].min() > 5  # ~log V: the wide vocabulary is in play


def test_chunked_head_on_the_shared_prompt_path_and_under_checkpointing(monkeypatch):
    """The shared-prompt forward (the prompts' last hidden states, then the rows' responses), and the full forward
    under gradient checkpointing, both against the full logits without checkpointing."""
    import scoring

    model = wide_model()
    input_ids, attention_mask, prompt_length = wide_rows()
    mask = attention_mask[:, prompt_length:].float()
    reference = scores_and_grads(model, lambda: full_logits_scores(model, input_ids, attention_mask, prompt_length, 0.9))
    monkeypatch.setattr(scoring, "CHUNK_POSITIONS", 7)
    rows = torch.tensor([3, 0, 5, 1, 2, 4])  # shuffled: prompts 1, 0, 2, 0, 1, 2
    inverse = torch.argsort(rows)

    def shared_in_order():
        return [scores[inverse] for scores in sequence_logprobs(model, input_ids[rows], attention_mask[rows],
                                                                prompt_length, 0.9, True, prompt_index=rows // 2)]
    assert_same(scores_and_grads(model, shared_in_order), reference, mask)
    enable_activation_checkpointing(model)
    checkpointed = scores_and_grads(model, lambda: sequence_logprobs(
        model, input_ids, attention_mask, prompt_length, 0.9, with_entropy=True, prompt_index=torch.arange(6) // 2))
    assert_same(checkpointed, reference, mask)
    assert scoring._uses_checkpointing(model)


def test_chunked_head_under_bf16():
    """bf16 autocast (the projection in bf16 as autocast runs it, the log-softmax in float32) and bf16 weights:
    the same as the full logits under the same precision. Tolerance: the logits are rounded to bf16 (8 bits, 2**-9
    relative, ~0.01 on logits of a few units) in both paths; products of other shapes may round an entry the other
    way, moving a log-prob by about one such step."""
    model = wide_model(num_layers=1)
    input_ids, attention_mask, prompt_length = wide_rows()
    mask = attention_mask[:, prompt_length:].float()
    with torch.no_grad():
        exact = full_logits_scores(model, input_ids, attention_mask, prompt_length)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reference = full_logits_scores(model, input_ids, attention_mask, prompt_length)
            chunked = sequence_logprobs(model, input_ids, attention_mask, prompt_length, with_entropy=True)
        model.to(torch.bfloat16)
        bf16_reference = full_logits_scores(model, input_ids, attention_mask, prompt_length)
        bf16_chunked = sequence_logprobs(model, input_ids, attention_mask, prompt_length, with_entropy=True)
    for (logprobs, entropies), (ref_logprobs, ref_entropies) in [(chunked, reference), (bf16_chunked, bf16_reference)]:
        assert logprobs.dtype == entropies.dtype == torch.float32
        torch.testing.assert_close(logprobs * mask, ref_logprobs * mask, atol=0.02, rtol=0)
        torch.testing.assert_close(entropies * mask, ref_entropies * mask, atol=0.02, rtol=0)
    assert ((chunked[0] - exact[0]) * mask).abs().max() > 1e-4  # autocast did change the precision


def test_head_logprobs_with_a_bias():
    """head_logprobs alone, with a bias on the output layer and a temperature, in chunks of 4 of 15 positions:
    values and the gradients of hidden, weight and bias against autograd of the textbook formula."""
    from scoring import head_logprobs

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
