"""lab/records.py: run folders read and compacted into records, a cut-off last line skipped, both key vintages of
an evaluation read."""
import pytest

from fake_runs import write_run
from lab.records import compact_runs, load_records, load_run, normalise_eval, write_records


def test_normalise_eval_reads_both_key_vintages():
    old = {"per_size": {"5": {"pass@1": 0.5, "n_mazes": 2}}, "average": {"pass@1": 0.5}, "entropy": 0.3}
    new = {"per_group": {"5": {"pass@1": 0.5, "n_items": 2}}, "average": {"pass@1": 0.5}, "entropy": 0.3}
    assert normalise_eval(old) == new and normalise_eval(new) == new


def test_compact_records_thin_the_training_curve_and_keep_command_config_wall(tmp_path):
    root = tmp_path / "long"
    command = "python train.py --k=4 --test_sizes=(5, 7) --n_train={5: 150} --seed=0 --out_dir=x --advantage=pass1"
    write_run(root / "g" / "a-seed0", 20, 10, command=command, wall=12.5)
    write_run(root / "g" / "b-seed0", 20, 10, command=command + f" --init_from={root / 'g' / 'a-seed0' / 'ckpt'}")
    records, _ = compact_runs(str(root), every=10)
    a, b = records
    assert (a["grid"], a["run"], a["seed"], a["wall_seconds"], b["wall_seconds"]) == ("long", "g/a", 0, 12.5, None)
    assert a["config"]["k"] == 4 and a["config"]["test_sizes"] == "(5, 7)" and a["config"]["advantage"] == "pass1"
    assert a["command"] == command and [step for step, _ in a["evals"]] == [0, 10, 20]
    assert a["train"]["step"] == [10, 20] and a["train_every"] == 10
    assert a["train"]["reward"] == pytest.approx([0.3 + 0.01 * 5.5, 0.3 + 0.01 * 15.5])  # block means of steps 1-10, 11-20
    assert a["evals"][0][1]["per_group"]["5"]["n_items"] == 2  # the earlier key names, normalised
    assert (a["start_step"], b["start_step"]) == (0, 20)  # b continues from a's last step
    path = tmp_path / "long.jsonl.gz"
    write_records(records, str(path))
    again = load_records(str(path))
    assert [r["run"] for r in again] == ["g/a", "g/b"] and again[0]["train"] == a["train"]
    assert [step for step, _ in again[1]["evals"]] == [0, 10, 20]


def test_load_run_skips_only_a_cut_off_last_line(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "eval": {"average": {}}}\n{"st')
    train, evals = load_run(str(tmp_path))
    assert train == [{"step": 1, "reward": 0.5}] and evals == [(2, {"average": {}})]
    assert "skipped its last line 3" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n[1, 2]\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not a metrics record: '\[1, 2\]'"):
        load_run(str(tmp_path))
