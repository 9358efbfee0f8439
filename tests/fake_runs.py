"""Fake runs and records for the lab's tests (tests/test_records.py, test_tables.py, test_verdicts.py,
test_plots.py): train.py out_dirs with metrics.jsonl written by hand, and records built in memory."""
import json
import os
from pathlib import Path

from lab.grids import PRIMARY_BASELINES, PRIMARY_METHODS
from lab.records import compact_runs


def write_run(path, steps, evals, base=0.3, slope=0.01, command=None, wall=None):
    """A fake out_dir with eval.json's earlier key names (per_size, n_mazes), a command.txt and a wall.json."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step in range(steps + 1):
            if step:
                f.write(json.dumps({"step": step, "reward": base + slope * step, "pass@1": 0.3, "entropy": 0.3}) + "\n")
            if step % evals == 0:
                value = base + slope * step
                per_size = {str(s): {"pass@1": value / s * 5, "pass@8": 2 * value / s * 5, "n_mazes": 2} for s in (5, 7, 9)}
                f.write(json.dumps({"step": step, "eval": {
                    "per_size": per_size, "average": {"pass@1": value, "pass@8": 2 * value},
                    "negative_answer_diversity": 0.3, "entropy": 0.3}}) + "\n")
    if command:
        (Path(path) / "command.txt").write_text(command + "\n")
    if wall:
        (Path(path) / "wall.json").write_text(json.dumps({"wall_seconds": wall}))


def records_of(root):
    records, skipped = compact_runs(str(root), every=1)
    return records


def runs_of(records, run):
    return sorted([r for r in records if r["run"] == run], key=lambda r: r["seed"])


def write_curve_run(path, start_correct, final_correct, n=8, group="5"):
    """A run with pass@k curves at step 0 and step 4, from per-item correct counts out of n (evaluate.py's current
    key names): mazes of size 5, or the items of one reasoning-gym task (group = its name)."""
    from evaluate import g_pass_at_k, pass_at_k

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step, counts in ((0, start_correct), (4, final_correct)):
            curve = {str(k): sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in (1, 2, 4, 8)}
            correct = {str(i): c for i, c in enumerate(counts)}
            g_pass = {f"G-pass@4_{tau}": sum(g_pass_at_k(n, c, 4, tau) for c in counts) / len(counts) for tau in (0.5, 1.0)}
            f.write(json.dumps({"step": step, "eval": {
                "per_group": {group: {"pass@1": curve["1"], "pass@8": curve["8"], "n_items": 2, "pass@k_curve": curve,
                                      "correct": correct}},
                "average": {"pass@1": curve["1"], "pass@8": curve["8"]}, "average_pass@k_curve": curve,
                "correct": correct, "g_pass": g_pass, "n_samples": n,
                "negative_answer_diversity": 0.3, "entropy": 0.3, "response_length": 5.0}}) + "\n")


def fake_record(run, seed, start, end, n=8, grid="g", entropy=0.3):
    """A record with per-item correct counts (two groups of items) at step 0 and at its end."""
    from evaluate import pass_at_k

    ks = [2 ** i for i in range(n.bit_length()) if 2 ** i <= n]

    def evaluation(counts):
        groups = {g: {"correct": {str(10 * i + j): c for j, c in enumerate(cs)},
                      "pass@k_curve": {str(k): sum(pass_at_k(n, c, k) for c in cs) / len(cs) for k in ks}}
                  for i, (g, cs) in enumerate(counts.items())}
        curve = {str(k): sum(g["pass@k_curve"][str(k)] for g in groups.values()) / len(groups) for k in ks}
        return {"per_group": groups, "average_pass@k_curve": curve, "n_samples": n, "entropy": entropy,
                "negative_answer_diversity": 0.2}

    return dict(grid=grid, run=run, seed=seed, start_step=0, evals=[(0, evaluation(start)), (4, evaluation(end))],
                train_every=1, train={"step": [1], "reward": [0.5]})


def primary_records(seeds=4):
    """Records of the primary grid: every method but Pass@1 and the baselines solves a few more items."""
    start = {"5": [2, 2], "9": [0, 1, 0, 0, 0, 0], "11": [0, 0]}
    records = []
    for seed in range(seeds):
        for _, name in PRIMARY_METHODS + PRIMARY_BASELINES:
            better = name not in ["pass1"] + [run for _, run in PRIMARY_BASELINES]
            end = {"5": [2, 2 + seed % 2], "9": [int(better) + seed % 2, 1, 0, 0, int(better), 0], "11": [0, int(better)]}
            records.append(fake_record(f"primary/{name}", seed, start, end, n=128, grid="primary"))
    return records
