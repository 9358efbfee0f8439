"""infra/cli.py and every command-line entry point on bad input: one line on stderr naming the problem, exit status
2 for bad usage and 1 for a failure while running, a traceback only under --debug / NANOPASSK_DEBUG=1.

Each entry point runs as users run it (`python script.py args` or `python -m package.module args`, through conftest's
`scripts`) on one or two bad inputs; the others go in-process through the same cli.run. Every bad input here is rejected before any compute."""
import os
import subprocess
import sys

import pytest

from infra import cli
from conftest import make_micro_model, make_micro_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def no_debug_variable(monkeypatch):  # a developer's NANOPASSK_DEBUG=1 would add tracebacks
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


def run_script(scripts, script, *args):
    return scripts.run([script, *args], cwd=ROOT, timeout=120)


def assert_one_line_error(result, status, message, usage=False):
    """Exit `status`; stderr is the single line '<script>: error: ...message...' (after argparse's usage
    lines when `usage`), and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert lines and ": error: " in lines[-1] and message in lines[-1], result.stderr[-2000:]
    if usage:
        assert lines[0].startswith("usage: ")
    else:
        assert len(lines) == 1, result.stderr[-2000:]


# -----------------------------------------------------------------------------
# cli.run itself (in-process)
def run_main(main, argv, monkeypatch, capsys):
    """(exit status, stderr) of cli.run(main, argv) as if run as the script tool.py."""
    monkeypatch.setattr(sys, "argv", ["tool.py", *argv])
    with pytest.raises(SystemExit) as stop:
        cli.run(main, argv)
    return stop.value.code, capsys.readouterr().err


def test_run_turns_each_kind_of_error_into_one_line(monkeypatch, capsys):
    def raising(error):
        def main(argv):
            raise error
        return main
    assert run_main(lambda argv: cli.usage_error("--x=0 must be >= 1"), [], monkeypatch, capsys) == (
        2, "tool.py: error: --x=0 must be >= 1\n")
    assert run_main(raising(cli.CommandError("nothing to plot")), [], monkeypatch, capsys) == (
        1, "tool.py: error: nothing to plot\n")
    assert run_main(raising(ValueError("bad\n  weights")), [], monkeypatch, capsys) == (
        1, "tool.py: error: bad weights\n")
    status, err = run_main(raising(KeyError("quick")), [], monkeypatch, capsys)
    assert status == 1 and err == "tool.py: error: KeyError: 'quick' (rerun with --debug for the traceback)\n"
    failed = subprocess.CalledProcessError(3, [sys.executable, "train.py", "--k=9"])
    assert run_main(raising(failed), [], monkeypatch, capsys) == (
        1, "tool.py: error: train.py stopped with exit status 3\n")
    assert run_main(lambda argv: None, [], monkeypatch, capsys) == (0, "")
    assert run_main(lambda argv: 1, [], monkeypatch, capsys) == (1, "")


def test_debug_shows_the_traceback_and_keeps_the_status(monkeypatch, capsys):
    status, err = run_main(lambda argv: cli.usage_error("--x=0 must be >= 1"), ["--debug"], monkeypatch, capsys)
    assert status == 2 and err.startswith("Traceback") and err.endswith("tool.py: error: --x=0 must be >= 1\n")
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    status, err = run_main(lambda argv: cli.usage_error("--x=0 must be >= 1"), [], monkeypatch, capsys)
    assert status == 2 and "Traceback" in err
    monkeypatch.setenv(cli.DEBUG_ENV, "0")
    status, err = run_main(lambda argv: cli.usage_error("--x=0 must be >= 1"), [], monkeypatch, capsys)
    assert status == 2 and "Traceback" not in err


# -----------------------------------------------------------------------------
# evaluate.py
@pytest.fixture(scope="module")
def truncated_model_dir(tmp_path_factory):
    """A model folder whose model.safetensors was cut in half (an interrupted copy or save)."""
    path = tmp_path_factory.mktemp("truncated")
    tokenizer = make_micro_tokenizer()
    make_micro_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    return path


def test_evaluate_bad_input(scripts, tmp_path, truncated_model_dir, monkeypatch, capsys):
    import evaluate

    assert_one_line_error(run_script(scripts, "evaluate.py", "/nonexistent"), 2,
                          "model path '/nonexistent' is not a folder")
    # more bad input through the same cli.run, in-process (a subprocess costs seconds of imports)
    status, err = run_main(evaluate.main, [str(truncated_model_dir), "--n_mazes=1", f"--out={tmp_path / 'r.json'}"],
                           monkeypatch, capsys)
    assert status == 1 and err.startswith(f"tool.py: error: could not load the weights in '{truncated_model_dir}' (a "
                                          "missing, truncated or corrupt weights file") and err.count("\n") == 1
    assert not (tmp_path / "r.json").exists()
    assert run_main(evaluate.main, [str(tmp_path)], monkeypatch, capsys) == (
        2, f"tool.py: error: '{tmp_path}' has no config.json: not a Hugging Face model folder\n")
    (tmp_path / "config.json").write_text("{}")  # the options are checked before anything is loaded
    for args, message in ((["--k=40"], "--k=40 must be between 1 and --n_samples=32"),
                          (["--sizes=5,x"], "--sizes='5,x' must be comma-separated integers, e.g. 5,7,9"),
                          (["--sizes=6"], "--sizes='6': every maze size must be an odd integer >= 5"),
                          (["--out=/no/r.json"], "--out='/no/r.json' must be a file in an existing folder")):
        assert run_main(evaluate.main, [str(tmp_path), *args], monkeypatch, capsys) == (
            2, f"tool.py: error: {message}\n")


# -----------------------------------------------------------------------------
# lab/plots.py (a truncated metrics.jsonl and skipped runs among usable ones: tests/test_plots.py)
def test_plots_bad_input(scripts, tmp_path, monkeypatch, capsys):
    from lab import plots

    out = tmp_path / "figures"
    assert_one_line_error(run_script(scripts, "-m", "lab.plots", tmp_path / "nonexistent", "--out", out), 2,
                          f"'{tmp_path / 'nonexistent'}' does not exist")
    stray = tmp_path / "quick" / "stray" / "run"  # a train.py out_dir, but not where experiments/maze.py puts runs
    stray.mkdir(parents=True)
    (stray / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')
    status, err = run_main(plots.main, [str(tmp_path / "quick"), "--out", str(out)], monkeypatch, capsys)
    warning, error = err.strip().splitlines()
    assert status == 1
    assert warning == f"warning: skipped {stray}: not a <group>/<name>-seed<N> run folder as experiments/maze.py writes"
    assert error.startswith(f"tool.py: error: no run to plot in '{tmp_path / 'quick'}' (1 skipped, see above)")
    (tmp_path / "empty").mkdir()
    status, err = run_main(plots.main, [str(tmp_path / "empty"), "--out", str(out)], monkeypatch, capsys)
    assert status == 1 and err.startswith(f"tool.py: error: no run to plot in '{tmp_path / 'empty'}': expected")
    assert run_main(plots.main, ["--k=20", "--out", str(out)], monkeypatch, capsys) == (
        2, "tool.py: error: --k=20 must be between 1 and --n_rollouts=16\n")
    assert not out.exists()  # nothing was drawn


# -----------------------------------------------------------------------------
# benchmarks/bench.py, experiments/maze.py
BENCH = os.path.join("benchmarks", "bench.py")


def test_bench_bad_input(scripts):
    assert_one_line_error(run_script(scripts, BENCH, "--steps=0"), 2, "--steps=0 must be >= 1")
    # before: a mistyped --model silently benchmarked a freshly trained tiny model instead
    assert_one_line_error(run_script(scripts, BENCH, "--model=/nonexistent"), 2,
                          "--model='/nonexistent' is not a Hugging Face model folder")
    assert_one_line_error(run_script(scripts, BENCH, "--device=tpu"), 2, "invalid choice: 'tpu'", usage=True)


def test_maze_bad_input(scripts):
    script = os.path.join("experiments", "maze.py")
    assert_one_line_error(run_script(scripts, script, "--seeds=a,b", "--dry-run"), 2,
                          "--seeds='a,b' must be comma-separated")
    assert_one_line_error(run_script(scripts, script, "--seeds=0,0", "--dry-run"), 2, "repeats a seed")
    assert_one_line_error(run_script(scripts, script, "--workers=0", "--dry-run"), 2, "--workers=0 must be >= 1")
    assert_one_line_error(run_script(scripts, script, "--only=nosuch", "--dry-run"), 2,
                          "unknown group(s) or run(s) ['nosuch']", usage=True)
    result = run_script(scripts, script, "--workers=0", "--dry-run", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "maze.py: error: --workers=0 must be >= 1"


# -----------------------------------------------------------------------------
# conftest's scripts (what the tests above run entry points through) against a real interpreter
PROBE = '''import os, sys
folder, cwd = os.path.basename(sys.path[0]), os.path.basename(os.getcwd())
print("argv", sys.argv[1:], "name", __name__, "path0", folder, "cwd", cwd)
print("env", os.environ.get("PROBE_VARIABLE"), os.environ.get("NANOPASSK_DEBUG"))
how = sys.argv[1]
if how == "message":
    raise SystemExit("bad config: k=9")
if how == "status":
    sys.exit(3)
if how == "raise":
    raise ValueError("boom")
print("done", file=sys.stderr)
'''


@pytest.mark.parametrize("how", ["message", "status", "raise", "ok"])
def test_scripts_run_a_script_as_python_does(scripts, tmp_path, how):
    """Status, stdout and stderr (a SystemExit message, a traceback) equal those of `python probe.py` in a new
    interpreter; the script sees its argv, __name__, sys.path[0], cwd and the environment it was given."""
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    env = dict(os.environ, PROBE_VARIABLE="x")
    env.pop(cli.DEBUG_ENV, None)
    real = subprocess.run([sys.executable, "probe.py", how, "--k=1"], cwd=folder, capture_output=True, text=True,
                          env=env, timeout=60)
    served = scripts.run(["probe.py", how, "--k=1"], cwd=folder, env={"PROBE_VARIABLE": "x"}, timeout=60)
    assert (served.returncode, served.stdout) == (real.returncode, real.stdout)
    assert served.stdout.startswith(f"argv ['{how}', '--k=1'] name __main__ path0 probe cwd probe\nenv x None")
    assert served.stderr == real.stderr



@pytest.mark.parametrize("config", sorted(name for name in os.listdir(os.path.join(ROOT, "config"))
                                          if name.endswith(".py")))
def test_config_files_load_from_any_directory(config, tmp_path, monkeypatch):
    """A config file that builds on another (config/maze_qwen2.5_7b.py on paper_maze.py) finds it beside itself,
    whatever the working directory."""
    scope = cli.config_defaults(os.path.join(ROOT, "train.py"))
    monkeypatch.chdir(tmp_path)
    cli.apply_overrides([os.path.join(ROOT, "config", config)], scope, list(scope))
    if config.startswith("maze_qwen"):
        assert scope["prompt_template"] == "paper" and scope["test_sizes"] == (7, 9, 11, 13, 15, 17, 19, 21)


def test_config_defaults_are_train_py_config_block():
    defaults = cli.config_defaults(os.path.join(ROOT, "train.py"))
    assert defaults["test_sizes"] == (5, 7, 9, 11) and defaults["n_test"] == 30 and defaults["max_new_tokens"] == 48
    assert defaults["eps_low"] == 0.2 and defaults["eps_high"] == 0.28 and defaults["task"] == "maze"
    assert "config_keys" not in defaults and "torch" not in defaults
