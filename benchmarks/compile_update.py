"""Does torch.compile speed up the update? One micro-batch's forward and backward, three ways, on the tiny model.

    python benchmarks/compile_update.py                 # eager full, eager shared-prompt, compiled full (~1 min)
    python benchmarks/compile_update.py --no-compile    # the two eager paths only (seconds)

The update (loss.update_policy) runs `scoring.rollout_logprobs` on micro-batches of rows whose responses differ
in length. This times, for the same random token rows of several (rows, response length) shapes, the mean
seconds of logprobs + backward:
  - eager full: every row runs its prompt and response (one forward of P + R tokens a row);
  - eager shared: each distinct prompt runs once and the rows attend to its cache (what the update runs;
    16 rows a prompt, as in 8 prompts x 16 rollouts);
  - compiled full: the full forward through `torch.compile(model, dynamic=True)`: its first pass over the
    shapes (compile included) is printed apart from its later passes.
The shared-prompt path's cache is a transformers DynamicCache, which this does not compile. It also checks that
the two eager paths give the same logprobs (to 1e-4). The last line printed is one JSON object.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from infra.fast_scoring import fast_logprobs  # noqa: E402
from infra.checkpoint import load_policy  # noqa: E402
from infra.tiny import SHIPPED  # noqa: E402
from rollout import attention_positions  # noqa: E402

PROMPT_LENGTH = 57  # a 7x7 maze prompt, compact template (bench.py's workload)
SHAPES = [(64, 9), (64, 14), (32, 5), (64, 20), (48, 11), (64, 9), (64, 30), (16, 7)]  # (rows, response length)


def rows_of(vocab_size, rows, response_length, seed):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (rows, PROMPT_LENGTH + response_length), generator=generator)
    input_ids[:, :PROMPT_LENGTH] = input_ids[::16, :PROMPT_LENGTH].repeat_interleave(16, 0)[:rows]  # 16 rows a prompt
    return input_ids, torch.ones_like(input_ids)


def forward_backward(model, input_ids, attention_mask, shared):
    # full: one forward of the rows (fast_logprobs' sharded path); shared: 16 rows a prompt share its forward
    logprobs = fast_logprobs(model, input_ids, attention_mask, attention_positions(attention_mask), PROMPT_LENGTH, 1.0,
                             prompt_index=torch.arange(len(input_ids)) // 16, sharded=not shared)
    logprobs.sum().backward()
    return logprobs.detach()


def mean_seconds(model, vocab_size, shapes, shared, passes):
    start = time.perf_counter()
    for _ in range(passes):
        for seed, (rows, length) in enumerate(shapes):
            forward_backward(model, *rows_of(vocab_size, rows, length, seed), shared)
    return (time.perf_counter() - start) / (passes * len(shapes))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SHIPPED, help="an HF model folder (default: the shipped tiny model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3, help="timed passes over the shapes")
    parser.add_argument("--no-compile", action="store_true", help="only the two eager paths")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.passes < 1:
        parser.error("--threads and --passes must be >= 1")
    torch.set_num_threads(args.threads)
    model, _ = load_policy(args.model)
    model.train()
    vocab_size = model.config.vocab_size
    input_ids, attention_mask = rows_of(vocab_size, 32, 6, seed=0)
    difference = (forward_backward(model, input_ids, attention_mask, False)
                  - forward_backward(model, input_ids, attention_mask, True)).abs().max().item()
    if difference > 1e-4:
        raise SystemExit(f"the full and shared-prompt forwards disagree by {difference:.2e}")
    figures = {"threads": args.threads, "shapes": SHAPES, "full_vs_shared_max_abs_diff": difference,
               "eager_full_s": mean_seconds(model, vocab_size, SHAPES, False, args.passes),
               "eager_shared_s": mean_seconds(model, vocab_size, SHAPES, True, args.passes)}
    print(f"eager, full rows:        {figures['eager_full_s']:.4f} s per micro-batch (forward + backward)")
    print(f"eager, shared prompts:   {figures['eager_shared_s']:.4f} s (what the update runs)")
    if not args.no_compile:
        compiled = torch.compile(model, dynamic=True)
        start = time.perf_counter()
        mean_seconds(compiled, vocab_size, SHAPES, False, 1)
        figures["compiled_full_first_pass_s"] = time.perf_counter() - start
        figures["compiled_full_s"] = mean_seconds(compiled, vocab_size, SHAPES, False, args.passes)
        print(f"compiled, full rows:     {figures['compiled_full_s']:.4f} s after a first pass over the "
              f"{len(SHAPES)} shapes of {figures['compiled_full_first_pass_s']:.1f} s (compile included)")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
