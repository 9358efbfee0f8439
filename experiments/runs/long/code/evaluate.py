"""Evaluation: the unbiased pass@k estimator (Chen et al., 2021), as the paper uses it (appendix A.2).

pass@k = 1 - C(n - c, k) / C(n, k): the chance that k of the n samples, c of them correct, drawn
without replacement, contain a correct one. It is also eq. 11 of the paper: the mean group reward
over all C(N, k) groups of k rollouts, so advantage.py reuses it. `g_pass_at_k` is G-Pass@k_tau
(arXiv 2412.13147): at least ceil(tau k) of the k samples correct, a stability-aware pass@k.

`evaluate` is the evaluation loop of appendix A.2 (temperature 1.0, top_p 0.95, 32 samples per maze):
unbiased pass@1 and pass@k per maze size and averaged (table 7), the answer diversity of negative
responses (figure 7a) and the mean policy entropy. It reuses rollout.py and verify.py. It is
`score_mazes` (per-maze records, optionally of one data-parallel shard) then `summarize`.
`python evaluate.py PATH` evaluates any checkpoint or HF folder and writes JSON.

Pass@k curves (Yue et al., 2025, "Does Reinforcement Learning Really Incentivize Reasoning Capacity in
LLMs Beyond the Base Model?"): `summarize` also gives unbiased pass@k for k = 1, 2, 4, ..., n from the
same n samples per maze, and the per-maze correct counts, so two policies can be compared by where their
curves cross (`crossing_k`) and by which mazes each solves at all within n samples (`solved_overlap`).
"""
import math
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from mazes import format_prompt
from rollout import chat_prompt, generate_rollouts
from verify import extract_answer, maze_reward


def pass_at_k(n, c, k):
    """Unbiased pass@k for n samples with c correct (c an int or a tensor of counts), k in 0..n.

    Computed as the product prod_{i=0}^{k-1} (n - c - i) / (n - i) = C(n-c, k) / C(n, k), which never
    forms a large binomial and is exact to float precision; a factor that would go negative means
    fewer than k failures exist, so the product is 0 and pass@k is 1. pass@0 is 0 (empty product).
    """
    for name, value in (("n", n), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 0 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= k <= n, got k={k} with n={n} samples")
    counts = torch.as_tensor(c, dtype=torch.float64)
    if ((counts < 0) | (counts > n) | (counts != counts.round())).any():
        raise ValueError(f"the number of correct samples c must be an integer in [0, n={n}], got {c}")
    steps = torch.arange(k, dtype=torch.float64)  # (k,)
    all_wrong = ((n - counts[..., None] - steps) / (n - steps)).clamp_min(0).prod(-1)
    result = 1 - all_wrong
    return result.item() if not isinstance(c, torch.Tensor) else result


def curve_ks(n):
    """The k of a pass@k curve from n samples: 1, 2, 4, ... up to n, and n itself."""
    return sorted({2 ** i for i in range(n.bit_length()) if 2 ** i <= n} | {n})


def pass_at_k_curve(n, counts):
    """{k: mean over mazes of unbiased pass@k} for k in curve_ks(n); counts = correct samples per maze."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    return {k: float(pass_at_k(n, counts, k).mean()) for k in curve_ks(n)}


def crossing_k(curve, reference):
    """Where `curve` falls to `reference` (both {k: pass@k} on the same k; e.g. a trained policy's curve
    against its start policy's): the first k at which it is at or below after being above at k=1,
    interpolated linearly in log2 k between the two grid points around the sign change.

    Returns (k, kind): kind "cross" with that k; "above" (above at every k) or "below" (not above even at
    k=1) with k None, so "no crossing" is never mistaken for a number.
    """
    ks = sorted(int(k) for k in curve)
    gaps = [curve[k] - reference[k] for k in ks]
    if gaps[0] <= 0:
        return None, "below"
    for i in range(1, len(ks)):
        if gaps[i] <= 0:  # crossed between ks[i-1] (above) and ks[i] (at or below)
            fraction = gaps[i - 1] / (gaps[i - 1] - gaps[i])
            log_k = math.log2(ks[i - 1]) + fraction * (math.log2(ks[i]) - math.log2(ks[i - 1]))
            return 2 ** log_k, "cross"
    return None, "above"


def solved_overlap(counts_a, counts_b):
    """Mazes solved (at least one correct of n samples) by a only, b only, both and neither.
    counts_*: {maze index: correct samples}, over the same mazes."""
    if set(counts_a) != set(counts_b):
        raise ValueError("solved_overlap needs the correct counts of the same mazes for both policies")
    solved_a = {index for index, count in counts_a.items() if count > 0}
    solved_b = {index for index, count in counts_b.items() if count > 0}
    return {"a": len(solved_a), "b": len(solved_b), "both": len(solved_a & solved_b),
            "only_a": len(solved_a - solved_b), "only_b": len(solved_b - solved_a),
            "neither": len(set(counts_a) - solved_a - solved_b), "mazes": len(counts_a)}


def g_pass_at_k(n, c, k, tau):
    """G-Pass@k_tau (Liu et al. 2024, arXiv 2412.13147): the chance that at least ceil(tau k) of k
    samples drawn without replacement from n samples, c of them correct, are correct:
      G-Pass@k_tau = sum_{j >= ceil(tau k)} C(c, j) C(n - c, k - j) / C(n, k),   0 < tau <= 1.
    tau -> 0+ is pass@k (at least one), tau = 1 is C(c, k) / C(n, k) (all k). c an int or a tensor of
    counts (a float64 tensor back). Exact: integer binomials, one correctly rounded division."""
    for name, value in (("n", n), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 1 <= k <= n:
        raise ValueError(f"G-Pass@k needs 1 <= k <= n, got k={k} with n={n} samples")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau!r}")
    counts = torch.as_tensor(c, dtype=torch.float64)
    if ((counts < 0) | (counts > n) | (counts != counts.round())).any():
        raise ValueError(f"the number of correct samples c must be an integer in [0, n={n}], got {c}")
    least = max(1, math.ceil(tau * k - 1e-9))  # correct samples needed; the 1e-9 keeps 0.3 * 10 at 3
    table = torch.tensor([sum(math.comb(correct, j) * math.comb(n - correct, k - j) for j in range(least, k + 1))
                          / math.comb(n, k) for correct in range(n + 1)], dtype=torch.float64)  # by c
    result = table[counts.long()]
    return result.item() if not isinstance(c, torch.Tensor) else result


def distinct_negative_share(answers, rewards):
    """Figure 7a: the number of distinct answers among a maze's negative responses divided by their
    count (1 = every wrong answer differs, small = the model repeats the same mistake); None if none."""
    wrong = [answer for answer, reward in zip(answers, rewards) if reward == 0]
    return len(set(wrong)) / len(wrong) if wrong else None


def score_mazes(model, tokenizer, dataset, template="compact", n_samples=32, ks=(1, 8), max_new_tokens=64,
                temperature=1.0, top_p=0.95, prompts_per_batch=8, seed=0, shard=(0, 1), show_progress=True,
                sampler="fast"):
    """Sample n_samples responses per maze of `dataset` (columns maze, size); one record per maze.

    The mazes go in batches of prompts_per_batch, batch b sampled after torch.manual_seed(seed *
    1_000_003 + b). shard=(i, n) scores only batches b with b % n == i, so n data-parallel processes
    each score a share and the gathered records are exactly those of one process scoring all.
    """
    ks = sorted(set(ks))
    if not ks or ks[0] < 1 or ks[-1] > n_samples:
        raise ValueError(f"every k must be in [1, n_samples={n_samples}], got {ks}")
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty")
    index, n_shards = shard
    if not 0 <= index < n_shards:
        raise ValueError(f"shard must be (index, n_shards) with 0 <= index < n_shards, got {shard}")
    records = []
    batches = list(range(0, len(dataset), prompts_per_batch))[index::n_shards]
    for start in tqdm(batches, desc="evaluate", disable=not show_progress, leave=False):
        torch.manual_seed(seed * 1_000_003 + start // prompts_per_batch)
        rows = dataset[start:start + prompts_per_batch]
        prompts = [chat_prompt(tokenizer, format_prompt(maze, template)) for maze in rows["maze"]]
        rollout = generate_rollouts(model, tokenizer, prompts, n_samples, max_new_tokens, temperature, top_p,
                                    sampler=sampler)  # rollout.SAMPLERS: the same samples either way
        entropies = (rollout.entropies * rollout.response_mask).sum(-1)  # (B,) per response
        for i, (maze, size) in enumerate(zip(rows["maze"], rows["size"])):
            responses = slice(i * n_samples, (i + 1) * n_samples)
            texts = rollout.texts[responses]
            rewards = [maze_reward(text, maze) for text in texts]
            records.append({
                "index": start + i, "size": size, "correct": int(sum(rewards)),
                **{f"pass@{k}": pass_at_k(n_samples, int(sum(rewards)), k) for k in ks},
                "negative_answer_diversity": distinct_negative_share([extract_answer(t) or t for t in texts], rewards),
                "entropy_sum": float(entropies[responses].sum()),
                "tokens": float(rollout.response_mask[responses].sum()),
                "length_sum": float(rollout.response_lengths[responses].sum()),
                "responses": len(texts),
            })
    return records


def summarize(records, n_samples, temperature, top_p):
    """The result dict of `evaluate` from per-maze records (from any number of shards, in any order)."""
    records = sorted(records, key=lambda record: record["index"])
    ks = sorted(int(key[5:]) for key in records[0] if key.startswith("pass@"))
    by_size = defaultdict(list)
    for record in records:
        by_size[record["size"]].append(record)
    per_size = {size: {**{f"pass@{k}": sum(r[f"pass@{k}"] for r in rows) / len(rows) for k in ks},
                       "n_mazes": len(rows)} for size, rows in sorted(by_size.items())}
    average = {f"pass@{k}": sum(per_size[s][f"pass@{k}"] for s in per_size) / len(per_size) for k in ks}
    # the pass@k curve, k = 1, 2, 4, ... n, per size and averaged over sizes (JSON keys are strings)
    curves = {size: pass_at_k_curve(n_samples, [r["correct"] for r in rows]) for size, rows in by_size.items()}
    average_curve = {str(k): sum(curves[s][k] for s in curves) / len(curves) for k in curve_ks(n_samples)}
    diversity = [r["negative_answer_diversity"] for r in records if r["negative_answer_diversity"] is not None]
    tokens = sum(r["tokens"] for r in records)
    for size in per_size:
        per_size[size]["pass@k_curve"] = {str(k): value for k, value in curves[size].items()}
        per_size[size]["correct"] = {str(r["index"]): r["correct"] for r in by_size[size]}  # per maze, of n_samples
    # G-Pass@k_tau (tau 0.5 and 1) at the largest k, averaged over sizes like "average"
    g_pass = {f"G-pass@{ks[-1]}_{tau}": sum(sum(g_pass_at_k(n_samples, r["correct"], ks[-1], tau) for r in rows)
                                            / len(rows) for rows in by_size.values()) / len(by_size) for tau in (0.5, 1.0)}
    return {"per_size": per_size, "average": average, "average_pass@k_curve": average_curve, "g_pass": g_pass,
            "correct": {str(r["index"]): r["correct"] for r in records},  # per held-out maze, of n_samples
            "negative_answer_diversity": sum(diversity) / len(diversity) if diversity else None,
            "entropy": sum(r["entropy_sum"] for r in records) / max(tokens, 1),
            "response_length": sum(r["length_sum"] for r in records) / sum(r["responses"] for r in records),
            "n_samples": n_samples, "temperature": temperature, "top_p": top_p}


def evaluate(model, tokenizer, dataset, template="compact", n_samples=32, ks=(1, 8), max_new_tokens=64,
             temperature=1.0, top_p=0.95, prompts_per_batch=8, seed=0, show_progress=True):
    """Sample n_samples responses per maze of `dataset` (columns maze, size) and score them.

    Returns {"per_size": {size: {"pass@k": ..., "n_mazes": ...}}, "average": {"pass@k": ...} (the mean
    over sizes, like table 7's Avg. column), "negative_answer_diversity", "entropy", "response_length"}.
    Defaults follow appendix A.2: temperature 1.0, top_p 0.95, 32 samples per maze.
    Data-parallel: each process calls `score_mazes` with its shard, then `summarize` on the gathered records.
    """
    records = score_mazes(model, tokenizer, dataset, template, n_samples, ks, max_new_tokens, temperature, top_p,
                          prompts_per_batch, seed, show_progress=show_progress)
    return summarize(records, n_samples, temperature, top_p)


def format_table(results_by_name):
    """A table like the paper's table 7: rows = runs, columns = maze sizes and Avg., cells pass@1/pass@k."""
    names = list(results_by_name)
    sizes = sorted({size for result in results_by_name.values() for size in result["per_size"]}, key=int)  # int or JSON str
    ks = sorted(int(key[5:]) for key in next(iter(results_by_name.values()))["average"])
    header = f"{'':<14}" + "".join(f"{f'{s}x{s}':>14}" for s in sizes) + f"{'Avg.':>14}"
    lines = [f"pass@{ks[0]}/pass@{ks[-1]} (%)", header]
    for name in names:
        result = results_by_name[name]
        cells = [result["per_size"].get(s) for s in sizes] + [result["average"]]
        lines.append(f"{name:<14}" + "".join(
            f"{100 * c[f'pass@{ks[0]}']:>7.1f}/{100 * c[f'pass@{ks[-1]}']:<6.1f}" if c else f"{'-':>14}" for c in cells))
    return "\n".join(lines)


def format_curves(results_by_name):
    """The average pass@k curves (k = 1, 2, 4, ... n) of results that have one, a row each, in %."""
    rows = {name: result["average_pass@k_curve"] for name, result in results_by_name.items()
            if "average_pass@k_curve" in result}
    if not rows:
        return ""
    ks = sorted({int(k) for curve in rows.values() for k in curve})
    lines = ["pass@k (%), average over maze sizes; policy entropy (nats/token); wrong-answer diversity (%)",
             f"{'':<14}" + "".join(f"{f'k={k}':>7}" for k in ks) + f"{'entropy':>9}{'diversity':>10}"]
    for name, curve in rows.items():
        diversity = results_by_name[name]["negative_answer_diversity"]
        lines.append(f"{name:<14}" + "".join(f"{100 * curve[str(k)]:>7.1f}" if str(k) in curve else f"{'-':>7}" for k in ks)
                     + f"{results_by_name[name]['entropy']:>9.3f}" + (f"{100 * diversity:>10.1f}" if diversity is not None else f"{'-':>10}"))
    return "\n".join(lines)


def main(argv=None):
    """python evaluate.py PATH [--sizes=5,7] [--n_mazes=50] [--n_samples=32] [--k=8] [--out=FILE] [--debug]"""
    import argparse
    import json
    import os

    from checkpoint import load_policy
    from cli import add_debug_option, usage_error
    from mazes import PROMPT_TEMPLATES, make_mazes

    parser = argparse.ArgumentParser(description="Evaluate a checkpoint or HF folder on held-out mazes.")
    parser.add_argument("path", help="a local Hugging Face model folder (a train.py ckpt/ is one)")
    parser.add_argument("--sizes", default="5,7,9")
    parser.add_argument("--n_mazes", type=int, default=50)
    parser.add_argument("--n_samples", type=int, default=32)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--template", default="compact", choices=sorted(PROMPT_TEMPLATES))
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maze_seed", type=int, default=0)
    parser.add_argument("--out", default="")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    # everything the command line can get wrong, before the model is loaded or a maze is sampled
    if not os.path.isdir(args.path):
        usage_error(f"model path {args.path!r} is not a folder: pass a local Hugging Face model folder "
                    "(weights must be on disk; no model hub access is assumed)")
    if not os.path.isfile(os.path.join(args.path, "config.json")):
        usage_error(f"{args.path!r} has no config.json: not a Hugging Face model folder")
    try:
        sizes = tuple(int(size) for size in args.sizes.split(","))
    except ValueError:
        usage_error(f"--sizes={args.sizes!r} must be comma-separated integers, e.g. 5,7,9")
    if any(size < 5 or size % 2 == 0 for size in sizes):
        usage_error(f"--sizes={args.sizes!r}: every maze size must be an odd integer >= 5")
    for name in ("n_mazes", "n_samples", "max_new_tokens"):
        if getattr(args, name) < 1:
            usage_error(f"--{name}={getattr(args, name)} must be >= 1")
    if not 1 <= args.k <= args.n_samples:
        usage_error(f"--k={args.k} must be between 1 and --n_samples={args.n_samples}")
    if args.out and (os.path.isdir(args.out) or not os.path.isdir(os.path.dirname(args.out) or ".")):
        usage_error(f"--out={args.out!r} must be a file in an existing folder")
    try:
        test = make_mazes(train_sizes=(), n_train=0, test_sizes=sizes, n_test=args.n_mazes, seed=args.maze_seed)["test"]
    except ValueError as error:  # e.g. more mazes of a size than exist
        usage_error(str(error))

    model, tokenizer = load_policy(args.path)
    result = evaluate(model, tokenizer, test, args.template, args.n_samples, (1, args.k), args.max_new_tokens,
                      seed=args.seed)
    print(format_table({"model": result}))
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    from cli import run

    run(main)
