"""plots.py: the advantage figure from advantage.py alone, and curves/tables from fake metrics (no training)."""
import json
import math
import os

import pytest
import torch

import plots
from advantage import ADVANTAGES, advantage_curves


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


def write_run(path, steps, evals, base=0.3, slope=0.01):
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


def test_curves_and_table_on_fake_runs(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root / "g" / f"a-seed{seed}", 4, 2, base=0.3 + 0.01 * seed)
        write_run(root / "g" / f"b-seed{seed}", 4, 2, slope=0.02)
    write_run(root / "g" / "a-seedx", 4, 2)  # not a seed folder: ignored
    methods = [("A", plots.seed_dirs(str(root), "g/a"), 0), ("B", plots.seed_dirs(str(root), "g/b"), 0),
               ("none", [], 0)]
    assert [len(dirs) for _, dirs, _ in methods] == [2, 2, 0]
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


def test_plots_main_on_a_runs_tree(tmp_path):
    root = tmp_path / "quick"  # only continual runs, so only one comparison figure (keeps the test fast)
    for seed in (0, 1):
        write_run(root / "continual" / f"pass1-2T-seed{seed}", 8, 2)
        write_run(root / "continual" / f"passk-then-pass1-seed{seed}", 4, 2)
    out = tmp_path / "figures"
    plots.main([str(root), "--out", str(out), "--steps", "4", "--n_rollouts", "8"])
    names = sorted(os.listdir(out))
    assert names == ["advantage_curves.png", "advantage_curves_k.png", "quick_continual.png", "quick_tables.md"]
    tables = (out / "quick_tables.md").read_text()
    assert "### continual" in tables and "| Pass@1 2T | 8 | 2 |" in tables
    assert "| Pass@k T + Pass@1 T | 8 | 2 |" in tables  # its steps are offset by T = 4


def test_estimator_gradients_figure_and_flag(tmp_path):
    path = tmp_path / "estimator_gradients.png"
    mu = [0.1, 0.4, 0.7]
    results = plots.plot_estimator_gradients(str(path), n_rollouts=6, k=2, mu_values=mu)
    assert list(results) == list(ADVANTAGES) and path.stat().st_size > 10_000
    for name, (mean, variance) in results.items():
        assert mean.shape == variance.shape == (3,) and (variance >= 0).all(), name
    assert results["pkpo"][0] == pytest.approx([2 * (1 - m) for m in mu], abs=1e-9)  # unbiased for pass@2
    assert results["best_of_n"][0] == pytest.approx([6 * (1 - m) ** 5 for m in mu], abs=1e-9)  # pass@n
    assert results["psr"][0] == pytest.approx([6.0] * 3, abs=1e-9)  # n x d pass@1/dmu
    out = tmp_path / "figures"
    plots.main(["--estimator-gradients", "--out", str(out), "--n_rollouts", "4", "--k", "2"])
    assert sorted(os.listdir(out)) == ["estimator_gradients.png"]


def test_unlikeliness_curves_average_random_likelihood_ranks():
    a_pos, a_neg, eta = plots.expected_curves("unlikeliness", 8, 4, draws=20)
    assert math.isnan(a_pos[0]) and math.isnan(a_neg[-1]) and eta[0] == 0
    assert (a_pos[1:-1] > 0).all() and (a_neg[1:-1] < 0).all()  # on average correct responses still gain
    assert eta[-1] > 0  # all correct: the likelihood ranks alone separate the responses


def test_a_crashed_run_still_plots_and_unusable_runs_are_named(tmp_path, capsys):
    root = tmp_path / "quick"
    for seed in (0, 1):
        write_run(root / "continual" / f"pass1-2T-seed{seed}", 8, 2)
    crashed = root / "continual" / "pass1-2T-seed0" / "metrics.jsonl"
    with open(crashed, "a") as f:
        f.write('{"step": 9, "reward": 0.')  # the crash cut the last line off mid-write
    write_run(root / "stray" / "run", 4, 2)  # not a <group>/<name>-seed<N> folder
    write_run(root / "continual" / "pass1-2T-seedx", 4, 2)
    write_run(root / "estimators" / "unknown-seed0", 4, 2)  # no run of experiments/maze.py
    (root / "estimators" / "pass1-seed0").mkdir()
    (root / "estimators" / "pass1-seed0" / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')  # no eval yet
    (root / "estimators" / "pass1-seed1").mkdir()
    (root / "estimators" / "pass1-seed1" / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')

    out = tmp_path / "figures"
    plots.main([str(root), "--out", str(out), "--steps", "4", "--n_rollouts", "8"])
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
        "estimators/unknown-seed0": "'estimators/unknown' is not a run that experiments/maze.py compares"}


def test_load_run_skips_only_a_cut_off_last_line(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "eval": {"average": {}}}\n{"st')
    train, evals = plots.load_run(str(tmp_path))
    assert train == [{"step": 1, "reward": 0.5}] and evals == [(2, {"average": {}})]
    assert "skipped its last line 3" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n[1, 2]\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a metrics record: '\[1, 2\]'"):
        plots.load_run(str(tmp_path))


def write_curve_run(path, start_correct, final_correct, n=8, group="5"):
    """A run with pass@k curves at step 0 and step 4, from per-item correct counts out of n: mazes of size 5, or
    the items of one reasoning-gym task (group = its name)."""
    from evaluate import g_pass_at_k, pass_at_k

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step, counts in ((0, start_correct), (4, final_correct)):
            curve = {str(k): sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in (1, 2, 4, 8)}
            correct = {str(i): c for i, c in enumerate(counts)}
            g_pass = {f"G-pass@4_{tau}": sum(g_pass_at_k(n, c, 4, tau) for c in counts) / len(counts) for tau in (0.5, 1.0)}
            f.write(json.dumps({"step": step, "eval": {
                "per_size": {group: {"pass@1": curve["1"], "pass@8": curve["8"], "n_mazes": 2, "pass@k_curve": curve,
                                   "correct": correct}},
                "average": {"pass@1": curve["1"], "pass@8": curve["8"]}, "average_pass@k_curve": curve,
                "correct": correct, "g_pass": g_pass, "n_samples": n,
                "negative_answer_diversity": 0.3, "entropy": 0.3, "response_length": 5.0}}) + "\n")


def test_passk_curve_table_pairs_by_seed_and_reports_g_pass(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_curve_run(root / "g" / f"a-seed{seed}", [4, 0], [6, 0])
        write_curve_run(root / "g" / f"b-seed{seed}", [4, 0], [4, 2 + seed])
    methods = [("A", plots.seed_dirs(str(root), "g/a"), 0), ("B", plots.seed_dirs(str(root), "g/b"), 0)]
    table = plots.passk_curve_table(methods, ks=(1, 8))
    header, _, a_row, b_row = table.splitlines()
    assert "| G-pass@4 τ=0.5 / G-pass@4 τ=1.0 |" in header and "solved of 2 at n=8" in header
    a_cells = [c.strip() for c in a_row.strip("|").split("|")]
    b_cells = [c.strip() for c in b_row.strip("|").split("|")]
    # A: pass@1 = (6/8 + 0) / 2; pass@8 = 1/2; G-pass@4 tau=1: C(6,4)/C(8,4) / 2 = 15/70/2
    assert a_cells[:4] == ["A", "2", "37.5 ± 0.0", "50.0 ± 0.0"] and a_cells[4] == "0.0 [0.0, 0.0]"
    assert a_cells[7].endswith(f"/ {100 * 15 / 70 / 2:.1f} ± 0.0")
    # B against A by seed: pass@1 (4 + 2 + s)/16 - 6/16 = s/16; pass@8 1 - 1/2 = +50 in both seeds
    assert b_cells[5] == plots.delta_cell([0 / 16, 1 / 16]) and b_cells[6] == "50.0 [50.0, 50.0] *"
    assert b_cells[-1] == "1.0 / 2.0 / 1.0"  # solved: start 1 maze, B 2, both 1
    unseen = plots.passk_curve_table(methods, ks=(1, 8), sizes=[5])
    assert "G-pass" not in unseen  # stored over all sizes only


def test_plots_main_on_a_reasoning_gym_task_tree(tmp_path):
    root = tmp_path / "tasks"  # experiments/maze.py --tasks: one group per task, its items in place of maze sizes
    for seed in (0, 1):
        write_curve_run(root / "countdown" / f"pass1-seed{seed}", [4, 0], [6, 0], group="countdown")
        write_curve_run(root / "countdown" / f"passk_analytical-seed{seed}", [4, 0], [4, 2 + seed], group="countdown")
    out = tmp_path / "figures"
    plots.main([str(root), "--out", str(out), "--steps", "4", "--n_rollouts", "8"])
    assert {"tasks_countdown.png", "tasks_countdown_passk.png", "tasks_tables.md"} <= set(os.listdir(out))
    tables = (out / "tasks_tables.md").read_text()
    assert "| countdown p@1 / p@8 |" in tables and "Held-out items:" in tables and "unseen" not in tables
    passk_row = next(line for line in tables.splitlines() if line.startswith("| Pass@k analytical | 2 |"))
    assert "50.0 [50.0, 50.0] *" in passk_row  # its pass@8 against Pass@1, paired by seed
