"""The generate sampler's prompt prefill, once per prompt or once per rollout, at the Qwen2.5-0.5B shape, measured.

    flock /tmp/bigmem.lock python benchmarks/prefill.py                      # 1 prompt (maze 9), 32 rollouts
    flock /tmp/bigmem.lock python benchmarks/prefill.py --sizes=9,15         # 2 prompts (mazes 9 and 15)
    flock /tmp/bigmem.lock /usr/bin/time -v python benchmarks/prefill.py --ways=repeated   # one way's peak RSS

The generate sampler (`rollout.generate_from`, HF generate) two ways, the same seed:
  - "repeated": generate's own prefill (`infra.prefill.repeated_prompts`): each prompt is repeated n times and
    every copy's prompt tokens run through the model;
  - "once": `rollout.generate_responses`, the sampler as shipped: `infra.prefill.prefill_prompts` runs each prompt
    (all but its last token) once and repeats its cache to the n rows; generate then runs the last prompt token of
    the n rows, and decodes as before.
The model: Qwen2.5-0.5B-Instruct's config (benchmarks/shapes.py) with random weights, float32, eval, no grad. The
prompts: the paper's maze prompts (`chat_prompt(tokenizer, task.format_prompt(row, "paper"))`) of the given train
sizes, left-padded together: 234 tokens at size 9 and 293 at 15 with Qwen2.5's tokenizer (seed 0; 230-298 over
sizes 9-15). A random model rarely emits an end token, so every row decodes --new_tokens tokens: the decode part is
the same in both ways and the difference is the prefill. Seconds: each way's whole call (its prefill included), the
best of --repeats runs after one warm-up run of each way, with torch.set_num_threads(--threads). The two ways'
tokens should be equal and their logprobs/entropies a float rounding apart ("same_tokens", "max_logprob_diff",
"max_entropy_diff"). peak_rss_mib: this process's, over both ways (run one way with --ways for each one's).
The model holds 2 GB (float32): run it under the big-memory lock. The last line printed is one JSON object.
"""
import argparse
import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from infra.prefill import repeated_prompts  # noqa: E402
from rollout import chat_prompt, end_token_ids, generate_from, generate_responses  # noqa: E402

WAYS = ("repeated", "once")


def maze_prompts(tokenizer, sizes, seed=0):
    """One paper-template maze prompt per size, through the tokenizer's chat template."""
    from tasks import make_task

    task = make_task("maze", train_sizes=tuple(sizes), n_train={size: 1 for size in sizes}, test_sizes=(5,), n_test=1,
                     seed=seed)
    rows = task.make_splits()["train"]
    return [chat_prompt(tokenizer, task.format_prompt(row, "paper")) for row in rows]


def measure(model, tokenizer, prompts, n_rollouts, new_tokens, repeats=1, ways=WAYS, seed=0):
    """Time the generate sampler with the prompt prefilled once per rollout ("repeated") and once per prompt ("once")
    on `prompts`; returns the figures as a dict (seconds the best of `repeats`, after a warm-up run)."""
    encoded = tokenizer(list(prompts), padding=True, padding_side="left", add_special_tokens=False,
                        return_tensors="pt")
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
    eos = end_token_ids(model, tokenizer)
    figures = dict(prompts=len(prompts), prompt_tokens=prompt_mask.sum(-1).tolist(), padded_length=prompt_ids.shape[1],
                   rollouts=n_rollouts, new_tokens=new_tokens, threads=torch.get_num_threads(), seconds={})
    results = {}
    for way in ways:
        times = []
        for _ in range(1 + repeats):  # the first run warms up
            torch.manual_seed(seed)
            start = time.perf_counter()
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                if way == "once":
                    results[way] = generate_responses(model, prompt_ids, prompt_mask, n_rollouts, new_tokens, eos,
                                                      tokenizer.pad_token_id)
                else:
                    results[way] = generate_from(model, repeated_prompts(model, prompt_ids, prompt_mask, n_rollouts),
                                                 new_tokens, eos, tokenizer.pad_token_id, 1.0, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        figures["seconds"][way] = round(min(times[1:]), 3)
        figures["response_length"] = results[way][0].shape[1]
    if len(results) == 2:
        (ids, logprobs, entropies), (once_ids, once_logprobs, once_entropies) = results["repeated"], results["once"]
        figures.update(same_tokens=bool(torch.equal(ids, once_ids)),
                       max_logprob_diff=float((logprobs - once_logprobs).abs().max()),
                       max_entropy_diff=float((entropies - once_entropies).abs().max()),
                       saved_seconds=round(figures["seconds"]["repeated"] - figures["seconds"]["once"], 3),
                       ratio=round(figures["seconds"]["repeated"] / figures["seconds"]["once"], 2))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="0.5b", choices=["0.5b", "1.5b", "7b"])
    parser.add_argument("--sizes", default="9", help="maze sizes, one prompt each, comma-separated")
    parser.add_argument("--rollouts", type=int, default=32)
    parser.add_argument("--new_tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: float32 weights under bf16 autocast (train.py's bf16-mixed)")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, of {WAYS}")
    args = parser.parse_args(argv)
    from benchmarks.shapes import qwen_tokenizer, random_model

    torch.set_num_threads(args.threads)
    tokenizer = qwen_tokenizer()
    model = random_model(args.shape, device=args.device)  # float32, eval
    prompts = maze_prompts(tokenizer, [int(size) for size in args.sizes.split(",")])
    figures = measure(model, tokenizer, prompts, args.rollouts, args.new_tokens, args.repeats,
                      [way for way in WAYS if way in args.ways.split(",")])
    figures.update(shape=args.shape, sizes=args.sizes, device=args.device,
                   peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    if args.device == "cuda":
        figures["max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
