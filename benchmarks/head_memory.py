"""Memory of scoring at the Qwen2.5-0.5B shape, measured: the output layer alone, then one whole update.

    flock /tmp/bigmem.lock python benchmarks/head_memory.py                  # the head, before and after (~2 min)
    flock /tmp/bigmem.lock python benchmarks/head_memory.py --mode=update    # one update, 8 rows x 1,024 (~10+ min)

--mode=head: one micro-batch's log-probs and entropies of (rows x positions) response tokens, forward and backward,
from random final hidden states (rows, positions, 896) through a tied (151,936, 896) float32 output layer. Two ways:
  - before: the logits of every position at once, then a float32 logsumexp, gather and softmax for the entropy
    (what scoring did before `head_logprobs`);
  - after: `infra.chunked_head.head_logprobs`, CHUNK_POSITIONS positions at a time, its backward recomputing each
    chunk.
The peak is that of live torch allocations (torch.profiler, profile_memory=True; on cuda max_memory_allocated)
above what was live before: the hidden states and the weight, which the model holds anyway (the weight's gradient,
519 MiB, is counted in both). "before" is run only where its measured rule (its peak in float32 copies of
rows x positions x V, at the last shape measured) predicts at most --max_gb; above that the figure is computed
from the rule, "before_measured": false. Seconds: the head's
forward and backward alone, the mean of --repeats runs (noisy on a shared machine).

--mode=update: one `loss.update_policy` of 8 rows x 1,024 response tokens (the 0.5B config's micro_batch and
max_new_tokens) at the exact Qwen2.5-0.5B shape, random weights, float32, gradient checkpointing on, fused AdamW
as train.py builds it. The rollout is synthetic: one random 250-token prompt, 8 responses of 1,024 random tokens
(no end token), advantages +-1. Reports this process's peak RSS (getrusage) and the update's seconds.
The last line printed is one JSON object.
"""
import argparse
import itertools
import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from infra.chunked_head import CHUNK_POSITIONS, head_logprobs  # noqa: E402

HIDDEN, VOCAB = 896, 151_936  # Qwen2.5-0.5B
SHAPES = [(8, 64), (2, 802), (4, 802), (8, 1024)]  # (rows, response positions)
MIB = 2 ** 20


def full_logits(hidden, weight, targets, temperature=1.0):
    """The textbook path: (rows, positions, V) logits at once, float32 log-softmax, entropy from the softmax."""
    logits = (hidden @ weight.T).float() / temperature
    log_normalizer = torch.logsumexp(logits, dim=-1)
    logprobs = logits.gather(-1, targets[..., None]).squeeze(-1) - log_normalizer
    return logprobs, log_normalizer - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def chunked(hidden, weight, targets, temperature=1.0):
    return head_logprobs(hidden, weight, None, targets, temperature, with_entropy=True)


def forward_backward(score, hidden, weight, targets):
    logprobs, entropies = score(hidden, weight, targets)
    (logprobs.sum() + 0.01 * entropies.sum()).backward()


def peak_mib(run, device):
    """Peak of live torch allocations during run(), above those live when it starts, in MiB."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / MIB
    from torch._C._profiler import _EventType

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
        run()

    def walk(nodes):
        for node in nodes:
            yield node
            yield from walk(node.children)
    events = sorted((node.start_time_ns, node.extra_fields.alloc_size) for node in
                    walk(profile.profiler.kineto_results.experimental_event_tree()) if node.tag == _EventType.Allocation)
    return max(itertools.accumulate(size for _, size in events), default=0) / MIB


def head_mode(args, device):
    rows_out = []
    copies = None  # the measured rule: before's peak in float32 copies of (rows x positions x V)
    for rows, positions in SHAPES:
        generator = torch.Generator().manual_seed(0)
        weight = (0.02 * torch.randn(VOCAB, HIDDEN, generator=generator)).to(device).requires_grad_()
        hidden = torch.randn(rows, positions, HIDDEN, generator=generator).to(device).requires_grad_()
        targets = torch.randint(0, VOCAB, (rows, positions), generator=generator).to(device)
        copy_mib = rows * positions * VOCAB * 4 / MIB
        row = {"rows": rows, "positions": positions, "one_copy_mib": round(copy_mib)}
        for name, score in (("before", full_logits), ("after", chunked)):
            predicted = None if copies is None else copies * copy_mib
            if name == "before" and predicted is not None and predicted > args.max_gb * 1024:
                row["before_mib"], row["before_measured"] = round(predicted), False  # from the measured rule
                continue
            weight.grad = hidden.grad = None
            row[f"{name}_mib"] = round(peak_mib(lambda: forward_backward(score, hidden, weight, targets), device))
            if name == "before":
                row["before_measured"] = True
                copies = row["before_mib"] / copy_mib
                row["before_copies"] = round(copies, 2)
            seconds = []
            for _ in range(args.repeats):
                weight.grad = hidden.grad = None
                start = time.perf_counter()
                forward_backward(score, hidden, weight, targets)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - start)
            row[f"{name}_seconds"] = round(sum(seconds) / len(seconds), 3)
        print(row, flush=True)
        rows_out.append(row)
        del weight, hidden, targets
    return {"mode": "head", "chunk_positions": CHUNK_POSITIONS, "device": str(device),
            "threads": torch.get_num_threads(), "shapes": rows_out}


def update_mode(args, device):
    from accelerate import Accelerator
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from loss import update_policy
    from infra.compat import enable_activation_checkpointing
    from rollout import Rollout

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=1e6,
                         max_position_embeddings=32768)
    policy = Qwen2ForCausalLM(config).to(device)
    enable_activation_checkpointing(policy)
    n_parameters = sum(p.numel() for p in policy.parameters())
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6, fused=True)
    for param in policy.parameters():
        param.grad = torch.zeros_like(param)
    accelerator = Accelerator(cpu=device.type == "cpu")
    policy, optimizer = accelerator.prepare(policy, optimizer)

    rows, prompt_length, response_length = args.rows, args.prompt_length, args.response_length
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, VOCAB, (1, prompt_length), generator=generator).expand(rows, -1)
    response_ids = torch.randint(0, VOCAB, (rows, response_length), generator=generator)
    mask = torch.ones(rows, response_length)
    rollout = Rollout(input_ids=torch.cat([prompt, response_ids], 1), attention_mask=torch.ones(rows, prompt_length +
                      response_length, dtype=torch.long), prompt_length=prompt_length, response_ids=response_ids,
                      response_mask=mask, response_lengths=torch.full((rows,), response_length),
                      logprobs=torch.full((rows, response_length), -12.0), entropies=torch.zeros(rows, response_length),
                      texts=[""] * rows, temperature=1.0, n_rollouts=rows)
    advantages = torch.tensor([1.0, -1.0] * (rows // 2))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # GiB (ru_maxrss is in KiB)
    start = time.perf_counter()
    stats = update_policy(policy, optimizer, rollout, advantages, mini_tokens=mask.sum()[None],
                          mini_rows=torch.tensor([rows]), accelerator=accelerator, micro_batch=rows)
    seconds = time.perf_counter() - start
    return {"mode": "update", "device": str(device), "threads": torch.get_num_threads(), "parameters": n_parameters,
            "rows": rows, "prompt_length": prompt_length, "response_length": response_length,
            "chunk_positions": CHUNK_POSITIONS, "update_seconds": round(seconds, 1),
            "peak_rss_gib_before_update": round(rss_before, 2),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2),
            "grad_norm": stats["grad_norm"], "pg_loss": stats["pg_loss"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("head", "update"), default="head")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max_gb", type=float, default=10.0, help="head: run 'before' only up to this predicted peak")
    parser.add_argument("--repeats", type=int, default=2, help="head: timed runs per shape and path")
    parser.add_argument("--rows", type=int, default=8, help="update: rows of the micro-batch")
    parser.add_argument("--prompt_length", type=int, default=250, help="update")
    parser.add_argument("--response_length", type=int, default=1024, help="update")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    result = head_mode(args, device) if args.mode == "head" else update_mode(args, device)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
