"""The record of a grid (experiments/results/<mode>.jsonl, one line per complete run) and how a run is made
again: the code snapshot a grid runs (the commit each line names), which recorded runs a grid skips (those that
started from the weights it starts from here), and the rerun of one recorded row compared with its line.
"""
import json
import os
import shutil
import subprocess
import sys
import time

from experiments import modes
from experiments.modes import is_complete, run_dir
from experiments.start import same_start, weights_fingerprint

def is_code(path):
    """Whether a repository path is one of the modules a run imports: the top-level ones and infra/'s."""
    return path.endswith(".py") and os.path.dirname(path) in modes.CODE_FOLDERS


def snapshot_code(mode):
    """Copy the repository's top-level modules and infra/ to runs/<mode>/code/ once, and run that train.py: every
    run of a grid then uses the same code even while train.py & co. are edited (resume keeps the snapshot).
    code/VERSION records the commit and whether those files differed from it."""
    code = os.path.join(modes.RUNS, mode, "code")
    restore_snapshot(code)
    if not os.path.exists(os.path.join(code, "VERSION")):
        files = sorted(os.path.join(folder, name) if folder else name for folder in modes.CODE_FOLDERS
                       for name in os.listdir(folder or ".") if is_code(os.path.join(folder, name)))
        for name in files:
            os.makedirs(os.path.join(code, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(name, os.path.join(code, name))
        git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()  # noqa: E731
        with open(os.path.join(code, "VERSION"), "w") as f:
            f.write(f"commit {git('rev-parse', 'HEAD')}\ncopied {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                    f"uncommitted changes in these files:\n{git('status', '--porcelain', '--', *files) or 'none'}\n")
    return os.path.join(code, "train.py")


def snapshot_commit(mode):
    """The commit a grid's code snapshot was taken from (runs/<mode>/code/VERSION), "+uncommitted" appended when
    the snapshot held uncommitted changes (no commit names its code); None without a snapshot."""
    version = os.path.join(modes.RUNS, mode, "code", "VERSION")
    if not os.path.exists(version):
        return None
    with open(version) as f:
        lines = f.read().splitlines()
    return lines[0].split()[1] + ("" if lines[-1] == "none" else "+uncommitted")


def adopt_recorded_snapshot(mode, results):
    """A grid resumed where its run folders are gone (a fresh clone): run the code its record names (each line's
    "code" commit), not today's, so every run of the grid runs the same code. Writes runs/<mode>/code/VERSION;
    snapshot_code then restores the modules from that commit."""
    code = os.path.join(modes.RUNS, mode, "code")
    commits = {record.get("code") for record in read_record(results).values()} - {None}
    if os.path.exists(os.path.join(code, "VERSION")) or not commits:
        return
    if len(commits) > 1:
        raise ValueError(f"{results}: its runs name {len(commits)} code commits {sorted(commits)}; a grid runs one")
    if next(iter(commits)).endswith("+uncommitted"):
        raise ValueError(f"{results}: its runs ran uncommitted code, which no clone can restore; run the grid anew")
    os.makedirs(code, exist_ok=True)
    with open(os.path.join(code, "VERSION"), "w") as f:
        f.write(f"commit {commits.pop()}\ncopied {time.strftime('%Y-%m-%d %H:%M:%S')} (the commit {results} names)\n"
                f"uncommitted changes in these files:\nnone\n")


def restore_snapshot(code):
    """A snapshot whose VERSION was committed without its copies (the repository keeps only VERSION, not a
    second copy of the code): bring back the modules of the commit it names (is_code), with `git show`.
    A snapshot taken with uncommitted changes cannot be restored this way: ValueError."""
    version = os.path.join(code, "VERSION")
    if not os.path.exists(version) or os.path.exists(os.path.join(code, "train.py")):
        return
    with open(version) as f:
        lines = f.read().splitlines()
    commit = lines[0].split()[1]
    if lines[-1] != "none":
        raise ValueError(f"{version}: the snapshot had uncommitted changes; it cannot be restored from {commit}")
    write_commit_code(commit, code)
    print(f"code snapshot restored from commit {commit}", flush=True)


def write_commit_code(commit, folder):
    """Write the modules a run imports (is_code) as they were at a commit into folder, with `git show`."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit], capture_output=True, text=True, check=True)
    for name in names.stdout.split():
        if is_code(name):
            text = subprocess.run(["git", "show", f"{commit}:{name}"], capture_output=True, text=True, check=True).stdout
            os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)



def read_record(results):
    """{(run, seed): record} of a grid's results file ({} when there is none)."""
    if not os.path.exists(results):
        return {}
    with open(results) as f:
        return {(record["run"], record["seed"]): record for record in map(json.loads, filter(str.strip, f))}


def recorded_runs(jobs, results, verify=True):
    """{(run, seed): record} of the jobs the results file already holds, started from the weights the job would
    start from here. A recorded run whose start differs (or that has no fingerprint) is left out, to be run again.
    verify=False (a dry run, whose warm start may not be built yet) keeps every recorded job unchecked."""
    records, kept, fingerprints = read_record(results), {}, {}
    for job in jobs:
        record = records.get((job["key"], job["seed"]))
        if record is None:
            continue
        if not verify:
            kept[(job["key"], job["seed"])] = record
            continue
        model = next(arg.split("=", 1)[1] for arg in job["args"] if arg.startswith("--model="))
        if model not in fingerprints:
            fingerprints[model] = weights_fingerprint(model) if os.path.exists(model) else None
        if fingerprints[model] and same_start(record.get("start_weights"), fingerprints[model]):
            kept[(job["key"], job["seed"])] = record
        else:
            print(f"{results}: {job['key']} seed {job['seed']} started from other weights than {model}: run again")
    return kept


def write_grid_record(mode, jobs, recorded, results):
    """Rewrite the grid's record: every complete run folder of the mode, and the recorded runs whose folders are
    not here, less those of `jobs` left out of `recorded` (another start: they are run again). Written to a
    temporary file and renamed, so a crash never leaves half a record. Returns the records."""
    from lab.records import compact_runs, write_records

    stale = {(job["key"], job["seed"]) for job in jobs} - set(recorded)
    by_run = {key: record for key, record in read_record(results).items() if key not in stale}
    fingerprints, code = {}, snapshot_commit(mode)
    for record in compact_runs(os.path.join(modes.RUNS, mode))[0]:
        key, model = (record["run"], record["seed"]), record["config"].get("model", "")
        if not is_complete(run_dir(mode, *key)):
            continue
        if model not in fingerprints:
            fingerprints[model] = weights_fingerprint(model) if os.path.exists(model) else None
        by_run[key] = dict(record, start_weights=fingerprints[model], code=code)
    records = [by_run[key] for key in sorted(by_run)]
    write_records(records, results + ".tmp")
    os.replace(results + ".tmp", results)
    return records


IGNORED = ("wall_seconds", "step_time")  # how long it took, not what it computed: not compared by rerun_row


def record_differences(recorded, rerun, rtol=1e-4, atol=1e-6, path=""):
    """[(path, recorded value, rerun value)] where two record lines differ: numbers beyond atol + rtol * |recorded|
    (floats are rounded to 6 significant digits in a record), anything else unequal; the keys of IGNORED are
    skipped. Returns (differences, number of values compared)."""
    if isinstance(recorded, dict) and isinstance(rerun, dict):
        differences, compared = [], 0
        for key in sorted(set(recorded) | set(rerun)):
            if key in IGNORED:
                continue
            if key not in recorded or key not in rerun:
                differences.append((f"{path}/{key}", recorded.get(key, "<missing>"), rerun.get(key, "<missing>")))
                continue
            found, count = record_differences(recorded[key], rerun[key], rtol, atol, f"{path}/{key}")
            differences, compared = differences + found, compared + count
        return differences, compared
    if isinstance(recorded, list) and isinstance(rerun, list) and len(recorded) == len(rerun):
        differences, compared = [], 0
        for i, (a, b) in enumerate(zip(recorded, rerun)):
            found, count = record_differences(a, b, rtol, atol, f"{path}/{i}")
            differences, compared = differences + found, compared + count
        return differences, compared
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (recorded, rerun))
    if numbers and recorded is not None and rerun is not None:
        same = abs(recorded - rerun) <= atol + rtol * abs(recorded) or (recorded != recorded and rerun != rerun)
    else:
        same = recorded == rerun
    return ([] if same else [(path, recorded, rerun)]), 1


def rerun_row(mode, run, seed, keep_dir=None, rtol=1e-4, atol=1e-6):
    """Run one recorded row of a grid again, as the grid ran it, and compare its record line with the committed one.

    The row's train.py command runs in a temporary folder laid out like the repository: the code of the commit the
    row names (its "code", restored with git show at the command's script path) and the shipped start policy of the
    mode (SHIPPED_STARTS, fingerprint checked against the row's start_weights) at the command's --model path; no
    eval cache, so the step-0 evaluation is computed again too. Its folder is compacted as the grid does
    (lab.records.run_record) and compared value by value (record_differences: wall time and step times aside). Returns
    (differences beyond rtol/atol, values compared, wall seconds, differences at all). keep_dir: run there instead of
    a temporary folder, and keep it.

    The tolerance: on a machine like the one that made the row (CPU kind, torch build), with the same code, start and
    one thread, a rerun computes the same bits (measured: tests/test_experiments.py, 0 values differ at all). The
    record keeps 6 significant digits (5 for the training curve), so rtol 1e-4 absorbs only a flip of that last digit;
    a trajectory that diverged changes the per-item correct counts, integers compared exactly."""
    import tempfile

    from infra.cli import CommandError
    from lab.records import run_record

    results = os.path.join(modes.RESULTS, f"{mode}.jsonl")
    records = read_record(results)
    key = run if "/" in run else next((r for r, s in records if r.split("/")[-1] == run), run)
    if (key, seed) not in records:
        rows = sorted({r for r, _ in records})
        raise CommandError(f"{results} has no row {key!r} seed {seed}; its runs: {', '.join(rows) or 'none'}", 2)
    recorded = records[(key, seed)]
    shipped = modes.SHIPPED_STARTS.get(mode)
    if not shipped or not os.path.exists(os.path.join(shipped, "model.safetensors")):
        raise CommandError(f"mode {mode!r} has no shipped start policy (SHIPPED_STARTS): its rows cannot be rerun", 2)
    start = weights_fingerprint(shipped)
    if not same_start(recorded.get("start_weights"), start):
        raise CommandError(f"{key} seed {seed} started from {recorded.get('start_weights')}, not from the shipped "
                           f"{shipped} ({start})")
    commit = recorded.get("code")
    if not commit or commit.endswith("+uncommitted"):
        raise CommandError(f"{key} seed {seed} names no committed code ({commit!r}): it cannot be rerun as it ran")
    script, *options = recorded["command"].split(" --")
    script = script.split()[-1]  # "python experiments/runs/<mode>/code/train.py"
    options = ["--" + option for option in options]
    config = recorded["config"]
    root = keep_dir or tempfile.mkdtemp(prefix=f"rerun-{mode}-")
    try:
        write_commit_code(commit, os.path.join(root, os.path.dirname(script)))
        shutil.copytree(shipped, os.path.join(root, config["model"]), dirs_exist_ok=True)
        out_dir = os.path.join(root, config["out_dir"])
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "command.txt"), "w") as f:
            f.write(recorded["command"] + "\n")
        print(f"rerun {key} seed {seed} in {root}: code {commit[:8]}, start {shipped}", flush=True)
        started = time.time()
        with open(os.path.join(out_dir, "log.txt"), "w") as log:
            status = subprocess.run([sys.executable, script, *options], cwd=root, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.time() - started
        if status.returncode != 0 or not is_complete(out_dir):
            with open(os.path.join(out_dir, "log.txt")) as f:
                raise CommandError(f"the rerun of {key} seed {seed} failed (exit {status.returncode}); log tail:\n"
                                   f"{f.read()[-1500:]}")
        with open(os.path.join(out_dir, "wall.json"), "w") as f:
            json.dump({"wall_seconds": seconds}, f)
        rerun = run_record(out_dir, recorded["train_every"], recorded["grid"], recorded["run"])
        rerun = json.loads(json.dumps(dict(rerun, start_weights=weights_fingerprint(os.path.join(root, config["model"])),
                                           code=commit)))
    finally:
        if not keep_dir:
            shutil.rmtree(root, ignore_errors=True)
    differences, compared = record_differences(recorded, rerun, rtol, atol)
    return differences, compared, seconds, record_differences(recorded, rerun, 0.0, 0.0)[0]



def committed_starts(root=None):
    """{sha256: folder} of the start policies committed in the repository: every model.safetensors git tracks
    under assets/ (the weights a clone has, whatever this checkout holds beside them)."""
    root = root or modes.ROOT
    listed = subprocess.run(["git", "ls-files", "--", "assets"], cwd=root, capture_output=True, text=True, check=True)
    folders = [os.path.dirname(path) for path in listed.stdout.split() if os.path.basename(path) == "model.safetensors"]
    return {weights_fingerprint(os.path.join(root, folder))["sha256"]: folder for folder in folders}


def unshipped_lines(results, root=None):
    """[(run, seed, why)] of the lines of a record whose start policy is not a committed model.safetensors in
    assets/ (by sha256): rows a fork cannot rerun."""
    starts = committed_starts(root)
    bad = []
    for (run, seed), record in sorted(read_record(results).items()):
        start = record.get("start_weights")
        if not start:
            bad.append((run, seed, "no start_weights"))
        elif start.get("sha256") not in starts:
            bad.append((run, seed, f"start {start.get('sha256', '?')[:8]}... is not committed in assets/"))
    return bad
