"""lab/plots.py, the lab's command: figures and tables redrawn from a record alone, unusable runs named, one
out_dir, verdicts written into markdown blocks (no training)."""
import os
import shutil

import pytest

from fake_runs import primary_records, write_curve_run, write_run
from lab import plots
from lab.records import write_records


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
        "estimators/unknown-seed0": "'estimators/unknown' is not a run that lab/grids.py compares"}


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


def test_replace_block_rewrites_only_the_marked_part(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- verdicts -->\nold\n<!-- /verdicts -->\nrest\n")
    plots.replace_block(str(page), "verdicts", "| new |")
    assert page.read_text() == "intro\n<!-- verdicts -->\n| new |\n<!-- /verdicts -->\nrest\n"
    with pytest.raises(ValueError):
        plots.replace_block(str(page), "family", "x")


def test_plots_main_on_one_out_dir(tmp_path, capsys):
    write_run(tmp_path / "out", 4, 2)
    plots.main([str(tmp_path / "out"), "--out", str(tmp_path / "figures"), "--n_rollouts", "8"])
    assert (tmp_path / "figures" / "out_curves.png").stat().st_size > 10_000
    assert "| start (step 0) | 0 | 1 |" in capsys.readouterr().out


def test_verdicts_go_into_whichever_written_file_has_their_block(tmp_path):
    from infra.cli import CommandError

    record = tmp_path / "primary.jsonl"
    write_records(primary_records(seeds=3), str(record))
    family, other = tmp_path / "results.md", tmp_path / "other.md"
    family.write_text("# r\n<!-- primary -->\n<!-- /primary -->\n<!-- primary-familywise -->\n<!-- /primary-familywise -->\nend\n")
    other.write_text("<!-- primary-exploratory -->\nold\n<!-- /primary-exploratory -->\n")
    plots.main(["--verdicts", str(record), "--write", str(family), "--write", str(other)])
    assert "| H1 | passk_analytical - pass1 |" in family.read_text() and family.read_text().endswith("end\n")
    assert "familywise error over all 20 claims" in family.read_text()
    assert "| precondition: Pass@1 narrows |" in other.read_text() and "old" not in other.read_text()
    family.write_text("<!-- primary -->\n<!-- /primary -->\n<!-- primary-familywise -->\n<!-- /primary-familywise -->\n")
    with pytest.raises(CommandError, match="no --write file has a <!-- primary-exploratory -->"):
        plots.main(["--verdicts", str(record), "--write", str(family)])
    assert family.read_text() == "<!-- primary -->\n<!-- /primary -->\n<!-- primary-familywise -->\n<!-- /primary-familywise -->\n"  # nothing written: all or none
    with pytest.raises(CommandError, match="is not a markdown file"):
        plots.main(["--verdicts", str(record), "--write", str(tmp_path / "missing.md")])
