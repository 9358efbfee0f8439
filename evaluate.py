"""Evaluation with the unbiased pass@k estimator (Chen et al., 2021), as the paper uses it (appendix A.2).

pass@k = 1 - C(n - c, k) / C(n, k) (`pass_at_k`, in advantage.py since it is also the paper's eq. 11): the chance
that k of the n samples, c of them correct, contain a correct one. `g_pass_at_k` is G-Pass@k_tau (arXiv
2412.13147): at least ceil(tau k) of the k samples correct.

`evaluate` is appendix A.2's evaluation (temperature 1.0, top_p 0.95, 32 samples per item) of any task's held-out
items through the task object (tasks.py: its prompt, its reward, its answers): pass@1 and pass@k per group (a maze
size, a reasoning-gym task) and averaged over groups (table 7), the diversity of wrong answers (figure 7a), the
policy entropy, and pass@k curves for k = 1, 2, 4, ..., n from the same samples (Yue et al., 2025) with where two
curves cross (`crossing_k`) and which items each policy solves (`solved_overlap`). It is `score_items` (per-item
records, optionally of one data-parallel shard) then `summarize`.

    python evaluate.py PATH [--task=rg:chain_sum] [--n_test=30] [--out=FILE]   # a checkpoint or HF folder
"""
import hashlib
import json
import math
import os
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from advantage import pass_at_k  # noqa: F401  (re-exported: the estimator lives with the advantages, eq. 11)
from infra.tiny import is_tiny
from rollout import chat_prompt, generate_rollouts

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")  # its config block: the defaults


def prompt_template_for(model, configured=""):
    """The prompt template a policy is trained and evaluated with: `configured`, else "compact" for the tiny
    char-level model and "paper" (through the tokenizer's chat template) for any other."""
    return configured or ("compact" if is_tiny(model) else "paper")


def sampler_for(model, configured="auto"):
    """The sampler a policy samples with (rollout.SAMPLERS): `configured`, or for "auto" our decode loop ("fast")
    for the tiny model and HF generate for any other."""
    return configured if configured != "auto" else ("fast" if is_tiny(model) else "generate")


def group_order(group):
    """Groups sort as maze sizes (numbers) first, then task names: 5 < 7 < 11 < "countdown"."""
    return (not str(group).isdigit(), int(group) if str(group).isdigit() else str(group))


def cached_evaluation(cache_dir, key, weights_dir, write, evaluate_now):
    """(result, path) of an evaluation that depends only on `key` (settings, items; JSON-able) and the weight
    files in `weights_dir`: read from cache_dir if evaluated before (path: the file read), else evaluate_now()
    (path: None), stored there by the process with `write` (atomically: runs of a grid share the folder).
    cache_dir "": no cache."""
    if not cache_dir:
        return evaluate_now(), None
    digest = hashlib.sha256(json.dumps(key).encode())
    for name in sorted(os.listdir(weights_dir)):  # the starting weights: every weight file's bytes
        if name.endswith((".safetensors", ".bin")):
            with open(os.path.join(weights_dir, name), "rb") as f:
                digest.update(f.read())
    path = os.path.join(cache_dir, digest.hexdigest()[:16] + ".json")
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
        result["per_group"] = {int(g) if g.isdigit() else g: value for g, value in result["per_group"].items()}
        return result, path
    result = evaluate_now()
    if write:
        os.makedirs(cache_dir, exist_ok=True)
        with open(path + f".tmp{os.getpid()}", "w") as f:
            json.dump(result, f)
        os.replace(path + f".tmp{os.getpid()}", path)
    return result, None


def curve_ks(n):
    """The k of a pass@k curve from n samples: 1, 2, 4, ... up to n, and n itself."""
    return sorted({2 ** i for i in range(n.bit_length()) if 2 ** i <= n} | {n})


def pass_at_k_curve(n, counts):
    """{k: mean over items of unbiased pass@k} for k in curve_ks(n); counts = correct samples per item."""
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
    """Items solved (at least one correct of n samples) by a only, b only, both and neither.
    counts_*: {item index: correct samples}, over the same items."""
    if set(counts_a) != set(counts_b):
        raise ValueError("solved_overlap needs the correct counts of the same items for both policies")
    solved_a = {index for index, count in counts_a.items() if count > 0}
    solved_b = {index for index, count in counts_b.items() if count > 0}
    return {"a": len(solved_a), "b": len(solved_b), "both": len(solved_a & solved_b),
            "only_a": len(solved_a - solved_b), "only_b": len(solved_b - solved_a),
            "neither": len(set(counts_a) - solved_a - solved_b), "items": len(counts_a)}


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
    """Figure 7a: the number of distinct answers among an item's negative responses divided by their
    count (1 = every wrong answer differs, small = the model repeats the same mistake); None if none."""
    wrong = [answer for answer, reward in zip(answers, rewards) if reward == 0]
    return len(set(wrong)) / len(wrong) if wrong else None


def score_items(model, tokenizer, dataset, template="compact", n_samples=32, ks=(1, 8), max_new_tokens=64,
                temperature=1.0, top_p=0.95, prompts_per_batch=8, seed=0, shard=(0, 1), show_progress=True,
                sampler="fast", *, task):
    """Sample n_samples responses per item of `dataset` (a split of `task`: its `group` column names the group
    each item is reported under); one record per item. `task` (tasks.py) makes the prompts and rewards and
    reads the answers of wrong responses.

    The items go in batches of prompts_per_batch, batch b sampled after torch.manual_seed(seed *
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
        rows = [dataset[j] for j in range(start, min(start + prompts_per_batch, len(dataset)))]
        prompts = [chat_prompt(tokenizer, task.format_prompt(row, template)) for row in rows]
        rollout = generate_rollouts(model, tokenizer, prompts, n_samples, max_new_tokens, temperature, top_p,
                                    sampler=sampler)  # fast or generate: the same samples; vllm: its own
        entropies = (rollout.entropies * rollout.response_mask).sum(-1)  # (B,) per response
        for i, row in enumerate(rows):
            responses = slice(i * n_samples, (i + 1) * n_samples)
            texts = rollout.texts[responses]
            rewards = [task.reward(text, row) for text in texts]
            records.append({
                "index": start + i, "group": row["group"], "correct": int(sum(rewards)),
                **{f"pass@{k}": pass_at_k(n_samples, int(sum(rewards)), k) for k in ks},
                "negative_answer_diversity": distinct_negative_share([task.extract_answer(t) or t for t in texts],
                                                                     rewards),
                "entropy_sum": float(entropies[responses].sum()),
                "tokens": float(rollout.response_mask[responses].sum()),
                "length_sum": float(rollout.response_lengths[responses].sum()),
                "responses": len(texts),
            })
    return records


def summarize(records, n_samples, temperature, top_p):
    """The result dict of `evaluate` from per-item records (from any number of shards, in any order)."""
    records = sorted(records, key=lambda record: record["index"])
    ks = sorted(int(key[5:]) for key in records[0] if key.startswith("pass@"))
    by_group = defaultdict(list)
    for record in records:
        by_group[record["group"]].append(record)
    per_group = {group: {**{f"pass@{k}": sum(r[f"pass@{k}"] for r in rows) / len(rows) for k in ks},
                         "n_items": len(rows)} for group, rows in sorted(by_group.items(), key=lambda item: group_order(item[0]))}
    average = {f"pass@{k}": sum(per_group[g][f"pass@{k}"] for g in per_group) / len(per_group) for k in ks}
    # the pass@k curve, k = 1, 2, 4, ... n, per group and averaged over groups (JSON keys are strings)
    curves = {group: pass_at_k_curve(n_samples, [r["correct"] for r in rows]) for group, rows in by_group.items()}
    average_curve = {str(k): sum(curves[s][k] for s in curves) / len(curves) for k in curve_ks(n_samples)}
    diversity = [r["negative_answer_diversity"] for r in records if r["negative_answer_diversity"] is not None]
    tokens = sum(r["tokens"] for r in records)
    for group in per_group:
        per_group[group]["pass@k_curve"] = {str(k): value for k, value in curves[group].items()}
        per_group[group]["correct"] = {str(r["index"]): r["correct"] for r in by_group[group]}  # per item, of n_samples
    # G-Pass@k_tau (tau 0.5 and 1) at the largest k, averaged over groups like "average"
    g_pass = {f"G-pass@{ks[-1]}_{tau}": sum(sum(g_pass_at_k(n_samples, r["correct"], ks[-1], tau) for r in rows)
                                            / len(rows) for rows in by_group.values()) / len(by_group) for tau in (0.5, 1.0)}
    return {"per_group": per_group, "average": average, "average_pass@k_curve": average_curve, "g_pass": g_pass,
            "correct": {str(r["index"]): r["correct"] for r in records},  # per held-out item, of n_samples
            "negative_answer_diversity": sum(diversity) / len(diversity) if diversity else None,
            "entropy": sum(r["entropy_sum"] for r in records) / max(tokens, 1),
            "response_length": sum(r["length_sum"] for r in records) / sum(r["responses"] for r in records),
            "n_samples": n_samples, "temperature": temperature, "top_p": top_p}


def evaluate(model, tokenizer, dataset, template="compact", n_samples=32, ks=(1, 8), max_new_tokens=64,
             temperature=1.0, top_p=0.95, prompts_per_batch=8, seed=0, show_progress=True, *, task, sampler="fast"):
    """Sample n_samples responses per item of `dataset` (a task's split, see score_items) and score them.

    Returns {"per_group": {group: {"pass@k": ..., "n_items": ...}}, "average": {"pass@k": ...} (the mean
    over groups, like table 7's Avg. column), "negative_answer_diversity", "entropy", "response_length"}.
    Defaults follow appendix A.2: temperature 1.0, top_p 0.95, 32 samples per item.
    Data-parallel: each process calls `score_items` with its shard, then `summarize` on the gathered records.
    """
    records = score_items(model, tokenizer, dataset, template, n_samples, ks, max_new_tokens, temperature, top_p,
                          prompts_per_batch, seed, show_progress=show_progress, task=task, sampler=sampler)
    return summarize(records, n_samples, temperature, top_p)


def format_table(results_by_name):
    """A table like the paper's table 7: rows = runs, columns = groups (maze sizes) and Avg., cells pass@1/pass@k."""
    names = list(results_by_name)
    groups = sorted({group for result in results_by_name.values() for group in result["per_group"]}, key=group_order)
    ks = sorted(int(key[5:]) for key in next(iter(results_by_name.values()))["average"])
    label = lambda group: f"{group}x{group}" if str(group).isdigit() else str(group)[:13]  # noqa: E731 a maze size
    width = max(14, 2 + max(len(name) for name in names))
    header = f"{'':<{width}}" + "".join(f"{label(g):>14}" for g in groups) + f"{'Avg.':>14}"
    lines = [f"pass@{ks[0]}/pass@{ks[-1]} (%)", header]
    for name in names:
        result = results_by_name[name]
        cells = [result["per_group"].get(g) for g in groups] + [result["average"]]
        lines.append(f"{name:<{width}}" + "".join(
            f"{100 * c[f'pass@{ks[0]}']:>7.1f}/{100 * c[f'pass@{ks[-1]}']:<6.1f}" if c else f"{'-':>14}" for c in cells))
    return "\n".join(lines)


def format_curves(results_by_name):
    """The average pass@k curves (k = 1, 2, 4, ... n) of results that have one, a row each, in %."""
    rows = {name: result["average_pass@k_curve"] for name, result in results_by_name.items()
            if "average_pass@k_curve" in result}
    if not rows:
        return ""
    ks = sorted({int(k) for curve in rows.values() for k in curve})
    width = max(14, 2 + max(len(name) for name in rows))
    lines = ["pass@k (%), average over groups; policy entropy (nats/token); wrong-answer diversity (%)",
             f"{'':<{width}}" + "".join(f"{f'k={k}':>7}" for k in ks) + f"{'entropy':>9}{'diversity':>10}"]
    for name, curve in rows.items():
        diversity = results_by_name[name]["negative_answer_diversity"]
        lines.append(f"{name:<{width}}" + "".join(f"{100 * curve[str(k)]:>7.1f}" if str(k) in curve else f"{'-':>7}" for k in ks)
                     + f"{results_by_name[name]['entropy']:>9.3f}" + (f"{100 * diversity:>10.1f}" if diversity is not None else f"{'-':>10}"))
    return "\n".join(lines)


def run_config(path):
    """The settings of the run that made the model folder `path`: train.py's config block (its defaults, read
    without running it), updated by the config a nanopassk checkpoint saved in its trainer state."""
    from infra.checkpoint import TRAINER_STATE, load_trainer_state
    from infra.cli import config_defaults

    config = config_defaults(TRAIN_SCRIPT)
    if os.path.exists(os.path.join(path, TRAINER_STATE)):
        config.update(load_trainer_state(path).get("config", {}))
    return config


def main(argv=None):
    """python evaluate.py PATH [--task=maze] [--sizes=5,7] [--n_test=30] [--n_samples=32] [--k=8] [--sampler=auto]
    [--out=FILE]"""
    import argparse
    import importlib.util

    from infra.checkpoint import load_policy
    from infra.cli import add_debug_option, usage_error
    from tasks import make_task

    parser = argparse.ArgumentParser(description="Evaluate a checkpoint or HF folder on a task's held-out items. "
                                     "Unset options are the run's (a train.py checkpoint's config), else train.py's "
                                     "defaults.")
    parser.add_argument("path", help="a local Hugging Face model folder (a train.py ckpt/ is one)")
    parser.add_argument("--task", help="maze, rg:NAME or math:PATH (tasks.make_task)")
    parser.add_argument("--sizes", help="maze sizes of the test split, e.g. 5,7,9")
    parser.add_argument("--n_test", "--n_mazes", type=int, help="held-out items per group")
    parser.add_argument("--n_samples", type=int, help="samples per item (train.py's eval_samples)")
    parser.add_argument("--k", type=int, help="pass@k besides pass@1 (train.py's eval_k)")
    parser.add_argument("--template", choices=["compact", "paper"], help="default: by model, as train.py picks it")
    parser.add_argument("--max_new_tokens", type=int)
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed")
    parser.add_argument("--split_seed", "--maze_seed", type=int, help="the seed of the train/test splits")
    parser.add_argument("--sampler", choices=("auto", "fast", "generate", "vllm"),
                        help="rollout.py's sampler (default: the run's; auto: fast for the tiny model, else generate); "
                        "vllm: vLLM in this process (requirements-vllm.txt)")
    parser.add_argument("--out", default="")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    # everything the command line can get wrong, before the model is loaded or an item is sampled
    if not os.path.isdir(args.path):
        usage_error(f"model path {args.path!r} is not a folder: pass a local Hugging Face model folder "
                    "(weights must be on disk; no model hub access is assumed)")
    if not os.path.isfile(os.path.join(args.path, "config.json")):
        usage_error(f"{args.path!r} has no config.json: not a Hugging Face model folder")
    config = run_config(args.path)
    task = args.task or config["task"]
    test_sizes, n_test = config["test_sizes"], args.n_test or config["n_test"]
    if args.sizes is not None:
        try:
            test_sizes = tuple(int(size) for size in args.sizes.split(","))
        except ValueError:
            usage_error(f"--sizes={args.sizes!r} must be comma-separated integers, e.g. 5,7,9")
        if any(size < 5 or size % 2 == 0 for size in test_sizes):
            usage_error(f"--sizes={args.sizes!r}: every maze size must be an odd integer >= 5")
        n_test = n_test if isinstance(n_test, int) else min(n_test.values())  # a count per size of other sizes
    n_samples, k = args.n_samples or config["eval_samples"], args.k or config["eval_k"]
    max_new_tokens = args.max_new_tokens or config["max_new_tokens"]
    for name in ("n_test", "n_samples", "max_new_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            usage_error(f"--{name}={value} must be >= 1")
    if not 1 <= k <= n_samples:
        usage_error(f"--k={k} must be between 1 and --n_samples={n_samples}")
    sampler = args.sampler or config["sampler"]
    if sampler == "vllm" and importlib.util.find_spec("vllm") is None:
        from infra.vllm_sampler import INSTALL

        usage_error(INSTALL)
    if args.out and (os.path.isdir(args.out) or not os.path.isdir(os.path.dirname(args.out) or ".")):
        usage_error(f"--out={args.out!r} must be a file in an existing folder")
    try:  # the run's own split: its test items, and prompts as the run saw them (an rg task's compact prompt
        # leaves out what every question of both splits shares)
        task_spec = make_task(task, config["task_options"] if task == config["task"] else {},
                              train_sizes=config["train_sizes"], n_train=config["n_train"], test_sizes=test_sizes,
                              n_test=n_test, seed=config["split_seed"] if args.split_seed is None else args.split_seed)
        test = task_spec.make_splits()["test"]
    except ValueError as error:  # e.g. more mazes of a size than exist
        usage_error(str(error))

    model, tokenizer = load_policy(args.path)
    template = args.template or prompt_template_for(model, config["prompt_template"])
    result = evaluate(model, tokenizer, test, template, n_samples, (1, k), max_new_tokens, seed=args.seed,
                      task=task_spec, sampler=sampler_for(model, sampler))
    print(format_table({"model": result}))
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    from infra.cli import run

    run(main)
