"""The update's scoring, made fast: `fast_logprobs` of rows of a rollout equals scoring.sequence_logprobs of the
same rows (the same numbers up to float rounding, and the same gradients; tests/test_fast_scoring.py), with less
work, by three swaps:
  - the output layer is the chunked one (infra/chunked_head.py): never the logits of every position;
  - shared prompt: rows with equal prompt_index (a GRPO group) have the same prompt columns. Each distinct prompt
    runs once (`prompt_states`) and its KV cache, with grad, is indexed out to its rows, which then run only their
    response tokens (`shared_prompt_scores`): the prompt's gradient is the sum over its rows, as in the full forward;
  - length chunks: responses are short and uneven (the longest several times the mean), so a batch padded to the
    longest computes mostly padding. The rows run in up to MAX_CHUNKS chunks of similar response length
    (`length_chunks`), each padded only to its own longest response and attending to the prompts' shared cache.
Under gradient checkpointing (HF then drops any cache) each chunk runs its rows' prompts in full. sharded (FSDP),
where every process must run the same forward passes (the number of chunks varies), is one plain forward of the
rows through the chunked head. Position ids come from the caller (scoring.py: from the attention mask).
"""
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from infra.chunked_head import head_logprobs, output_layer, scoring_head
from infra.compat import kv_cache

MAX_CHUNKS = 4  # fast_logprobs runs its rows in at most this many chunks of similar response length
CHUNK_COST = 32  # a chunk's fixed cost in token positions: its forward and backward's per-call overhead (BENCHMARKS.md)


def fast_logprobs(model, input_ids, attention_mask, position_ids, prompt_length, temperature, with_entropy=False,
                  prompt_index=None, response_lengths=None, sharded=False, max_chunks=MAX_CHUNKS):
    """The (B, R) log-probs of the tokens input_ids[:, prompt_length:] under `model` at `temperature`, and their
    entropies (B, R) too if with_entropy: scoring.sequence_logprobs, computed as the module doc says.
    input_ids, attention_mask, position_ids (B, P + R) on the model's device; prompt_index (B,) ints, equal for
    rows whose prompt columns are equal (e.g. row // n_rollouts; None: every row its own prompt); response_lengths
    (B,): each row's response tokens (the length chunks; None: R each). After a row's response: padding, to be
    masked. Differentiable; wrap in no_grad when not training."""
    P, B = prompt_length, len(input_ids)
    if sharded:
        logprobs, entropies = forward_scores(model, input_ids, attention_mask, position_ids, P, temperature,
                                             with_entropy)
        return (logprobs, entropies) if with_entropy else logprobs
    if prompt_index is None:
        prompt_index = torch.arange(B, device=input_ids.device)
    lengths = torch.full((B,), input_ids.shape[1] - P) if response_lengths is None else response_lengths.cpu()
    prompts = None if uses_checkpointing(model) else prompt_states(model, input_ids, attention_mask, position_ids,
                                                                   P, prompt_index)
    chunks = length_chunks(lengths, max_chunks)
    outputs = []  # per chunk: (logprobs,) or (logprobs, entropies)
    for chunk in chunks:
        columns, rows = P + int(lengths[chunk].max()), chunk.to(input_ids.device)
        inputs = (input_ids[rows, :columns], attention_mask[rows, :columns], position_ids[rows, :columns], P)
        scores = forward_scores(model, *inputs, temperature, with_entropy) if prompts is None else \
            shared_prompt_scores(model, *inputs, prompt_index[rows], prompts, temperature, with_entropy)
        outputs.append(scores if with_entropy else scores[:1])
    if len(chunks) == 1 and torch.equal(chunks[0], torch.arange(B)):  # one chunk, in the rows' order
        joined = outputs[0]
    else:
        order = torch.argsort(torch.cat(chunks).to(input_ids.device))  # each row's place among the chunks' rows
        joined = [torch.cat([torch.nn.functional.pad(part, (0, int(lengths.max()) - part.shape[1])) for part in parts])
                  .index_select(0, order) for parts in zip(*outputs)]  # logprobs, then entropies
    return tuple(joined) if with_entropy else joined[0]


def uses_checkpointing(model):
    """True when a forward in train mode recomputes activations: HF then drops any KV cache we pass."""
    return model.training and any(getattr(module, "gradient_checkpointing", False) for module in model.modules())


def forward_scores(model, input_ids, attention_mask, position_ids, prompt_length, temperature, with_entropy):
    """(logprobs, entropies or None) (B, R) of input_ids[:, P:]: one forward of the rows through the chunked head."""
    # the hidden state at position t predicts token t+1: score positions P-1 .. P+R-2
    positions = torch.arange(prompt_length - 1, input_ids.shape[1] - 1, device=input_ids.device)  # (R,)
    with scoring_head(model, input_ids[:, prompt_length:], temperature, with_entropy):
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                     logits_to_keep=positions).logits


@dataclass
class PromptStates:
    """Distinct prompts run once (`prompt_states`), for their rows to attend to."""
    prompt_ids: torch.Tensor  # (U,) the distinct prompt indices, sorted
    layers: list  # per decoder layer (keys, values), each (U, kv_heads, P, head_dim), with grad
    last_hidden: torch.Tensor  # (U, 1, H) the last prompt token's final hidden state: it predicts response token 0


def prompt_states(model, input_ids, attention_mask, position_ids, prompt_length, prompt_index):
    """Run each distinct prompt of the rows once (with grad when grad is on): its KV cache and last hidden state.
    input_ids, attention_mask, position_ids (B, >= P): the rows; prompt_index (B,) as in `fast_logprobs`."""
    P = prompt_length
    prompt_ids, row_to_distinct = torch.unique(prompt_index, return_inverse=True)  # (U,), (B,)
    rows = torch.arange(len(prompt_index), device=row_to_distinct.device)
    first_row = torch.full_like(prompt_ids, len(prompt_index)).scatter_reduce(0, row_to_distinct, rows, "amin")  # (U,)
    cache = DynamicCache(config=getattr(model, "module", model).config)
    with scoring_head(model):  # the output layer returns its input: (U, 1, H)
        last_hidden = model(input_ids=input_ids[first_row, :P], attention_mask=attention_mask[first_row, :P],
                            position_ids=position_ids[first_row, :P], **kv_cache(cache), use_cache=True,
                            logits_to_keep=1).logits
    return PromptStates(prompt_ids, [(layer.keys, layer.values) for layer in cache.layers], last_hidden)


def shared_prompt_scores(model, input_ids, attention_mask, position_ids, prompt_length, prompt_index, prompts,
                         temperature, with_entropy):
    """(logprobs, entropies or None) (B, R) of input_ids[:, P:], the rows' prompts already run (`prompt_states`, for
    these rows or more): each prompt's KV cache is indexed out to its rows (with grad, so the prompt's gradient is
    the sum over its rows, exactly as in the full forward), then the rows run only their response tokens 0 .. R-2
    against that cache; their last prompt token's hidden state scores response token 0."""
    P = prompt_length
    index = torch.searchsorted(prompts.prompt_ids, prompt_index)  # (B,) each row's prompt among them
    first_hidden = prompts.last_hidden.index_select(0, index)  # (B, 1, H)
    response_ids = input_ids[:, P:]  # (B, R)
    if input_ids.shape[1] - P == 1:  # no response token to run
        layer = output_layer(model)
        return head_logprobs(first_hidden, layer.weight, layer.bias, response_ids, temperature, with_entropy)
    cache = DynamicCache(config=getattr(model, "module", model).config)
    for layer, (keys, values) in enumerate(prompts.layers):
        cache.update(keys.index_select(0, index), values.index_select(0, index), layer)  # (U, ...) -> (B, ...)
    with scoring_head(model, response_ids, temperature, with_entropy, prefix=first_hidden):
        return model(input_ids=input_ids[:, P:-1], attention_mask=attention_mask[:, :-1],
                     position_ids=position_ids[:, P:-1], **kv_cache(cache), use_cache=True).logits


def length_chunks(lengths, max_chunks=MAX_CHUNKS, chunk_cost=CHUNK_COST):
    """Rows (indices into `lengths`) in at most max_chunks chunks of consecutive response lengths, split where
    the forwards cost least: the sum over chunks of rows x longest response (token positions) + chunk_cost (a
    forward's fixed cost, in positions). Exact over the splits of the rows sorted by length, by dynamic
    programming over the places where the length changes (a cut inside a run of equal lengths never costs less
    than one at its end). E.g. lengths (3, 4, 4, 20), chunk_cost 8: one chunk costs 4 x 20 + 8 = 88 positions,
    the best two, (3, 4, 4) and (20), 3 x 4 + 8 + 1 x 20 + 8 = 48."""
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].tolist()
    cuts = [0] + [i for i in range(1, len(order)) if sorted_lengths[i] != sorted_lengths[i - 1]] + [len(order)]
    cost = {(i, j): (cuts[j] - cuts[i]) * sorted_lengths[cuts[j] - 1] + chunk_cost  # chunk of sorted rows cuts[i]:cuts[j]
            for i in range(len(cuts) - 1) for j in range(i + 1, len(cuts))}
    last, plans = len(cuts) - 1, [{0: (0, [])}]  # plans[c][j]: cheapest (cost, chunk ends) of rows :cuts[j] in c chunks
    for _ in range(min(max_chunks, last)):
        plans.append({j: min((plans[-1][i][0] + cost[i, j], plans[-1][i][1] + [j]) for i in plans[-1] if i < j)
                      for j in range(1, last + 1) if min(plans[-1]) < j})
    _, ends = min((plan[last] for plan in plans[1:] if last in plan), key=lambda plan: (plan[0], len(plan[1])))
    bounds = [0] + [cuts[j] for j in ends]
    return [order[start:end] for start, end in zip(bounds, bounds[1:])]
