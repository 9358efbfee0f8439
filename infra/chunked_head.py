"""The chunked output layer: the log-probs and entropies of the response tokens without the logits of every position.

It equals the textbook head of scoring.sequence_logprobs, log_softmax((hidden @ W.T + b) / T).gather(target) and
-sum_v p_v log p_v, in float32 (tests/test_chunked_head.py checks values and gradients against it). The textbook
keeps rows x positions x vocabulary float32 logits, several copies of them: 5 GB a copy at 8 x 1,024 tokens of a
151,936-token vocabulary. `head_logprobs` computes from the final hidden states `CHUNK_POSITIONS` positions at a
time: per chunk the projection, a float32 log-softmax, the token's log-prob and the entropy. Its backward keeps
only the hidden states, the weight and each position's log-normaliser and entropy, and computes each chunk's
logits again. `scoring_head` makes the model's own output layer return these scores in place of the logits, so
that they are computed inside the model's forward, where DDP and FSDP expect the weight to be used (FSDP has
gathered it).
"""
import contextlib

import torch

CHUNK_POSITIONS = 1024  # positions per chunk of the output layer: (1,024, V) float32 logits, 622 MB at V = 151,936


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
    never more than `chunk` (default CHUNK_POSITIONS) positions' logits at a time, forward and backward (module
    doc). Differentiable in hidden, weight and bias; the projection runs in autocast's dtype when autocast is on,
    else in the weight's."""
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    logprobs, entropies = _ChunkedHead.apply(hidden.flatten(0, 1), weight, bias, targets.flatten(),
                                             temperature, with_entropy, chunk or CHUNK_POSITIONS, dtype)
    return logprobs.view(targets.shape), entropies.view(targets.shape) if with_entropy else None


def output_layer(model):
    """The model's output layer (a DDP wrapper holds the model as .module)."""
    return getattr(model, "module", model).get_output_embeddings()


@contextlib.contextmanager
def scoring_head(model, targets=None, temperature=1.0, with_entropy=False, prefix=None):
    """While open, `model`'s output layer returns, in place of the logits of its hidden states (B, T, H), the
    (logprobs, entropies) of targets (B, T) (`head_logprobs`; entropies None unless with_entropy); or, when targets
    is None, the hidden states themselves. prefix (B, T0, H): hidden states scored before them, targets then
    (B, T0 + T). It runs where the layer runs, inside the model's forward, so the weight is the one DDP and FSDP
    use there (FSDP's gathered one; its hooks, before and after ours, see our output as the layer's)."""
    layer, scores = output_layer(model), []

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
