"""Scoring responses under a model: log pi_theta of each response token, the pi_theta of the ratio of eq. 4
(section 2.1), and its entropy. Used by the update, by the old-policy scoring of later mini-batches and by the
reference policy of the KL penalty; sampling records its own log-probs (rollout.py).

`sequence_logprobs` is the one function that turns (input_ids, attention_mask) into per-token
logprobs of the response; the training loop calls it with grad, and it computes what was sampled from:
  - position_ids = attention_mask.cumsum(-1) - 1 (clamped at 0), as sampling (and HF generate) uses:
    HF decoder models given no position_ids count from 0 at the first (pad) column, so under left
    padding the real tokens of shorter prompts would sit at shifted positions (exactly harmless only
    for rotary embeddings, which see position differences, and only in exact arithmetic);
  - only the response positions are scored, i.e. the final hidden states at P-1 .. P+R-2;
  - logits are divided by the sampling temperature (as verl does), so the logprobs are those of the
    distribution the tokens were sampled from (top_p truncation is not accounted for);
  - with `prompt_index` (rows with equal index have the same prompt, e.g. a GRPO group) each distinct
    prompt is run once and its KV cache (with grad) is shared by its rows, which then run only their
    response tokens: the same logprobs and, through the shared cache, the same gradients.

The output layer never holds the logits of every position: rows x positions x vocabulary in float32 is 5 GB
at 8 x 1,024 tokens of a 151,936-token vocabulary, and the textbook log-softmax keeps several such copies.
`scoring_head` makes the model's output layer return the scores instead of the logits, and `head_logprobs`
computes them from the final hidden states `CHUNK_POSITIONS` positions at a time: per chunk the projection,
a float32 log-softmax, the token's log-prob and the entropy. Its backward keeps only the hidden states, the
weight and each position's log-normaliser and entropy, and computes each chunk's logits again. This runs
inside the model's own forward, where DDP and FSDP expect the weight to be used (FSDP has gathered it).
"""
import contextlib
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from rollout import attention_positions
from infra.compat import kv_cache

CHUNK_POSITIONS = 1024  # positions per chunk of the output layer: (1,024, V) float32 logits, 622 MB at V = 151,936
MAX_CHUNKS = 4  # rollout_logprobs runs its rows in at most this many chunks of similar response length
# a chunk's fixed cost in token positions (its forward and backward's per-call overhead): on the RL-step workload
# (bench.py, 2 threads) the update took 0.197 s at 32, 0.204 at 128, 0.219 at 512 and 0.253 in one chunk
CHUNK_COST = 32


class _ChunkedHead(torch.autograd.Function):
    """(logprobs, entropies) (N,) float32 of `targets` (N,) under softmax((hidden @ weight.T + bias) / temperature),
    hidden (N, H), `chunk` positions at a time, the projection in `dtype` (autocast's or the weight's)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, with_entropy, chunk, dtype):
        ctx.weight_dtype, ctx.bias_dtype = weight.dtype, None if bias is None else bias.dtype
        log_normalizers = torch.empty(len(hidden), device=hidden.device)  # (N,)
        logprobs, entropies = torch.empty_like(log_normalizers), torch.zeros_like(log_normalizers)
        with torch.autocast(hidden.device.type, enabled=False):
            weights = weight.to(dtype), None if bias is None else bias.to(dtype)
            for start in range(0, len(hidden), chunk):
                part = slice(start, start + chunk)
                logits = _logits(hidden[part], *weights, dtype, temperature)  # (n, V) float32
                log_normalizers[part] = torch.logsumexp(logits, dim=-1)
                logprobs[part] = logits.gather(-1, targets[part, None]).squeeze(-1) - log_normalizers[part]
                if with_entropy:  # H = logZ - E_p[logit]
                    probs = (logits - log_normalizers[part, None]).exp_()
                    entropies[part] = log_normalizers[part] - probs.mul_(logits).sum(-1)
                    del probs
                del logits  # freed before the next chunk's are made: one chunk's (n, V) live at a time
        ctx.save_for_backward(hidden, weight, bias, targets, log_normalizers, entropies)
        ctx.temperature, ctx.with_entropy, ctx.chunk, ctx.dtype = temperature, with_entropy, chunk, dtype
        return logprobs, entropies

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropies):  # (N,) each
        hidden, weight, bias, targets, log_normalizers, entropies = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden)  # (N, H)
        grad_weight = torch.zeros(weight.shape, device=weight.device)  # (V, H) float32 sums over the chunks
        grad_bias = None if bias is None else torch.zeros(bias.shape, device=bias.device)
        mean_logits = log_normalizers - entropies  # (N,) E_p[logit]
        with torch.autocast(hidden.device.type, enabled=False):
            weights = weight.to(ctx.dtype), None if bias is None else bias.to(ctx.dtype)
            for start in range(0, len(hidden), ctx.chunk):
                part = slice(start, start + ctx.chunk)
                logits = _logits(hidden[part], *weights, ctx.dtype, ctx.temperature)  # (n, V)
                probs = (logits - log_normalizers[part, None]).exp_()  # (n, V)
                # d logprob / d logit_v = [v = target] - p_v;  d entropy / d logit_v = -p_v (logit_v - E_p[logit])
                grad = logits.sub_(mean_logits[part, None]).mul_(-grad_entropies[part, None]) if ctx.with_entropy \
                    else logits.zero_()
                grad = grad.sub_(grad_logprobs[part, None]).mul_(probs)
                grad.scatter_add_(-1, targets[part, None], grad_logprobs[part, None])
                grad = grad.div_(ctx.temperature).to(ctx.dtype)  # (n, V) d loss / d (hidden @ weight.T + bias)
                grad_hidden[part] = grad @ weights[0]
                if ctx.dtype == torch.float32:
                    grad_weight.addmm_(grad.T, hidden[part].float())
                else:
                    grad_weight += (grad.T @ hidden[part].to(ctx.dtype)).float()
                if bias is not None:
                    grad_bias += grad.float().sum(0)
                del logits, probs, grad  # freed before the next chunk's logits are made
        grad_bias = None if bias is None else grad_bias.to(ctx.bias_dtype)
        return grad_hidden, grad_weight.to(ctx.weight_dtype), grad_bias, None, None, None, None, None


def _logits(hidden, weight, bias, dtype, temperature):
    """(n, V) float32 logits / temperature of hidden (n, H), projected in `dtype`."""
    logits = torch.nn.functional.linear(hidden.to(dtype), weight, bias).float()
    return logits.div_(temperature) if temperature != 1 else logits


def head_logprobs(hidden, weight, bias, targets, temperature=1.0, with_entropy=False, chunk=None):
    """The log-probs (B, T) float32 of `targets` (B, T) under the output layer (weight (V, H), bias (V,) or None)
    applied to the final hidden states (B, T, H), at `temperature`, and their entropies (B, T) if with_entropy;
    never more than `chunk` (default CHUNK_POSITIONS) positions' logits at a time, forward and backward (module doc). Differentiable in
    hidden, weight and bias; the projection runs in autocast's dtype when autocast is on, else in the weight's."""
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    logprobs, entropies = _ChunkedHead.apply(hidden.flatten(0, 1), weight, bias, targets.flatten(),
                                             temperature, with_entropy, chunk or CHUNK_POSITIONS, dtype)
    return logprobs.view(targets.shape), entropies.view(targets.shape) if with_entropy else None


def _output_layer(model):
    return getattr(model, "module", model).get_output_embeddings()  # (a DDP wrapper holds the model as .module)


@contextlib.contextmanager
def scoring_head(model, targets=None, temperature=1.0, with_entropy=False, prefix=None):
    """While open, `model`'s output layer returns, in place of the logits of its hidden states (B, T, H), the
    (logprobs, entropies) of targets (B, T) (`head_logprobs`; entropies None unless with_entropy); or, when targets
    is None, the hidden states themselves. prefix (B, T0, H): hidden states scored before them, targets then
    (B, T0 + T). It runs where the layer runs, inside the model's forward, so the weight is the one DDP and FSDP
    use there (FSDP's gathered one; its hooks, before and after ours, see our output as the layer's)."""
    layer, scores = _output_layer(model), []

    def score(module, args):  # forward pre-hook: FSDP's own, which gathers the weight, runs first
        hidden = args[0] if prefix is None else torch.cat([prefix, args[0]], dim=1)
        scores.append(hidden if targets is None else
                      head_logprobs(hidden, module.weight, module.bias, targets, temperature, with_entropy))
        return (args[0][:, :0],)  # the layer itself then projects no position

    handles = [layer.register_forward_pre_hook(score),
               layer.register_forward_hook(lambda module, args, output: scores.pop(), prepend=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _uses_checkpointing(model):
    """True when a forward in train mode recomputes activations: HF then drops any KV cache we pass."""
    return model.training and any(getattr(module, "gradient_checkpointing", False) for module in model.modules())


def sequence_logprobs(model, input_ids, attention_mask, prompt_length, temperature=1.0, with_entropy=False,
                      prompt_index=None, prompts=None):
    """Logprobs (B, R) of the tokens input_ids[:, prompt_length:] under `model` at `temperature`, and
    their entropies (B, R) too if with_entropy. Differentiable; wrap in no_grad when not training.

    prompt_index: optional (B,) ints, equal for rows whose prompt columns input_ids[:, :prompt_length]
    (and mask) are equal, e.g. row // n_rollouts. Each distinct prompt is then run once, with grad, and
    its KV cache is shared by its rows (`_shared_prompt_scores`); same result, a fraction of the compute
    when prompts are long and shared. prompts: those prompts already run (`prompt_states`, for these rows or
    more), e.g. once for several calls. Both are ignored under gradient checkpointing, which cannot keep a cache."""
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must be the same (B, L) shape, got "
                         f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
    response_len = input_ids.shape[1] - prompt_length  # R
    if not (1 <= prompt_length and response_len >= 1):
        raise ValueError(f"need 1 <= prompt_length < sequence length {input_ids.shape[1]}, got {prompt_length}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    response_ids = input_ids[:, prompt_length:]  # (B, R)
    if prompt_index is not None and not _uses_checkpointing(model):
        logprobs, entropies = _shared_prompt_scores(model, input_ids, attention_mask, prompt_length, prompt_index,
                                                    prompts, temperature, with_entropy)
    else:
        # the hidden state at position t predicts token t+1: score positions P-1 .. P+R-2
        positions = torch.arange(prompt_length - 1, input_ids.shape[1] - 1, device=input_ids.device)  # (R,)
        with scoring_head(model, response_ids, temperature, with_entropy):
            logprobs, entropies = model(input_ids=input_ids, attention_mask=attention_mask,
                                        position_ids=attention_positions(attention_mask), use_cache=False,
                                        logits_to_keep=positions).logits  # (B, R) each
    return (logprobs, entropies) if with_entropy else logprobs


@dataclass
class PromptStates:
    """Distinct prompts run once (`prompt_states`), for their rows to attend to."""
    prompt_ids: torch.Tensor  # (U,) the distinct prompt indices, sorted
    layers: list  # per decoder layer (keys, values), each (U, kv_heads, P, head_dim), with grad
    last_hidden: torch.Tensor  # (U, 1, H) the last prompt token's final hidden state: it predicts response token 0


def prompt_states(model, input_ids, attention_mask, prompt_length, prompt_index):
    """Run each distinct prompt of the rows once (with grad when grad is on): its KV cache and last hidden state.
    input_ids, attention_mask (B, >= P): the rows; prompt_index (B,) as in `sequence_logprobs`."""
    P = prompt_length
    prompt_ids, row_to_distinct = torch.unique(prompt_index, return_inverse=True)  # (U,), (B,)
    rows = torch.arange(len(prompt_index), device=row_to_distinct.device)
    first_row = torch.full_like(prompt_ids, len(prompt_index)).scatter_reduce(0, row_to_distinct, rows, "amin")  # (U,)
    mask = attention_mask[first_row, :P]
    cache = DynamicCache(config=getattr(model, "module", model).config)
    with scoring_head(model):  # the output layer returns its input: (U, 1, H)
        last_hidden = model(input_ids=input_ids[first_row, :P], attention_mask=mask,
                            position_ids=attention_positions(mask), **kv_cache(cache), use_cache=True,
                            logits_to_keep=1).logits
    return PromptStates(prompt_ids, [(layer.keys, layer.values) for layer in cache.layers], last_hidden)


def _shared_prompt_scores(model, input_ids, attention_mask, prompt_length, prompt_index, prompts, temperature,
                          with_entropy):
    """The (logprobs, entropies) (B, R) of the response tokens, with each distinct prompt run once (`prompt_states`,
    unless given): its KV cache is indexed out to its rows (with grad, so the prompt's gradient is the sum over its
    rows, exactly as in the full forward), then the rows run only their response tokens 0 .. R-2 against that
    cache; their last prompt token's hidden state scores response token 0."""
    P = prompt_length
    if prompts is None:
        prompts = prompt_states(model, input_ids, attention_mask, P, prompt_index)
    index = torch.searchsorted(prompts.prompt_ids, prompt_index)  # (B,) each row's prompt among them
    first_hidden = prompts.last_hidden.index_select(0, index)  # (B, 1, H)
    response_ids = input_ids[:, P:]  # (B, R)
    if input_ids.shape[1] - P == 1:  # no response token to run
        layer = _output_layer(model)
        return head_logprobs(first_hidden, layer.weight, layer.bias, response_ids, temperature, with_entropy)
    cache = DynamicCache(config=getattr(model, "module", model).config)
    for layer, (keys, values) in enumerate(prompts.layers):
        cache.update(keys.index_select(0, index), values.index_select(0, index), layer)  # (U, ...) -> (B, ...)
    with scoring_head(model, response_ids, temperature, with_entropy, prefix=first_hidden):
        return model(input_ids=input_ids[:, P:-1], attention_mask=attention_mask[:, :-1],
                     position_ids=attention_positions(attention_mask)[:, P:-1], **kv_cache(cache), use_cache=True).logits


def rollout_logprobs(model, rollout, rows, with_entropy=False, max_chunks=MAX_CHUNKS):
    """`sequence_logprobs` of rows `rows` (1-D index tensor) of `rollout` under `model`, at the rollout's
    temperature, cut after the longest response among those rows (the cut columns are padding of all of
    them): (len(rows), length) logprobs, and entropies if with_entropy (after a row's response: padding, to be
    masked with its response_mask). Inputs move to the model's device.

    Each distinct prompt among the rows runs once (prompt_index = row // n_rollouts; `prompt_states`). Responses
    are short and uneven (a few tokens, the longest several times the mean), so a batch padded to the longest
    computes mostly padding: the rows' responses therefore run in up to `max_chunks` chunks of similar length
    (`length_chunks`), each padded only to its own longest response and attending to the prompts' shared cache.
    Same numbers up to float rounding, and the same gradients. Under gradient checkpointing (no cache) every
    chunk runs its rows' prompts in full."""
    device = next(model.parameters()).device
    lengths = rollout.response_lengths[rows]
    length, prompt_index = int(lengths.max()), (rows // rollout.n_rollouts).to(device)
    P = rollout.prompt_length
    prompts = None
    if not _uses_checkpointing(model):
        prompts = prompt_states(model, rollout.input_ids[rows, :P].to(device), rollout.attention_mask[rows, :P].to(device),
                                P, prompt_index)
    chunks = length_chunks(lengths, max_chunks)
    outputs = []
    for chunk in chunks:
        chunk_rows, columns = rows[chunk], P + int(lengths[chunk].max())
        out = sequence_logprobs(model, rollout.input_ids[chunk_rows, :columns].to(device),
                                rollout.attention_mask[chunk_rows, :columns].to(device), P, rollout.temperature,
                                with_entropy, prompt_index=prompt_index[chunk.to(device)], prompts=prompts)
        outputs.append(out if with_entropy else (out,))
    if len(chunks) == 1 and torch.equal(chunks[0], torch.arange(len(rows))):  # one chunk, in the order of `rows`
        return outputs[0] if with_entropy else outputs[0][0]
    order = torch.cat(chunks).to(device)  # the output rows of the chunks, in chunk order
    joined = []
    for parts in zip(*outputs):  # logprobs, then entropies
        padded = torch.cat([torch.nn.functional.pad(part, (0, length - part.shape[1])) for part in parts])
        joined.append(padded.index_select(0, torch.argsort(order)))  # (len(rows), length) in the order of `rows`
    return tuple(joined) if with_entropy else joined[0]


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


def logprobs_of(policy, rollout, rows, with_entropy=False, sharded=False):
    """`rollout_logprobs` of the rows; sharded (FSDP), where every process must run the same forward passes, one
    plain forward of the rows (no length chunks, no shared-prompt cache, whose number of passes varies)."""
    if not sharded:
        return rollout_logprobs(policy, rollout, rows, with_entropy)
    device, columns = next(policy.parameters()).device, rollout.prompt_length + int(rollout.response_lengths[rows].max())
    return sequence_logprobs(policy, rollout.input_ids[rows, :columns].to(device),
                             rollout.attention_mask[rows, :columns].to(device), rollout.prompt_length,
                             rollout.temperature, with_entropy)
