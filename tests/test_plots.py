"""plots.py: the advantage figure from advantage.py alone; records, curves, tables and verdicts from fake runs (no training)."""
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lab import plots
from lab import stats
from advantage import ADVANTAGES, advantage_curves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_advantage_figure_has_every_estimator(tmp_path):
    path = tmp_path / "advantage_curves.png"
    names = plots.plot_advantage_curves(str(path), n_rollouts=8, k=4)
    assert names == list(ADVANTAGES)
    assert path.stat().st_size > 10_000
    plots.plot_advantage_k(str(tmp_path / "k.png"), n_rollouts=8)
    assert (tmp_path / "k.png").exists()


def test_expected_curves_match_advantage_curves_where_deterministic():
    for name in ("pass1", "passk_analytical", "passk_exceeding", "passk_combination", "pass1_no_easy"):
        assert torch.allclose(plots.expected_curves(name, 8, 4), torch.stack(advantage_curves(name, 8, 4)), equal_nan=True)
    # averaged over random orders, full sampling is a mean advantage: positive for correct responses
    a_pos, a_neg, eta = plots.expected_curves("passk_full", 8, 4, draws=20)
    assert math.isnan(a_pos[0]) and math.isnan(a_neg[-1])
    assert (a_pos[1:-1] >= 0).all() and (a_neg[1:-1] <= 0).all() and eta[0] == 0 and eta[-1] == 0


def test_delta_cell_marks_only_paired_changes_that_exclude_zero():
    assert plots.delta_cell([0.02, 0.021, 0.019]) == "2.0 [1.8, 2.2] *"  # consistent over seeds: 95% interval
    assert plots.delta_cell([0.04, -0.01, 0.03]) == "2.0 [-4.6, 8.6]"  # same mean, noisy: not marked
    assert plots.delta_cell([0.05]) == "5.0"  # one seed: no spread, no claim
    assert plots.delta_cell([0.0, 0.0, 0.0]) == "0.0 [0.0, 0.0]"


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
    records, skipped = plots.compact_runs(str(root), every=1)
    return records


def runs_of(records, run):
    return sorted([r for r in records if r["run"] == run], key=lambda r: r["seed"])


def test_normalise_eval_reads_both_key_vintages():
    old = {"per_size": {"5": {"pass@1": 0.5, "n_mazes": 2}}, "average": {"pass@1": 0.5}, "entropy": 0.3}
    new = {"per_group": {"5": {"pass@1": 0.5, "n_items": 2}}, "average": {"pass@1": 0.5}, "entropy": 0.3}
    assert plots.normalise_eval(old) == new and plots.normalise_eval(new) == new


def test_curves_and_table_on_fake_runs(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root / "g" / f"a-seed{seed}", 4, 2, base=0.3 + 0.01 * seed)
        write_run(root / "g" / f"b-seed{seed}", 4, 2, slope=0.02)
    write_run(root / "g" / "a-seedx", 4, 2)  # not a seed folder: skipped
    records, skipped = plots.compact_runs(str(root), every=1)
    assert list(skipped) == [str(root / "g" / "a-seedx")]
    methods = [("A", runs_of(records, "g/a")), ("B", runs_of(records, "g/b")), ("none", [])]
    assert [len(runs) for _, runs in methods] == [2, 2, 0]
    steps, values = plots.eval_curves(methods[0][1], "avg:pass@1")
    assert steps.tolist() == [0, 2, 4] and values.shape == (2, 3)
    assert values[:, -1] == pytest.approx([0.34, 0.35])
    figure = tmp_path / "curves.png"
    plots.plot_comparison(methods, str(figure), title="fake")
    assert figure.stat().st_size > 10_000
    table = plots.per_size_table(methods, methods[0][1])
    lines = table.splitlines()
    assert lines[0].startswith("| method") and "9x9 (unseen)" in lines[0]
    assert lines[2].startswith("| start (step 0) | 0 | 2 |")
    assert "| A | 4 | 2 | " in table and "34.5 ± 0.7 / 69.0 ± 1.4" in table  # avg of seeds 0.34, 0.35
    b_row = next(line for line in lines if line.startswith("| B "))
    # entropy (nats/token), then paired deltas vs A with their 95% t intervals (2 seeds: t = 12.7; diversity unchanged)
    assert b_row.rstrip(" |").endswith("| 0.300 ± 0.000 | 3.5 [-2.9, 9.9] | 7.0 [-5.7, 19.7] | 0.0 [0.0, 0.0] | "
                                       "0.000 [0.000, 0.000]")


def test_compact_records_thin_the_training_curve_and_keep_command_config_wall(tmp_path):
    root = tmp_path / "long"
    command = "python train.py --k=4 --test_sizes=(5, 7) --n_train={5: 150} --seed=0 --out_dir=x --advantage=pass1"
    write_run(root / "g" / "a-seed0", 20, 10, command=command, wall=12.5)
    write_run(root / "g" / "b-seed0", 20, 10, command=command + f" --init_from={root / 'g' / 'a-seed0' / 'ckpt'}")
    records, _ = plots.compact_runs(str(root), every=10)
    a, b = records
    assert (a["grid"], a["run"], a["seed"], a["wall_seconds"], b["wall_seconds"]) == ("long", "g/a", 0, 12.5, None)
    assert a["config"]["k"] == 4 and a["config"]["test_sizes"] == "(5, 7)" and a["config"]["advantage"] == "pass1"
    assert a["command"] == command and [step for step, _ in a["evals"]] == [0, 10, 20]
    assert a["train"]["step"] == [10, 20] and a["train_every"] == 10
    assert a["train"]["reward"] == pytest.approx([0.3 + 0.01 * 5.5, 0.3 + 0.01 * 15.5])  # block means of steps 1-10, 11-20
    assert a["evals"][0][1]["per_group"]["5"]["n_items"] == 2  # the earlier key names, normalised
    assert (a["start_step"], b["start_step"]) == (0, 20)  # b continues from a's last step
    path = tmp_path / "long.jsonl.gz"
    plots.write_records(records, str(path))
    again = plots.load_records(str(path))
    assert [r["run"] for r in again] == ["g/a", "g/b"] and again[0]["train"] == a["train"]
    assert [step for step, _ in again[1]["evals"]] == [0, 10, 20]


def test_plots_main_redraws_from_the_record_alone(tmp_path):
    root = tmp_path / "quick"  # only continual runs, so only one comparison figure (keeps the test fast)
    for seed in (0, 1):
        write_run(root / "continual" / f"pass1-2T-seed{seed}", 8, 2)
        write_run(root / "estimators" / f"passk_analytical-seed{seed}", 4, 2)
        write_run(root / "continual" / f"passk-then-pass1-seed{seed}", 4, 2,
                  command=f"python train.py --init_from={root}/estimators/passk_analytical-seed{seed}/ckpt")
    out, record = tmp_path / "figures", tmp_path / "results" / "quick.jsonl"
    plots.main([str(root), "--out", str(out), "--n_rollouts", "8", "--compact", str(record)])
    names = sorted(os.listdir(out))
    assert names == ["advantage_curves.png", "advantage_curves_k.png", "quick_baselines.png", "quick_continual.png",
                     "quick_estimators.png", "quick_implicit.png", "quick_k.png", "quick_tables.md"]
    tables = (out / "quick_tables.md").read_text()
    assert "### continual" in tables and "| Pass@1 2T | 8 | 2 |" in tables
    assert "| Pass@k T + Pass@1 T | 8 | 2 |" in tables  # its steps start where Pass@k T ended, at 4
    shutil.rmtree(root)  # the raw runs are gone: the record alone redraws the same tables
    again = tmp_path / "again"
    plots.main([str(record), "--out", str(again), "--n_rollouts", "8"])
    assert (again / "quick_tables.md").read_text() == tables
    assert sorted(os.listdir(again)) == names


def test_a_crashed_run_still_plots_and_unusable_runs_are_named(tmp_path, capsys):
    root = tmp_path / "quick"
    for seed in (0, 1):
        write_run(root / "continual" / f"pass1-2T-seed{seed}", 8, 2)
    crashed = root / "continual" / "pass1-2T-seed0" / "metrics.jsonl"
    with open(crashed, "a") as f:
        f.write('{"step": 9, "reward": 0.')  # the crash cut the last line off mid-write
    write_run(root / "stray" / "run", 4, 2)  # not a <group>/<name>-seed<N> folder
    write_run(root / "continual" / "pass1-2T-seedx", 4, 2)
    write_run(root / "estimators" / "unknown-seed0", 4, 2)  # no run plots.py compares
    (root / "estimators" / "pass1-seed0").mkdir()
    (root / "estimators" / "pass1-seed0" / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')  # no eval yet
    (root / "estimators" / "pass1-seed1").mkdir()
    (root / "estimators" / "pass1-seed1" / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')

    out = tmp_path / "figures"
    plots.main([str(root), "--out", str(out), "--n_rollouts", "8"])
    assert sorted(os.listdir(out)) == ["advantage_curves.png", "advantage_curves_k.png", "quick_continual.png",
                                       "quick_tables.md"]
    assert "| Pass@1 2T | 8 | 2 |" in (out / "quick_tables.md").read_text()  # both seeds, the crashed one too
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings[0] == (f"warning: {crashed}: skipped its last line 14, not a complete record "
                           "(cut off by a crash?): '{\"step\": 9, \"reward\": 0.'")  # once, however often it is read
    skipped = {line.split(": ")[1].removeprefix(f"skipped {root}/"): line.split(": ", 2)[2] for line in warnings[1:]}
    layout = "not a <group>/<name>-seed<N> run folder as experiments/maze.py writes"
    assert skipped == {
        "continual/pass1-2T-seedx": layout, "stray/run": layout,
        "estimators/pass1-seed0": "no held-out evaluation in its metrics.jsonl yet",
        "estimators/pass1-seed1": f"unreadable: {root}/estimators/pass1-seed1/metrics.jsonl line 2 is not a metrics "
                                  "record: 'not json'",
        "estimators/unknown-seed0": "'estimators/unknown' is not a run that plots.py compares"}


def test_load_run_skips_only_a_cut_off_last_line(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "eval": {"average": {}}}\n{"st')
    train, evals = plots.load_run(str(tmp_path))
    assert train == [{"step": 1, "reward": 0.5}] and evals == [(2, {"average": {}})]
    assert "skipped its last line 3" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n[1, 2]\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a metrics record: '\[1, 2\]'"):
        plots.load_run(str(tmp_path))


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


def test_passk_curve_table_pairs_by_seed_and_crosses_on_the_mean_curve(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_curve_run(root / "g" / f"a-seed{seed}", [4, 0], [6, 0])
        write_curve_run(root / "g" / f"b-seed{seed}", [4, 0], [4, 2 + seed])
    records = records_of(root)
    methods = [("A", runs_of(records, "g/a")), ("B", runs_of(records, "g/b"))]
    table = plots.passk_curve_table(methods, ks=(1, 8))
    header, _, a_row, b_row = table.splitlines()
    assert "| G-pass@4 τ=0.5 / G-pass@4 τ=1.0 |" in header and "solved of 2 at n=8" in header
    assert "mean curve against the start's (seeds whose own curve falls below)" in header
    a_cells = [c.strip() for c in a_row.strip("|").split("|")]
    b_cells = [c.strip() for c in b_row.strip("|").split("|")]
    # A: pass@1 = (6/8 + 0) / 2; pass@8 = 1/2; G-pass@4 tau=1: C(6,4)/C(8,4) / 2 = 15/70/2
    assert a_cells[:4] == ["A", "2", "37.5 ± 0.0", "50.0 ± 0.0"] and a_cells[4] == "0.0 [0.0, 0.0]"
    assert a_cells[7].endswith(f"/ {100 * 15 / 70 / 2:.1f} ± 0.0")
    # A's curve: above the start's at k = 1 (6/8 vs 4/8 on item 0), equal from k = 4 on (both items 0 solved)
    starts = [{k: float(v) for k, v in plots.curve_of(r["evals"][0][1]).items()} for r in methods[0][1]]
    finals = [{k: float(v) for k, v in plots.curve_of(r["evals"][-1][1]).items()} for r in methods[0][1]]
    assert a_cells[8] == f"{plots.mean_curve_crossing(starts, finals)} (2/2)"
    # B against A by seed: pass@1 (4 + 2 + s)/16 - 6/16 = s/16; pass@8 1 - 1/2 = +50 in both seeds
    assert b_cells[5] == plots.delta_cell([0 / 16, 1 / 16]) and b_cells[6] == "50.0 [50.0, 50.0] *"
    assert b_cells[8] == "above at every k (0/2)"
    assert b_cells[-1] == "1.0 / 2.0 / 1.0"  # solved: start 1 item, B 2, both 1
    unseen = plots.passk_curve_table(methods, ks=(1, 8), groups=[5])
    assert "G-pass" not in unseen  # stored over all groups only


def test_mean_curve_crossing_is_not_a_mean_of_crossings():
    start = {1: 0.5, 2: 0.6, 4: 0.7}
    early, late = {1: 0.6, 2: 0.55, 4: 0.6}, {1: 0.9, 2: 0.9, 4: 0.9}  # one seed crosses between 1 and 2, one never
    assert plots.mean_curve_crossing([start, start], [early, late]) == "above at every k"
    assert plots.mean_curve_crossing([start], [{1: 0.4, 2: 0.5, 4: 0.6}]) == "below at every k"
    assert plots.mean_curve_crossing([start], [early]) == "falls below at k = 1.6"  # gap +0.1, -0.05: 2^(2/3) = 1.59
    assert plots.mean_curve_crossing([start], [{1: 0.4, 2: 0.7, 4: 0.8}]) == "rises above at k = 1.4"


def test_plots_main_on_a_reasoning_gym_task_tree(tmp_path):
    root = tmp_path / "tasks"  # experiments/maze.py --tasks: one group per task, its items in place of maze sizes
    for seed in (0, 1):
        write_curve_run(root / "countdown" / f"pass1-seed{seed}", [4, 0], [6, 0], group="countdown")
        write_curve_run(root / "countdown" / f"passk_analytical-seed{seed}", [4, 0], [4, 2 + seed], group="countdown")
    out = tmp_path / "figures"
    plots.main([str(root), "--out", str(out), "--n_rollouts", "8"])
    assert {"tasks_countdown.png", "tasks_countdown_passk.png", "tasks_tables.md"} <= set(os.listdir(out))
    tables = (out / "tasks_tables.md").read_text()
    assert "| countdown p@1 / p@8 |" in tables and "Held-out items:" in tables and "unseen" not in tables
    passk_row = next(line for line in tables.splitlines() if line.startswith("| Pass@k analytical | 2 |"))
    assert "50.0 [50.0, 50.0] *" in passk_row  # its pass@8 against Pass@1, paired by seed


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


def test_verdicts_correct_for_multiplicity_and_test_equivalence():
    start = {"5": [2, 2, 2, 2], "9": [0, 1, 0, 0]}
    records = []
    for seed in range(6):
        records.append(fake_record("e/a", seed, start, {"5": [2, 2, 2, 2 + seed % 2], "9": [0, 1, 0, 0]}))
        # b: much better pass@8 on every item and seed; pass@1 the same as a within a few tenths of a point
        records.append(fake_record("e/b", seed, start, {"5": [4, 4, 4, 4 + seed % 2], "9": [1, 1, 1, 1]},
                                   entropy=0.3 + 0.01 * (seed % 2)))
    family = [("t", "g", "e/b", "e/a", "p@8", None, None), ("t", "g", "e/b", "e/a", "entropy", None, None),
              ("t", "g", "e/b", "e/a", "p@1", ["9"], None), ("t", "g", "e/a", "e/a", "p@1", None, 0.02),
              ("t", "g", "e/b", "e/a", "p@1", None, 0.02)]
    results = plots.evaluate_comparisons(records, family, replicates=500)
    raw = [r["t"]["p"] for r in results[:3]]
    assert [r["p_adjusted"] for r in results[:3]] == pytest.approx(list(stats.benjamini_hochberg(raw)))
    holm = plots.evaluate_comparisons(records, family, replicates=500, correction="holm")
    assert [r["p_adjusted"] for r in holm[:3]] == pytest.approx(list(stats.holm(raw)))
    assert plots.verdict(results[0]) == "shown (+)" and results[0]["boot"]["lo"] > 0
    assert plots.verdict(results[1]) == "not shown"  # entropy +0.005 with a spread: not significant
    assert plots.verdict(results[3]) == "within ±2"  # a method against itself: exactly equivalent
    assert results[4]["t"]["mean"] > 0.02 and plots.verdict(results[4]) == "not shown"  # b's pass@1 is 6+ points up
    table = plots.verdict_table(results)
    assert table.count("\n") == 6 and "| e/b - e/a |" not in table and "| b - a | p@8 | 6 |" in table
    assert "TOST" in table and "(seeds only)" in table and "p@1 (9)" in table


def test_replace_block_rewrites_only_the_marked_part(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- verdicts -->\nold\n<!-- /verdicts -->\nrest\n")
    plots.replace_block(str(page), "verdicts", "| new |")
    assert page.read_text() == "intro\n<!-- verdicts -->\n| new |\n<!-- /verdicts -->\nrest\n"
    with pytest.raises(ValueError):
        plots.replace_block(str(page), "family", "x")


def test_the_verdict_families_name_runs_of_the_committed_records():
    for path in ("experiments/results/long.jsonl", "experiments/results/tasks.jsonl"):
        assert os.path.exists(os.path.join(ROOT, path)), path
    runs = {"long": {run for entries in plots.LONG.values() for _, run in entries}}
    for _, grid, b, a, metric, groups, margin in plots.exploratory_family():
        if grid == "long":
            assert b.removeprefix("start:") in runs["long"] and a.removeprefix("start:") in runs["long"]
        assert metric in ("p@1", "p@8", "p@128") or metric in plots.METRICS


def primary_records(seeds=4):
    """Records of the primary grid: every method but Pass@1 and the baselines solves a few more items."""
    start = {"5": [2, 2], "9": [0, 1, 0, 0, 0, 0], "11": [0, 0]}
    records = []
    for seed in range(seeds):
        for _, name in plots.PRIMARY_METHODS + plots.PRIMARY_BASELINES:
            better = name not in ["pass1"] + [run for _, run in plots.PRIMARY_BASELINES]
            end = {"5": [2, 2 + seed % 2], "9": [int(better) + seed % 2, 1, 0, 0, int(better), 0], "11": [0, int(better)]}
            records.append(fake_record(f"primary/{name}", seed, start, end, n=128, grid="primary"))
    return records


def test_the_primary_family_is_holm_corrected_and_pools_items():
    records = primary_records()
    tables = plots.verdict_tables(records, replicates=200)
    assert set(tables) == {"primary", "primary-exploratory"}
    exploratory = tables["primary-exploratory"].splitlines()[2:]
    assert len(exploratory) == len(plots.PRIMARY_EXPLORATORY) == 24 and "BH q" in tables["primary-exploratory"]
    assert exploratory[0].startswith("| precondition: Pass@1 narrows | pass1 - start of pass1 | p@128 (all items) | 4 |")
    assert "| passk_analytical - entropy0.1 | p@8 (all items) | 4 |" in tables["primary-exploratory"]
    rows = tables["primary"].splitlines()[2:]
    assert len(rows) == 20 and rows[0].startswith("| H1 | passk_analytical - pass1 | p@8 (all items) | 4 |")
    assert "Holm p" in tables["primary"] and rows[10].startswith("| H11 |") and "p@128 (9, 11)" in rows[10]
    results = plots.evaluate_comparisons(records, plots.PRIMARY_FAMILY, replicates=200, correction="holm")
    index = {}
    for record in records:
        index.setdefault(record["run"], {})[record["seed"]] = record
    seeds, deltas, items, weights = plots.comparison_values(index, "primary/pkpo", "primary/pass1", "p@8", "pooled")
    assert weights == {5: 2, 9: 6, 11: 2}  # items per group: the mean over every held-out item
    per_item = np.concatenate([items[g] for g in (5, 9, 11)], axis=1)
    assert deltas == pytest.approx(list(per_item.mean(1)))
    assert results[3]["t"]["mean"] == pytest.approx(np.mean(deltas))  # H4 is PKPO's pass@8
    assert all("p_adjusted" in r["tost"] for r in results[15:])


def test_plots_main_on_one_out_dir(tmp_path, capsys):
    write_run(tmp_path / "out", 4, 2)
    plots.main([str(tmp_path / "out"), "--out", str(tmp_path / "figures"), "--n_rollouts", "8"])
    assert (tmp_path / "figures" / "out_curves.png").stat().st_size > 10_000
    assert "| start (step 0) | 0 | 1 |" in capsys.readouterr().out


def test_verdicts_go_into_whichever_written_file_has_their_block(tmp_path):
    from infra.cli import CommandError

    record = tmp_path / "primary.jsonl"
    plots.write_records(primary_records(seeds=3), str(record))
    family, other = tmp_path / "results.md", tmp_path / "other.md"
    family.write_text("# r\n<!-- primary -->\n<!-- /primary -->\nend\n")
    other.write_text("<!-- primary-exploratory -->\nold\n<!-- /primary-exploratory -->\n")
    plots.main(["--verdicts", str(record), "--write", str(family), "--write", str(other)])
    assert "| H1 | passk_analytical - pass1 |" in family.read_text() and family.read_text().endswith("end\n")
    assert "| precondition: Pass@1 narrows |" in other.read_text() and "old" not in other.read_text()
    family.write_text("<!-- primary -->\n<!-- /primary -->\n")
    with pytest.raises(CommandError, match="no --write file has a <!-- primary-exploratory -->"):
        plots.main(["--verdicts", str(record), "--write", str(family)])
    assert family.read_text() == "<!-- primary -->\n<!-- /primary -->\n"  # nothing written: all or none
    with pytest.raises(CommandError, match="is not a markdown file"):
        plots.main(["--verdicts", str(record), "--write", str(tmp_path / "missing.md")])
