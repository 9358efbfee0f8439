"""Evaluation: the unbiased pass@k estimator (Chen et al., 2021), as the paper uses it (appendix A.2).

pass@k = 1 - C(n - c, k) / C(n, k): the chance that k of the n samples, c of them correct, drawn
without replacement, contain a correct one. It is also eq. 11 of the paper: the mean group reward
over all C(N, k) groups of k rollouts, so advantage.py reuses it.

`evaluate` is the evaluation loop of appendix A.2 (temperature 1.0, top_p 0.95, 32 samples per maze):
unbiased pass@1 and pass@k per maze size and averaged (table 7), the answer diversity of negative
responses (figure 7a) and the mean policy entropy. It reuses rollout.py and verify.py.
`python evaluate.py PATH` evaluates any checkpoint or HF folder and writes JSON.
"""
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


def distinct_negative_share(answers, rewards):
    """Figure 7a: the number of distinct answers among a maze's negative responses divided by their
    count (1 = every wrong answer differs, small = the model repeats the same mistake); None if none."""
    wrong = [answer for answer, reward in zip(answers, rewards) if reward == 0]
    return len(set(wrong)) / len(wrong) if wrong else None


def evaluate(model, tokenizer, dataset, template="compact", n_samples=32, ks=(1, 8), max_new_tokens=64,
             temperature=1.0, top_p=0.95, prompts_per_batch=8, seed=0, show_progress=True):
    """Sample n_samples responses per maze of `dataset` (columns maze, size) and score them.

    Returns {"per_size": {size: {"pass@k": ..., "n_mazes": ...}}, "average": {"pass@k": ...} (the mean
    over sizes, like table 7's Avg. column), "negative_answer_diversity", "entropy", "response_length"}.
    Defaults follow appendix A.2: temperature 1.0, top_p 0.95, 32 samples per maze.
    """
    ks = sorted(set(ks))
    if not ks or ks[0] < 1 or ks[-1] > n_samples:
        raise ValueError(f"every k must be in [1, n_samples={n_samples}], got {ks}")
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty")
    torch.manual_seed(seed)
    scores = defaultdict(lambda: defaultdict(list))  # size -> metric -> per-maze values
    diversity, entropy_sum, length_sum, token_count, response_count = [], 0.0, 0.0, 0.0, 0
    starts = range(0, len(dataset), prompts_per_batch)
    for start in tqdm(starts, desc="evaluate", disable=not show_progress, leave=False):
        rows = dataset[start:start + prompts_per_batch]
        prompts = [chat_prompt(tokenizer, format_prompt(maze, template)) for maze in rows["maze"]]
        rollout = generate_rollouts(model, tokenizer, prompts, n_samples, max_new_tokens, temperature, top_p)
        entropy_sum += float((rollout.entropies * rollout.response_mask).sum())
        token_count += float(rollout.response_mask.sum())
        length_sum += float(rollout.response_lengths.sum())
        response_count += len(rollout.texts)
        for i, (maze, size) in enumerate(zip(rows["maze"], rows["size"])):
            texts = rollout.texts[i * n_samples:(i + 1) * n_samples]
            rewards = [maze_reward(text, maze) for text in texts]
            for k in ks:
                scores[size][f"pass@{k}"].append(pass_at_k(n_samples, int(sum(rewards)), k))
            share = distinct_negative_share([extract_answer(text) or text for text in texts], rewards)
            if share is not None:
                diversity.append(share)
    per_size = {size: {name: sum(values) / len(values) for name, values in metrics.items()}
                for size, metrics in sorted(scores.items())}
    for size in per_size:
        per_size[size]["n_mazes"] = len(scores[size][f"pass@{ks[0]}"])
    average = {f"pass@{k}": sum(per_size[s][f"pass@{k}"] for s in per_size) / len(per_size) for k in ks}
    return {"per_size": per_size, "average": average,
            "negative_answer_diversity": sum(diversity) / len(diversity) if diversity else None,
            "entropy": entropy_sum / max(token_count, 1), "response_length": length_sum / response_count,
            "n_samples": n_samples, "temperature": temperature, "top_p": top_p}


def format_table(results_by_name):
    """A table like the paper's table 7: rows = runs, columns = maze sizes and Avg., cells pass@1/pass@k."""
    names = list(results_by_name)
    sizes = sorted({size for result in results_by_name.values() for size in result["per_size"]})
    ks = sorted(int(key[5:]) for key in next(iter(results_by_name.values()))["average"])
    header = f"{'':<14}" + "".join(f"{f'{s}x{s}':>14}" for s in sizes) + f"{'Avg.':>14}"
    lines = [f"pass@{ks[0]}/pass@{ks[-1]} (%)", header]
    for name in names:
        result = results_by_name[name]
        cells = [result["per_size"].get(s) for s in sizes] + [result["average"]]
        lines.append(f"{name:<14}" + "".join(
            f"{100 * c[f'pass@{ks[0]}']:>7.1f}/{100 * c[f'pass@{ks[-1]}']:<6.1f}" if c else f"{'-':>14}" for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    # python evaluate.py PATH [--sizes=5,7] [--n_mazes=50] [--n_samples=32] [--k=8] [--template=compact] [--out=FILE]
    import argparse
    import json

    from mazes import make_mazes
    from checkpoint import load_policy

    parser = argparse.ArgumentParser(description="Evaluate a checkpoint or HF folder on held-out mazes.")
    parser.add_argument("path")
    parser.add_argument("--sizes", default="5,7,9")
    parser.add_argument("--n_mazes", type=int, default=50)
    parser.add_argument("--n_samples", type=int, default=32)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--template", default="compact")
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maze_seed", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    model, tokenizer = load_policy(args.path)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    test = make_mazes(train_sizes=(), n_train=0, test_sizes=sizes, n_test=args.n_mazes, seed=args.maze_seed)["test"]
    result = evaluate(model, tokenizer, test, args.template, args.n_samples, (1, args.k), args.max_new_tokens, seed=args.seed)
    print(format_table({"model": result}))
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
