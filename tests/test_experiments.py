"""experiments/maze.py: the grid is consistent and uses only train.py's config keys (no training here)."""
import json
import os
import re
import shutil

import pytest

from experiments import maze

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_config_keys():
    """The names assigned at the top of train.py, between its '# config' line and the next dashed line."""
    source = open(os.path.join(ROOT, "train.py")).read()
    block = source.split("# config", 1)[1].split("# ----", 1)[0]
    return {name for pair in re.findall(r"^(\w+)(?:, (\w+))? = ", block, flags=re.M) for name in pair if name}


def test_every_run_uses_known_config_keys():
    known = train_config_keys()
    assert {"advantage", "k", "n_rollouts", "seed", "init_from", "entropy_coef"} <= known
    for mode in maze.MODES:
        for job in maze.select(mode, None, [0]):
            for arg in job["args"]:
                key = arg[2:].split("=", 1)[0]
                assert key in known, (job["key"], key)


def test_plots_comparisons_name_runs_of_each_grid():
    from lab import grids

    for mode in ("quick", "long", "primary", "tune", "horizon"):
        runs = {f"{group}/{name}" for group, name, _, _ in maze.grid(maze.MODES[mode]["steps"], mode)}
        for entries in grids.comparisons(mode, runs).values():
            for _, run in entries:
                assert run in runs, (mode, run)


def test_primary_family_dry_run_lists_ten_seeds_of_six_methods_on_its_own_split(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(maze.modes, "RUNS", str(tmp_path))
    monkeypatch.setattr(maze.modes, "RESULTS", str(tmp_path))  # not the committed record, whose runs a dry run skips
    assert maze.main(["--primary", "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python train.py")]
    assert len(lines) == 70  # 6 methods and the tuned entropy baseline, 10 seeds each
    baseline = [line for line in lines if "--entropy_coef=0.1" in line]
    assert len(baseline) == 10 and all("--advantage=pass1 " in line + " " for line in baseline)
    advantages = {line.split("--advantage=")[1].split()[0] for line in lines}
    assert advantages == set(maze.PRIMARY) == {"pass1", "passk_analytical", "passk_bootstrap", "passk_exceeding",
                                               "pkpo", "best_of_n"}
    assert {line.split("--seed=")[1].split()[0] for line in lines} == {str(seed) for seed in range(10)}
    for line in lines:
        assert f"--model={maze.PRIMARY_WARMSTART} " in line and "--max_steps=600 " in line
        assert f"--n_test={maze.PRIMARY_TEST} " in line and "--curve_samples=128 " in line


def test_the_replication_and_h11_run_as_declared_from_the_shipped_start(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(maze.modes, "RUNS", str(tmp_path))
    monkeypatch.setattr(maze.modes, "RESULTS", str(tmp_path))

    def dry_run(*args):
        assert maze.main([*args, "--dry-run"]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("python train.py")]
    primary, replication = dry_run("--primary"), dry_run("--replication")
    assert len(replication) == 70 and all(f"--model={maze.modes.START} " in line for line in replication)
    # the same 70 commands (methods, seeds, horizon, held-out mazes, samples), but the start and the folders
    same = lambda line: line.replace(maze.PRIMARY_WARMSTART, maze.modes.START).replace(  # noqa: E731
        os.path.join(str(tmp_path), "primary"), os.path.join(str(tmp_path), "replication")).replace(
        os.path.join("primary", "eval-cache"), os.path.join("replication", "eval-cache"))
    assert sorted(map(same, primary)) == sorted(replication)
    assert dry_run("--replication", "--seeds=3,4")[0].endswith("--seed=3 --out_dir=" + os.path.join(
        str(tmp_path), "replication", "primary", "pass1-seed3") + " --resume=True --advantage=pass1")
    h11 = dry_run("--h11")  # H11's confirmatory test, re-declared for the shipped start before any of its runs
    assert len(h11) == 38 and all(f"--model={maze.modes.START} " in line for line in h11)
    assert {line.split("--seed=")[1].split()[0] for line in h11} == {str(seed) for seed in range(10, 29)}
    assert maze.modes.SHIPPED_STARTS == {"replication": maze.modes.START, "h11": maze.modes.START}


def test_the_tune_grid_tries_stronger_baselines_than_the_long_grid():
    runs = {name: overrides for _, name, overrides, _ in maze.grid(600, "tune")}
    assert max(overrides.get("entropy_coef", 0) for overrides in runs.values()) > 0.01  # 0.01 did not move entropy
    assert runs["pass1"] == {"advantage": "pass1"}


def test_only_a_group_brings_its_dependencies_first_seed_by_seed():
    jobs = maze.select("quick", ["continual"], [0, 1])
    order = [(job["seed"], job["key"]) for job in jobs]
    assert order[0] == (0, "estimators/passk_analytical") and order[-1] == (1, "continual/passk-then-pass1")
    assert [seed for seed, _ in order] == sorted(seed for seed, _ in order)  # every run of seed 0, then seed 1
    continual = [job for job in jobs if job["key"] == "continual/passk-then-pass1"]
    assert [job["deps"] for job in continual] == [[maze.run_dir("quick", "estimators/passk_analytical", s)] for s in (0, 1)]
    init = [arg for arg in continual[1]["args"] if arg.startswith("--init_from=")]
    assert init == ["--init_from=" + os.path.join(maze.run_dir("quick", "estimators/passk_analytical", 1), "ckpt")]
    assert "--max_steps=80" in next(job for job in jobs if job["key"] == "continual/pass1-2T")["args"]


def test_complete_runs_are_skipped(tmp_path, capsys):
    jobs = []
    for seed in (0, 1):
        path = tmp_path / f"run-seed{seed}"
        path.mkdir()
        (path / "eval.json").write_text(json.dumps({}))
        jobs.append(dict(key="g/run", seed=seed, dir=str(path), deps=[], args=["--will_not_run=1"]))
    assert maze.run_grid(jobs, workers=2) == []
    assert "2 complete (skipped), 0 to run" in capsys.readouterr().out


def test_dry_run_prints_commands(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(maze.modes, "RUNS", str(tmp_path))  # no run is complete there, whatever this machine ran
    monkeypatch.setattr(maze.modes, "RESULTS", str(tmp_path))  # nor recorded
    assert maze.main(["--quick", "--only", "k", "--seeds", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "k8-lr4x-seed0" in line)
    assert line.startswith("python train.py --model=")
    assert "--k=8 " in line and "--learning_rate=0.0004 " in line and "--advantage=passk_analytical" in line


def test_tasks_mode_runs_pass1_and_passk_on_every_preset_from_its_own_warm_start():
    from tasks import TASK_PRESETS

    jobs = maze.select("tasks", None, [0, 1])
    assert len(jobs) == 2 * 2 * len(TASK_PRESETS)
    runs = {f"{group}/{name}" for group, name, _, _ in maze.grid(600, "tasks")}
    from lab import grids

    figures = grids.comparisons("tasks", runs)
    assert set(figures) == {task.split(":", 1)[1] for task in TASK_PRESETS}
    for entries in figures.values():
        assert {run for _, run in entries} <= runs and entries[0][0] == "Pass@1"
    for job in jobs:
        args = dict(arg[2:].split("=", 1) for arg in job["args"])
        task = args["task"]
        assert task in TASK_PRESETS and eval(args["task_options"]) == TASK_PRESETS[task]
        assert args["model"] == maze.task_warmstart(task) and args["max_steps"] == "600"
        assert args["n_train"] == "2000" and args["n_test"] == "100"


def test_a_committed_snapshot_version_restores_its_code(tmp_path):
    """The repository keeps a grid's code/VERSION, not a second copy of the code: the copy comes back from git."""
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=maze.ROOT, capture_output=True, text=True).stdout.strip()
    code = tmp_path / "code"
    code.mkdir()
    (code / "VERSION").write_text(f"commit {head}\ncopied now\nuncommitted changes in these files:\nnone\n")
    cwd = os.getcwd()
    os.chdir(maze.ROOT)
    try:
        maze.restore_snapshot(str(code))
    finally:
        os.chdir(cwd)
    shown = subprocess.run(["git", "show", f"{head}:train.py"], cwd=maze.ROOT, capture_output=True, text=True).stdout
    assert (code / "train.py").read_text() == shown and (code / "advantage.py").exists()
    assert (code / "infra" / "cli.py").exists() and not (code / "lab").exists()  # what train.py imports, no more
    (code / "train.py").unlink()
    (code / "VERSION").write_text(f"commit {head}\ncopied now\nuncommitted changes in these files:\n M train.py\n")
    with pytest.raises(ValueError, match="uncommitted changes"):
        maze.restore_snapshot(str(code))


def write_start(folder, scale=1.0):
    """A stand-in start policy: a model.safetensors of two tensors (the fingerprint reads nothing else)."""
    from safetensors.torch import save_file
    import torch

    os.makedirs(folder, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    save_file({"a": torch.randn(8, 8, generator=generator) * scale, "b": torch.ones(3)},
              os.path.join(folder, "model.safetensors"))


def write_complete_run(folder, command):
    os.makedirs(folder)
    evaluation = {"average": {"pass@1": 0.5}, "per_group": {"5": {"pass@1": 0.5, "n_items": 2}}}
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "reward": 0.5}) + "\n" + json.dumps({"step": 1, "eval": evaluation}) + "\n")
    with open(os.path.join(folder, "eval.json"), "w") as f:
        json.dump({"after": evaluation}, f)
    with open(os.path.join(folder, "command.txt"), "w") as f:
        f.write(command + "\n")


def test_a_grid_resumes_from_its_record_when_its_run_folders_are_gone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(maze.modes, "RUNS", str(tmp_path / "runs"))
    start, results = str(tmp_path / "start"), str(tmp_path / "results" / "m.jsonl")
    write_start(start)
    jobs = [dict(key=f"g/{name}", seed=0, dir=maze.run_dir("m", f"g/{name}", 0), deps=[],
                 args=[f"--model={start}", "--will_not_run=1"]) for name in ("done", "other")]
    write_complete_run(jobs[0]["dir"], f"python train.py --model={start} --seed=0")
    records = maze.write_grid_record("m", jobs, {}, results)
    assert [(r["run"], r["seed"]) for r in records] == [("g/done", 0)]
    assert records[0]["start_weights"] == maze.weights_fingerprint(start) and not os.path.exists(results + ".tmp")

    shutil.rmtree(tmp_path / "runs")  # a fresh clone: the record is committed, the run folders are not
    recorded = maze.recorded_runs(jobs, results)
    assert set(recorded) == {("g/done", 0)}
    assert maze.run_grid(jobs[:1], workers=1, recorded=recorded) == []
    assert "1 complete (skipped; 1 of them known from the record only), 0 to run" in capsys.readouterr().out
    assert [r["run"] for r in maze.write_grid_record("m", jobs, recorded, results)] == ["g/done"]  # kept, not lost

    write_start(start, scale=1 + 1e-7)  # rebuilt on a CPU that rounds differently: another file, the same start
    assert maze.weights_fingerprint(start)["sha256"] != records[0]["start_weights"]["sha256"]
    assert set(maze.recorded_runs(jobs, results)) == {("g/done", 0)}
    write_start(start, scale=1.01)  # another start policy: the recorded run no longer counts and leaves the record
    assert maze.recorded_runs(jobs, results) == {}
    assert "g/done seed 0 started from other weights" in capsys.readouterr().out
    assert maze.write_grid_record("m", jobs, {}, results) == []


def test_a_resumed_grid_runs_the_code_commit_its_record_names(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setattr(maze.modes, "RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(maze.ROOT)  # git show runs in the repository, as main() does
    head = subprocess.run(["git", "rev-parse", "HEAD~1"], capture_output=True, text=True, check=True).stdout.strip()
    results = tmp_path / "m.jsonl"
    results.write_text(json.dumps({"run": "g/a", "seed": 0, "code": head}) + "\n")
    maze.adopt_recorded_snapshot("m", str(results))
    assert maze.snapshot_commit("m") == head
    script = maze.snapshot_code("m")  # restores the modules of that commit, not today's
    shown = subprocess.run(["git", "show", f"{head}:train.py"], capture_output=True, text=True, check=True).stdout
    assert open(script).read() == shown

    results.write_text("".join(json.dumps({"run": "g/a", "seed": s, "code": c}) + "\n"
                               for s, c in ((0, head), (1, "0" * 40))))
    with pytest.raises(ValueError, match="name 2 code commits"):
        maze.adopt_recorded_snapshot("other", str(results))
    results.write_text(json.dumps({"run": "g/a", "seed": 0, "code": head + "+uncommitted"}) + "\n")
    with pytest.raises(ValueError, match="uncommitted code"):
        maze.adopt_recorded_snapshot("third", str(results))


def test_a_record_from_another_start_policy_stops_the_grid_unless_asked_to_replace_it(monkeypatch, tmp_path):
    from infra.cli import CommandError

    monkeypatch.setattr(maze.modes, "RESULTS", str(tmp_path))
    for name in ("ensure_warmstart", "adopt_recorded_snapshot"):
        monkeypatch.setattr(maze, name, lambda *args: None)
    monkeypatch.setattr(maze, "snapshot_code", lambda mode: "train.py")
    first = maze.select("smoke", None, [0], "train.py")[0]
    monkeypatch.setattr(maze, "read_record", lambda results: {(first["key"], 0): {"run": first["key"], "seed": 0}})
    monkeypatch.setattr(maze, "recorded_runs", lambda jobs, results, verify: {})  # its fingerprint differs here
    ran = []
    monkeypatch.setattr(maze, "run_grid", lambda jobs, *args, **kwargs: ran.append(len(jobs)) or [])
    monkeypatch.setattr(maze, "write_grid_record", lambda *args: [])
    with pytest.raises(CommandError, match="1 recorded runs started from other .* --rerun_other_starts"):
        maze.main(["--smoke", "--seeds=0"])
    assert ran == []
    assert maze.main(["--smoke", "--seeds=0", "--rerun_other_starts"]) == 0 and ran == [len(maze.grid(2, "smoke"))]


def test_plots_draws_and_compares_the_baselines_the_primary_grid_runs():
    from lab import grids

    assert [run for _, run in grids.PRIMARY_BASELINES] == list(maze.PRIMARY_BASELINES)
    assert [name for _, name in grids.PRIMARY_METHODS] == list(maze.PRIMARY)


# the records made before each line carried its start policy's fingerprint (start_weights): their starts were
# built on the machine that ran them (long, tune: train.py's default split; tasks: each task's own warm start)
UNFINGERPRINTED = {"long", "tune", "tasks"}
# the original family, kept as it was recorded: its start (40d36121...) is not in the repository, and no machine
# since rebuilt it (c1122714... on a 2-vCPU AMD EPYC, 57986a7f... on an Intel Xeon; RESULTS.md), so a fork cannot
# rerun its rows; the replication (experiments/results/replication.jsonl) reruns it from assets/tiny-maze-start
ORIGINAL = {"primary": "40d36121"}


def test_every_record_line_starts_from_a_committed_start_but_the_original_family():
    """A fork reruns a recorded row only from the weights it started from: every line of every fingerprinted
    record (the replication's, H11's, any new grid's) names a model.safetensors committed in assets/, by sha256."""
    results = os.path.join(ROOT, maze.modes.RESULTS)
    grids = sorted(name[:-len(".jsonl")] for name in os.listdir(results) if name.endswith(".jsonl"))
    assert "primary" in grids
    for grid in grids:
        path = os.path.join(results, f"{grid}.jsonl")
        records = list(maze.read_record(path).values())
        starts = {json.dumps(record.get("start_weights"), sort_keys=True) for record in records}
        if grid in UNFINGERPRINTED:
            assert starts == {"null"}, grid
        elif grid in ORIGINAL:  # one start, fingerprinted, and indeed not shipped (else it would be rerunnable)
            assert len(starts) == 1 and json.loads(starts.pop())["sha256"].startswith(ORIGINAL[grid]), grid
            assert len(maze.unshipped_lines(path)) == len(records), grid
        else:
            assert maze.unshipped_lines(path) == [], grid


def test_unshipped_lines_names_each_line_whose_start_is_not_committed(tmp_path):
    shipped = maze.weights_fingerprint(os.path.join(ROOT, maze.modes.START))
    assert maze.committed_starts()[shipped["sha256"]] == maze.modes.START
    path = tmp_path / "m.jsonl"
    lines = [dict(run="g/a", seed=0, start_weights=shipped), dict(run="g/a", seed=1, start_weights=dict(shipped, sha256="0" * 64)),
             dict(run="g/b", seed=0)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [(run, seed) for run, seed, _ in maze.unshipped_lines(str(path))] == [("g/a", 1), ("g/b", 0)]


def test_record_differences_names_what_differs_beyond_float_tolerance():
    recorded = {"run": "g/a", "wall_seconds": 300.0, "evals": [[0, {"pass@1": 0.25, "correct": {"0": 3}}]],
                "train": {"step": [10], "reward": [0.5], "step_time": [0.3]}}
    rerun = json.loads(json.dumps(recorded))
    rerun["wall_seconds"], rerun["train"]["step_time"] = 999.0, [9.9]  # how long it took is not compared
    rerun["evals"][0][1]["pass@1"] = 0.25 * (1 + 1e-6)  # float rounding
    assert maze.record_differences(recorded, rerun) == ([], 6)  # run, step, pass@1, count, step, reward
    rerun["evals"][0][1]["correct"]["0"], rerun["train"]["reward"] = 4, [0.51]
    rerun["extra"] = 1
    differences, _ = maze.record_differences(recorded, rerun)
    assert differences == [("/evals/0/1/correct/0", 3, 4), ("/extra", "<missing>", 1), ("/train/reward/0", 0.5, 0.51)]


def test_a_row_reruns_only_from_the_start_and_code_its_record_names(monkeypatch, tmp_path):
    from infra.cli import CommandError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(maze.modes, "RESULTS", "results")
    write_start("start")
    monkeypatch.setattr(maze.modes, "SHIPPED_STARTS", {"m": "start"})
    os.makedirs("results")
    line = dict(grid="m", run="m/a", seed=0, command="python code/train.py --model=s --seed=0", config={"model": "s"},
                start_weights=maze.weights_fingerprint("start"), code="+uncommitted")
    with open("results/m.jsonl", "w") as f:
        f.write(json.dumps(line) + "\n" + json.dumps(dict(line, seed=1, start_weights={"sha256": "0", "abs_sum": 1.0})) + "\n")
    with pytest.raises(CommandError, match="no row 'm/a' seed 2; its runs: m/a"):
        maze.rerun_row("m", "a", 2)
    with pytest.raises(CommandError, match="seed 1 started from .* not from the shipped start"):
        maze.rerun_row("m", "a", 1)
    with pytest.raises(CommandError, match="names no committed code"):
        maze.rerun_row("m", "a", 0)
    shutil.copy("results/m.jsonl", "results/other.jsonl")
    with pytest.raises(CommandError, match="mode 'other' has no shipped start"):
        maze.rerun_row("other", "a", 0)


# a grid of one short run (2 RL steps on 5x5 mazes, 2 held-out mazes) from the shipped start
SHORT = dict(steps=2, seeds=(0,), warmstart=maze.modes.START, train=dict(
    model=maze.modes.START, train_sizes=(5,), n_train=16, test_sizes=(5,), n_test=2, n_rollouts=4, prompt_batch=2,
    mini_batch=2, max_new_tokens=24, eval_every=2, eval_samples=4, eval_k=4, curve_samples=8, checkpoint_every=2))


def test_one_command_reruns_a_row_it_just_recorded(monkeypatch, tmp_path, capsys):
    """The grid records a run from the shipped start with committed code (HEAD's, as a fresh clone resumes), and
    `--rerun` reproduces its line: not one value differs, not even in the last digit (the tolerance's measure)."""
    import subprocess

    monkeypatch.chdir(ROOT)
    runs = os.path.join("experiments", "runs", f"test-rerun-{os.getpid()}")  # relative, as the grids' are
    monkeypatch.setattr(maze.modes, "RUNS", runs)
    monkeypatch.setattr(maze.modes, "RESULTS", str(tmp_path))
    monkeypatch.setitem(maze.modes.MODES, "short", SHORT)
    monkeypatch.setitem(maze.modes.SHIPPED_STARTS, "short", maze.modes.START)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    os.makedirs(os.path.join(runs, "short", "code"))
    with open(os.path.join(runs, "short", "code", "VERSION"), "w") as f:  # run HEAD's code, as a clone would
        f.write(f"commit {head}\ncopied now\nuncommitted changes in these files:\nnone\n")
    try:
        assert maze.main(["--mode=short", "--only=estimators/pass1", "--seeds=0", "--workers=1"]) == 0
        line = maze.read_record(str(tmp_path / "short.jsonl"))[("estimators/pass1", 0)]
        assert line["code"] == head and line["start_weights"] == maze.weights_fingerprint(maze.modes.START)
        assert [step for step, _ in line["evals"]] == [0, 2] and line["evals"][0][1]["n_samples"] == 8
        capsys.readouterr()
        assert maze.main(["--mode=short", "--rerun=pass1", "--seeds=0"]) == 0
        out = capsys.readouterr().out
        assert "0 differ beyond the tolerance (rtol 1e-4, atol 1e-6), 0 at all" in out, out
    finally:
        shutil.rmtree(runs, ignore_errors=True)
