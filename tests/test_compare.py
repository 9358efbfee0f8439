"""compare.py, the main demo: two train.py runs from one warm start, printed side by side (a few steps here).
compare.py runs through conftest's `scripts` (its own imports paid once per session); the train.py runs it starts
are real interpreters, as for a user."""
import json
import os
import struct
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--train_sizes=(5,)", "--n_train=40", "--test_sizes=(5, 7)", "--n_test=2", "--prompt_batch=4",
         "--mini_batch=4", "--n_rollouts=4", "--k=2", "--max_new_tokens=12", "--eval_samples=4", "--eval_k=2",
         "--curve_samples=8", "--eval_every=2", "--warmup_sft_steps=3", "--max_steps=2"]


SCRIPTS = None  # conftest's script server


@pytest.fixture(autouse=True)
def _script_server(scripts):
    global SCRIPTS
    SCRIPTS = scripts


def run_compare(*args):
    return SCRIPTS.run(["compare.py", *args], cwd=ROOT, timeout=600)


def test_two_runs_side_by_side_from_one_warm_start(tmp_path):
    out = str(tmp_path / "compare")
    result = run_compare(f"--out={out}", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("passk_analytical", "pass1"):
        with open(os.path.join(out, name, "eval.json")) as f:
            evals = json.load(f)
        assert set(evals["after"]["average_pass@k_curve"]) == {"1", "2", "4", "8"}  # curve_samples=8
        with open(os.path.join(out, name, "metrics.jsonl")) as f:
            assert [json.loads(line)["step"] for line in f if "reward" in line] == [1, 2]
    assert os.listdir(os.path.join(out, "warmstart", "tiny-warmstart"))  # one warm start, shared
    table = result.stdout
    for row in ("start", "passk_analytical end", "pass1 end", "crosses at", "solved: start"):
        assert row in table, table
    again = run_compare(f"--out={out}", *SMALL)  # finished runs are reused
    assert again.returncode == 0 and again.stdout.count("done already") == 2


def test_bad_input_is_one_line(tmp_path):
    for args in (["--advantages=pass1"], ["--advantages=pass1,pass2"], ["--model=/x"], ["max_steps=3"]):
        result = run_compare(f"--out={tmp_path}", *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "compare.py: error:" in result.stderr
    result = run_compare(f"--out={tmp_path / 'run'}", "--k=99")  # train.py's own check, before any compute
    assert result.returncode == 1 and "train.py stopped with exit status 1: bad config: k=99" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_pool_runs_in_dependency_order_skips_what_cannot_run_and_reports_failures(tmp_path):
    from compare import run_pool

    done, order = set(), []
    python = lambda code: [sys.executable, "-c", code]  # noqa: E731
    jobs = [dict(name="needs-b", deps=["b"], command=python("print('c')"), log=str(tmp_path / "c.log")),
            dict(name="b", deps=[], command=python("print('b')"), log=str(tmp_path / "b.log")),
            dict(name="fails", deps=[], command=python("raise SystemExit(3)"), log=str(tmp_path / "f.log")),
            dict(name="after-fail", deps=["fails"], command=python("print('x')"), log=str(tmp_path / "x.log")),
            dict(name="never", deps=["missing"], command=python("print('n')"), log=str(tmp_path / "n.log"))]
    failed_names = set()

    def ready(job):
        if any(dep in failed_names for dep in job["deps"]):
            return "a run it needs failed"
        return all(dep in done for dep in job["deps"])

    def finished(job, returncode, seconds):
        order.append(job["name"])
        (done if returncode == 0 else failed_names).add(job["name"])

    failed = run_pool(jobs, 2, ready, finished=finished, poll=0.05)
    assert [job["name"] for job in failed] == ["fails", "after-fail", "never"]
    assert failed[1]["skipped"] == "a run it needs failed" and failed[2]["skipped"] == "dependencies incomplete"
    assert order.index("b") < order.index("needs-b") and (tmp_path / "c.log").read_text() == "c\n"
    assert failed[0]["process"].returncode == 3


def test_side_by_side_counts_the_items_of_the_overlap():
    from compare import side_by_side

    curve = lambda *values: {str(k): value for k, value in zip((1, 2, 4), values)}  # noqa: E731
    start = {"per_group": {5: {"pass@1": 0.5, "pass@4": 0.7, "n_items": 3}}, "average": {"pass@1": 0.5, "pass@4": 0.7},
             "average_pass@k_curve": curve(0.5, 0.6, 0.7), "correct": {"0": 1, "1": 0, "2": 2},
             "negative_answer_diversity": 0.5, "entropy": 0.3}
    after = {**start, "average_pass@k_curve": curve(0.6, 0.6, 0.65), "correct": {"0": 2, "1": 1, "2": 0}}
    text = side_by_side({"pass1": {"before": start, "after": after}})
    assert "solved: start 2, run 2, both 1 of 3" in text


def write_fake_eval(path, before_counts, after_counts, n=128):
    """A finished run's eval.json (evaluate.py's keys that compare.py reads), from correct counts per item."""
    from evaluate import pass_at_k_curve

    def result(counts):
        curve = pass_at_k_curve(n, counts)
        return {"average": {"pass@1": curve[1], "pass@8": curve[8]}, "average_pass@k_curve": {str(k): v for k, v in curve.items()},
                "correct": {str(i): c for i, c in enumerate(counts)},
                "per_group": {"5": {"pass@1": curve[1], "pass@8": curve[8], "n_items": len(counts)}},
                "negative_answer_diversity": 0.2, "entropy": 0.3, "n_samples": n}

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "eval.json"), "w") as f:
        json.dump({"before": result(before_counts), "after": result(after_counts)}, f)


def test_draws_the_passk_curves_to_a_png_from_finished_runs(tmp_path):
    """Finished runs (fake eval.json files) are reused, and compare.py draws their curves and prints the PNG's path."""
    out = tmp_path / "compare"
    start = [0, 1, 3, 20, 64, 100]
    write_fake_eval(str(out / "passk_analytical"), start, [0, 2, 10, 40, 80, 110])
    write_fake_eval(str(out / "pass1"), start, [0, 0, 1, 60, 120, 128])
    result = run_compare(f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done already") == 2
    figure = out / "passk_curves.png"
    assert f"figure: {figure}" in result.stdout
    data = figure.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 150_000
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (600, 400)


def test_without_matplotlib_the_figure_is_skipped(tmp_path, monkeypatch):
    from compare import plot_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert plot_curves({}, str(tmp_path / "x.png")) is None and not (tmp_path / "x.png").exists()
