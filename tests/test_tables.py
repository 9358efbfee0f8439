"""lab/tables.py: paired changes and their intervals, the per-group table and the pass@k curve table, on fake runs."""
import pytest

from fake_runs import records_of, runs_of, write_curve_run, write_run
from lab import figures
from lab.records import compact_runs, curve_of, eval_curves
from lab.tables import delta_cell, mean_curve_crossing, passk_curve_table, per_size_table


def test_delta_cell_marks_only_paired_changes_that_exclude_zero():
    assert delta_cell([0.02, 0.021, 0.019]) == "2.0 [1.8, 2.2] *"  # consistent over seeds: 95% interval
    assert delta_cell([0.04, -0.01, 0.03]) == "2.0 [-4.6, 8.6]"  # same mean, noisy: not marked
    assert delta_cell([0.05]) == "5.0"  # one seed: no spread, no claim
    assert delta_cell([0.0, 0.0, 0.0]) == "0.0 [0.0, 0.0]"


def test_curves_and_table_on_fake_runs(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root / "g" / f"a-seed{seed}", 4, 2, base=0.3 + 0.01 * seed)
        write_run(root / "g" / f"b-seed{seed}", 4, 2, slope=0.02)
    write_run(root / "g" / "a-seedx", 4, 2)  # not a seed folder: skipped
    records, skipped = compact_runs(str(root), every=1)
    assert list(skipped) == [str(root / "g" / "a-seedx")]
    methods = [("A", runs_of(records, "g/a")), ("B", runs_of(records, "g/b")), ("none", [])]
    assert [len(runs) for _, runs in methods] == [2, 2, 0]
    steps, values = eval_curves(methods[0][1], "avg:pass@1")
    assert steps.tolist() == [0, 2, 4] and values.shape == (2, 3)
    assert values[:, -1] == pytest.approx([0.34, 0.35])
    figure = tmp_path / "curves.png"
    figures.plot_comparison(methods, str(figure), title="fake")
    assert figure.stat().st_size > 10_000
    table = per_size_table(methods, methods[0][1])
    lines = table.splitlines()
    assert lines[0].startswith("| method") and "9x9 (unseen)" in lines[0]
    assert lines[2].startswith("| start (step 0) | 0 | 2 |")
    assert "| A | 4 | 2 | " in table and "34.5 ± 0.7 / 69.0 ± 1.4" in table  # avg of seeds 0.34, 0.35
    b_row = next(line for line in lines if line.startswith("| B "))
    # entropy (nats/token), then paired deltas vs A with their 95% t intervals (2 seeds: t = 12.7; diversity unchanged)
    assert b_row.rstrip(" |").endswith("| 0.300 ± 0.000 | 3.5 [-2.9, 9.9] | 7.0 [-5.7, 19.7] | 0.0 [0.0, 0.0] | "
                                       "0.000 [0.000, 0.000]")


def test_passk_curve_table_pairs_by_seed_and_crosses_on_the_mean_curve(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_curve_run(root / "g" / f"a-seed{seed}", [4, 0], [6, 0])
        write_curve_run(root / "g" / f"b-seed{seed}", [4, 0], [4, 2 + seed])
    records = records_of(root)
    methods = [("A", runs_of(records, "g/a")), ("B", runs_of(records, "g/b"))]
    table = passk_curve_table(methods, ks=(1, 8))
    header, _, a_row, b_row = table.splitlines()
    assert "| G-pass@4 τ=0.5 / G-pass@4 τ=1.0 |" in header and "solved of 2 at n=8" in header
    assert "mean curve against the start's (seeds whose own curve falls below)" in header
    a_cells = [c.strip() for c in a_row.strip("|").split("|")]
    b_cells = [c.strip() for c in b_row.strip("|").split("|")]
    # A: pass@1 = (6/8 + 0) / 2; pass@8 = 1/2; G-pass@4 tau=1: C(6,4)/C(8,4) / 2 = 15/70/2
    assert a_cells[:4] == ["A", "2", "37.5 ± 0.0", "50.0 ± 0.0"] and a_cells[4] == "0.0 [0.0, 0.0]"
    assert a_cells[7].endswith(f"/ {100 * 15 / 70 / 2:.1f} ± 0.0")
    # A's curve: above the start's at k = 1 (6/8 vs 4/8 on item 0), equal from k = 4 on (both items 0 solved)
    starts = [{k: float(v) for k, v in curve_of(r["evals"][0][1]).items()} for r in methods[0][1]]
    finals = [{k: float(v) for k, v in curve_of(r["evals"][-1][1]).items()} for r in methods[0][1]]
    assert a_cells[8] == f"{mean_curve_crossing(starts, finals)} (2/2)"
    # B against A by seed: pass@1 (4 + 2 + s)/16 - 6/16 = s/16; pass@8 1 - 1/2 = +50 in both seeds
    assert b_cells[5] == delta_cell([0 / 16, 1 / 16]) and b_cells[6] == "50.0 [50.0, 50.0] *"
    assert b_cells[8] == "above at every k (0/2)"
    assert b_cells[-1] == "1.0 / 2.0 / 1.0"  # solved: start 1 item, B 2, both 1
    unseen = passk_curve_table(methods, ks=(1, 8), groups=[5])
    assert "G-pass" not in unseen  # stored over all groups only


def test_mean_curve_crossing_is_not_a_mean_of_crossings():
    start = {1: 0.5, 2: 0.6, 4: 0.7}
    early, late = {1: 0.6, 2: 0.55, 4: 0.6}, {1: 0.9, 2: 0.9, 4: 0.9}  # one seed crosses between 1 and 2, one never
    assert mean_curve_crossing([start, start], [early, late]) == "above at every k"
    assert mean_curve_crossing([start], [{1: 0.4, 2: 0.5, 4: 0.6}]) == "below at every k"
    assert mean_curve_crossing([start], [early]) == "falls below at k = 1.6"  # gap +0.1, -0.05: 2^(2/3) = 1.59
    assert mean_curve_crossing([start], [{1: 0.4, 2: 0.7, 4: 0.8}]) == "rises above at k = 1.4"
