"""The "fast" sampler: our own decode loop, behind rollout.py's sampler seam (`sample_responses`, rollout.SAMPLERS).

It returns what rollout.generate_responses (HF generate) returns for the same seed: the same tokens, and logprobs and
entropies to float rounding (tests/test_fast_sampler.py ties it to a plain generate call). It is a speed-up, not a
concept: a reader of the method can skip this file. Savings over plain generate:
  - each prompt is prefilled once (infra/prefill.py) and its KV cache serves the n rows of its group;
  - decode steps without HF's per-step overhead: for Qwen2 `DirectDecoder` runs the model's layers itself on a
    preallocated cache, a prompt's keys kept once and attended by its n rows in one grouped matmul; other models
    run HF's forward on the repeated DynamicCache (`HFDecoder`);
  - rows that ended leave the batch once they are `COMPACT_AT` of it, so later steps run mostly live rows.
The tokens are drawn as generate draws them: the same `sampling_step` (passed in by rollout.py), softmax, and ONE
torch.multinomial over the whole batch each step, ended rows included (their draw discarded): multinomial draws
Exp(1) noise for every entry whatever the values, so the random stream, and every token, is generate's.
BENCHMARKS.md has the measurements.
"""
import torch

from infra.compat import kv_cache
from infra.prefill import prefill

COMPACT_AT = 0.25  # ended rows leave the batch once they are this fraction of it (dropping each one costs more)
FUSE_PARAMETERS = 100_000_000  # DirectDecoder concatenates the q/k/v and gate/up weights of models up to this size


def sample_responses(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
                     temperature=1.0, top_p=1.0, *, sampling_step, attention_positions, direct=None,
                     compact_at=COMPACT_AT):
    """The "fast" sampler: rollout.py's seam contract (n_rollouts responses to each of the U left-padded prompts
    (U, P), prompt-major: response_ids (B, R) pad after a row's first end token, logprobs and entropies (B, R) 0
    after it), drawing and recording with `sampling_step` and prefilling with `attention_positions`, rollout.py's.
    direct: run the decode steps with `DirectDecoder` (default: where it supports the model), else `HFDecoder`;
    compact_at: the fraction of the batch that ended rows reach before they leave it (tests vary both)."""
    n_prompts, device = len(prompt_ids), prompt_ids.device
    batch = n_prompts * n_rollouts
    cache, last_logits = prefill(model, prompt_ids, prompt_mask, attention_positions(prompt_mask))
    if direct is None:
        direct = DirectDecoder.supports(model)
    decoder = (DirectDecoder if direct else HFDecoder)(model, cache, prompt_mask, n_rollouts, max_new_tokens)
    logits = last_logits.float().repeat_interleave(n_rollouts, dim=0)  # (B, V) predicting token 0
    first_position = prompt_mask.sum(-1).repeat_interleave(n_rollouts)  # (B,) position of response token 0
    eos = torch.as_tensor(eos_token_ids, device=device)

    response_ids = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    entropies = torch.zeros(batch, max_new_tokens, device=device)
    probs = torch.ones_like(logits)  # (B, V) the distribution every row draws from; ended rows keep their last
    running = torch.arange(batch, device=device)  # the batch row of each row of the decoder (its cache, logits)
    alive = torch.ones(batch, dtype=torch.bool, device=device)  # (running,) not ended yet
    for step in range(max_new_tokens):
        log_probs, step_entropies, scores = sampling_step(logits, temperature, top_p)  # (running, V), (running,)
        probs[running] = torch.softmax(scores, dim=-1)
        tokens = torch.multinomial(probs, num_samples=1)[running, 0]  # (running,) one draw for all B rows
        response_ids[running, step] = torch.where(alive, tokens, pad_token_id)
        logprobs[running, step] = log_probs.gather(-1, tokens[:, None]).squeeze(1) * alive
        entropies[running, step] = step_entropies * alive
        alive &= ~torch.isin(tokens, eos)
        ended = len(running) - int(alive.sum())
        if step == max_new_tokens - 1 or ended == len(running):
            break
        if ended >= compact_at * len(running):  # drop the rows that ended from the batch and the cache
            keep = alive.nonzero().squeeze(1)
            decoder.select(keep)
            running, tokens, alive = running[keep], tokens[keep], alive[keep]
        logits = decoder(tokens, first_position[running] + step).float()  # (running, V) predicting token step + 1
    response_len = step + 1
    return response_ids[:, :response_len], logprobs[:, :response_len], entropies[:, :response_len]


class HFDecoder:
    """`DirectDecoder`'s interface over HF's forward and a DynamicCache: any architecture transformers runs."""

    def __init__(self, model, prefill_cache, prompt_mask, n_rollouts, max_new_tokens):
        prefill_cache.batch_repeat_interleave(n_rollouts)  # every layer's keys/values (U, ...) -> (B, ...)
        self.model, self.cache = model, prefill_cache
        self.mask = prompt_mask.repeat_interleave(n_rollouts, dim=0)  # (B, P), grows by a column per step

    def select(self, keep):
        self.cache.batch_select_indices(keep)
        self.mask = self.mask[keep]

    def __call__(self, tokens, positions):
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        output = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=positions[:, None],
                            **kv_cache(self.cache), use_cache=True)
        return output.logits[:, -1]


class DirectDecoder:
    """Decode steps of a Qwen2 model run layer by layer on our own preallocated KV cache, for `sample_responses`.

    HF's forward spends most of a small model's decode step on Python (mask and position building, a
    DynamicCache that concatenates every layer's keys at every step, decorators, output records). Here one
    step is the bare computation of Qwen2DecoderLayer, from the model's own weights, in ~45 tensor ops per
    layer: RMSNorm, the q/k/v projections (with bias), rotary embedding (cos/sin tables built once by the
    model's rotary module; rotate_half(x) = roll(x, D/2) * (-1 on the first half), folded into the sin table),
    the new key/value written into the cache, attention (below), o_proj, residual, RMSNorm, SwiGLU MLP,
    residual; then the final norm and lm_head. The same arithmetic as HF's eager attention path, so the same
    logits up to float rounding (tests/test_fast_sampler.py compares it with HF generate and a full forward). For models
    of at most FUSE_PARAMETERS parameters the q/k/v weights are concatenated into one matrix and gate/up into
    another (copies made once per call: two matmuls fewer per layer); for larger ones the matmuls dominate
    and the copies would only cost memory.

    Shared-prompt attention: the n rollouts of a prompt attend to the same prompt keys, so the prompt part
    of the cache is kept once per prompt, (U, kv_heads, P, head_dim), and each prompt's rows are scored
    against it in one matmul of n query rows (grouped; a CPU runs one (n, D) x (D, P) product per prompt and
    head far faster than n products of one row, and the prompt cache is neither repeated n times nor copied
    when rows leave). Only the response part, (rows, kv_heads, max_new_tokens, head_dim) per layer, is per
    row; one softmax spans both parts. Rows that ended leave the batch (`select`); the grouped product then
    runs with zeros in their place.

    Shapes: rows = the rows still generating (of B = U * n), G = heads per kv head (grouped-query attention)."""

    def __init__(self, model, prefill_cache, prompt_mask, n_rollouts, max_new_tokens):
        inner, config = model.model, model.config
        self.model, self.eps, self.n_rollouts = model, config.rms_norm_eps, n_rollouts
        self.prompt_keys = [layer.keys for layer in prefill_cache.layers]  # (U, kv_heads, P, head_dim) each
        self.prompt_values = [layer.values for layer in prefill_cache.layers]
        n_prompts, self.kv_heads, prompt_length, self.head_dim = self.prompt_keys[0].shape
        self.heads = config.num_attention_heads
        batch, like = n_prompts * n_rollouts, self.prompt_keys[0]
        self.keys = like.new_empty(len(inner.layers), batch, self.kv_heads, max_new_tokens, self.head_dim)
        self.values = torch.empty_like(self.keys)
        self.prompt_bias = like.new_zeros(batch, prompt_length).masked_fill_(  # added to the prompt scores
            prompt_mask.repeat_interleave(n_rollouts, dim=0) == 0, torch.finfo(like.dtype).min)  # (rows, P)
        positions = torch.arange(prompt_length + max_new_tokens, device=like.device)[None]
        cos, sin = inner.rotary_emb(like, positions)  # (1, positions, head_dim) each: every position a row reaches
        half = self.head_dim // 2
        sign = torch.cat([-torch.ones(half), torch.ones(half)]).to(like)  # rotate_half(x) = roll(x, half) * sign
        self.cos, self.sin = cos[0], sin[0] * sign
        self.rows = torch.arange(batch, device=like.device)  # the batch row of each row still generating
        self.step = 0  # the response column of the next token
        fuse = model.num_parameters() <= FUSE_PARAMETERS
        self.layers = []  # per layer: its module, then the q/k/v and gate/up weights (fused: one matrix each)
        for layer in inner.layers:
            attention, mlp = layer.self_attn, layer.mlp
            qkv = [(attention.q_proj.weight, attention.q_proj.bias), (attention.k_proj.weight, attention.k_proj.bias),
                   (attention.v_proj.weight, attention.v_proj.bias)]
            gate_up = [(mlp.gate_proj.weight, None), (mlp.up_proj.weight, None)]
            if fuse:
                qkv = [(torch.cat([w for w, _ in qkv]), torch.cat([b for _, b in qkv]))]
                gate_up = [(torch.cat([w for w, _ in gate_up]), None)]
            self.layers.append((layer, qkv, gate_up))

    @staticmethod
    def supports(model):
        """Whether `model` is a Qwen2 causal LM this class computes exactly: full attention, default rotary."""
        config = model.config
        return (config.model_type == "qwen2" and not getattr(config, "use_sliding_window", False)
                and (getattr(config, "rope_parameters", None) or {}).get("rope_type") == "default"
                and config.hidden_act == "silu")

    def select(self, keep):
        """Keep only the rows `keep` (1-D index into the rows still generating); copies only the filled columns."""
        for name in ("keys", "values"):
            cache = getattr(self, name)
            kept = cache.new_empty(cache.shape[0], len(keep), *cache.shape[2:])
            kept[:, :, :, :self.step] = cache[:, keep, :, :self.step]
            setattr(self, name, kept)
        self.prompt_bias, self.rows = self.prompt_bias[keep], self.rows[keep]

    def rms_norm(self, x, weight):
        if x.dtype == torch.float32:
            return torch.nn.functional.rms_norm(x, x.shape[-1:], weight, eps=self.eps)
        return weight * torch.nn.functional.rms_norm(x.float(), x.shape[-1:], eps=self.eps).to(x.dtype)  # HF's order

    @staticmethod
    def linears(x, weights):
        """x through the (weight, bias) pairs, outputs side by side."""
        outputs = [torch.nn.functional.linear(x, weight, bias) for weight, bias in weights]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)

    def grouped(self, x, per_prompt):
        """x (rows, kv_heads, G, k) -> per_prompt(y) with y (U, kv_heads, n * G, k), the rows of a prompt side by
        side (zeros for rows that ended), and the result (U, kv_heads, n * G, m) back to (rows, kv_heads, G, m)."""
        rows, kv_heads, groups, k = x.shape
        n, n_prompts = self.n_rollouts, self.prompt_keys[0].shape[0]
        if rows < n * n_prompts:  # rows ended: zeros in their place
            x = x.new_zeros(n * n_prompts, kv_heads, groups, k).index_copy_(0, self.rows, x)
        y = x.view(n_prompts, n, kv_heads, groups, k).transpose(1, 2).reshape(n_prompts, kv_heads, n * groups, k)
        out = per_prompt(y)  # (U, kv_heads, n * G, m)
        out = out.view(n_prompts, kv_heads, n, groups, -1).transpose(1, 2).reshape(n * n_prompts, kv_heads, groups, -1)
        return out if rows == n * n_prompts else out[self.rows]

    def __call__(self, tokens, positions):
        """Logits (rows, V) after feeding tokens (rows,) at positions (rows,) to the rows still generating."""
        t, rows, heads, kv_heads, head_dim = self.step, len(tokens), self.heads, self.kv_heads, self.head_dim
        x = self.model.model.embed_tokens(tokens)  # (rows, hidden)
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # (rows, 1, head_dim)
        prompt_bias = self.prompt_bias[:, None, None, :]  # (rows, 1, 1, P)
        for i, (layer, qkv, gate_up) in enumerate(self.layers):
            attention = layer.self_attn
            qkv = self.linears(self.rms_norm(x, layer.input_layernorm.weight), qkv).view(rows, -1, head_dim)
            qk = qkv[:, :heads + kv_heads]  # (rows, heads + kv_heads, head_dim): rotary embedding of both at once
            qk = qk * cos + qk.roll(head_dim // 2, dims=-1) * sin
            self.keys[i, :, :, t], self.values[i, :, :, t] = qk[:, heads:], qkv[:, heads + kv_heads:]
            q = qk[:, :heads].view(rows, kv_heads, -1, head_dim) * attention.scaling  # (rows, kv_heads, G, head_dim)
            keys, values = self.keys[i, :, :, :t + 1], self.values[i, :, :, :t + 1]  # (rows, kv_heads, t + 1, D)
            prompt_scores = self.grouped(q, lambda y: torch.matmul(y, self.prompt_keys[i].transpose(-1, -2)))
            scores = torch.cat([prompt_scores + prompt_bias, torch.matmul(q, keys.transpose(-1, -2))], dim=-1)
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)  # (rows, kv_heads, G, P + t + 1)
            prompt_weights, response_weights = weights.split([prompt_bias.shape[-1], t + 1], dim=-1)
            out = self.grouped(prompt_weights, lambda y: torch.matmul(y, self.prompt_values[i]))
            out = out + torch.matmul(response_weights, values)  # (rows, kv_heads, G, head_dim)
            x = x + torch.nn.functional.linear(out.reshape(rows, -1), attention.o_proj.weight)
            gate, up = self.linears(self.rms_norm(x, layer.post_attention_layernorm.weight), gate_up).chunk(2, dim=-1)
            x = x + torch.nn.functional.linear(torch.nn.functional.silu(gate) * up, layer.mlp.down_proj.weight)
        self.step += 1
        return self.model.lm_head(self.rms_norm(x, self.model.model.norm.weight))
