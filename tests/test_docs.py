"""Every command that README.md and docs/*.md show runs as written, with its smallest settings appended, so
that a document cannot drift from the code.

The commands are read from the documents at collection time (not copied here): every line of a ```bash, ```sh
or ```shell block, and the lines of an indented code block that start with a program named in PROGRAMS. A
backslash continues a line, `a && b` is two commands, `# ...` is a comment. Each command then runs:

  - in a fresh folder holding a copy of the repository as a clone has it (no outputs, nothing git ignores) and
    the `out/` of one plain `python train.py` run (what a reader has after the first example: `out/ckpt`,
    `out/tiny-warmstart`), so that `--resume=True`, `--init_from=out/ckpt`, `evaluate.py out/ckpt` and
    `benchmarks/bench.py` find what they expect, and no command sees another's outputs;
  - with its script's SMALLEST settings: FORCED ones appended (the later value of an option wins; they only
    make it cheap: steps, samples, tokens), DEFAULTS appended only where the command does not set the option
    itself (sizes the document may show on purpose: `--n_train=2000 --n_test=100` of a reasoning-gym task is
    kept, as a generator can give up on item 3 of 100 but not on items 0-1);
  - with a placeholder model path (`--model=/path/to/Qwen2.5-7B-Instruct`, `--model=/path`) replaced by a
    micro Qwen2 with a byte-level BPE chat tokenizer saved to a folder (conftest's chat_model_dir);
  - `accelerate launch` with one process and without `--multi_gpu` (no GPUs here; tests/test_real_models.py
    runs 2 gloo processes against 1);
  - through conftest's `scripts` (a fork server that has imported torch, transformers, ... once), so each
    command costs its work and not ~5 s of imports; what a script starts itself (compare.py's train.py runs,
    accelerate's processes) are real interpreters. NANOPASSK_DEBUG=1: a failing command shows its traceback.
    PARALLEL commands run at once (module fixture `outcomes`); each test then reports its own command.

EXCLUDED lists the commands that are not run, each with its reason; a program that is neither run nor excluded
fails with a message saying to add it to one table or the other.
"""
import os
import re
import shlex
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", *sorted(os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs"))
                             if name.endswith(".md"))]
TIMEOUT_S = 300  # per command; a smallest-settings command takes seconds
PARALLEL = 2  # commands at once, each on one thread: the 2 cores the suite is sized for

# train.py's smallest run: one or two RL steps of 2 prompts, 8 new tokens, 2 evaluation samples, 2 SFT steps of
# the tiny model's warm start, one thread, CPU (a config file's `device` or a GPU machine's "auto" would differ)
TRAIN_FORCED = ["--max_steps=2", "--eval_samples=2", "--eval_k=1", "--curve_samples=0", "--max_new_tokens=8",
                "--warmup_sft_steps=2", "--show_progress=False", "--threads=1", "--device=cpu"]
TRAIN_DEFAULTS = {"--n_train": "4", "--n_test": "2", "--prompt_batch": "2", "--mini_batch": "2"}
SMALLEST = {  # script (or module, for python -m) -> (FORCED, DEFAULTS)
    "train.py": (TRAIN_FORCED, TRAIN_DEFAULTS),
    "compare.py": (TRAIN_FORCED, TRAIN_DEFAULTS),  # passes train.py settings through to its warm start and runs
    "evaluate.py": (["--n_mazes=1", "--max_new_tokens=8"], {}),
    os.path.join("benchmarks", "bench.py"): (["--quick", "--steps=1", "--warmup=0", "--samplers=fast", "--threads=1"], {}),
    "lab.plots": (["--out=figures-test"], {}),  # (python -m lab.plots) into the command's own folder, never over assets/
    "infra.tiny": ([], {}),  # no size options: it copies the shipped warm start and evaluates it (~10 s)
    # a grid takes hours: its dry run prints the grid's train.py commands
    os.path.join("experiments", "maze.py"): (["--dry-run"], {}),
}
EXCLUDED = {  # the first words of a command -> why it is not run
    ("pip", "install"): "installs packages: needs the network, and the suite runs in the environment it installed",
    ("python", "-m", "pytest"): "the test suite itself",
    ("huggingface-cli", "download"): "downloads a model from the hub: needs the network",
}
PROGRAMS = ("python", "accelerate", "pip", "huggingface-cli", "time")  # what a command in an indented block starts with
PLACEHOLDER_PATH = re.compile(r"(^|/)path(/to/|$)")
ENV = {"NANOPASSK_DEBUG": "1",  # a failing command shows its traceback here
       # oneDNN's AMX bf16 kernels die with "Illegal instruction" on some VMs that report AMX (bf16 configs)
       "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")}


# -----------------------------------------------------------------------------
# reading the documents
def doc_commands(doc):
    """[(line number, command text)] of the shell commands a markdown document shows (module docstring)."""
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        return shell_lines(f.read())


def shell_lines(markdown):
    """[(line number, command text)] of the shell commands in markdown text."""
    lines = markdown.split("\n")
    found, fence, previous_blank = [], None, True
    i = 0
    while i < len(lines):
        line = lines[i]
        if fence is None and line.startswith("```"):
            fence = line[3:].strip().lower()
        elif fence is not None and line.startswith("```"):
            fence = None
        elif fence in ("bash", "sh", "shell"):
            i = _take(lines, i, 0, found)
        elif (fence is None and previous_blank and line.startswith("    ")
              and line.split()[0] in PROGRAMS):  # an indented code block of commands
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                if lines[i].strip() and lines[i].split()[0] in PROGRAMS:
                    i = _take(lines, i, 4, found)
                i += 1
            previous_blank = True
            continue
        previous_blank = not line.strip()
        i += 1
    return found


def _take(lines, i, indent, found):
    """Append the command starting at line i (joining backslash continuations); return its last line's index."""
    start, text = i, lines[i][indent:].rstrip()
    while text.endswith("\\") and i + 1 < len(lines):
        i += 1
        text = text[:-1].rstrip() + " " + lines[i].strip()
    if text.strip() and not text.lstrip().startswith("#"):
        found.append((start + 1, text.strip()))
    return i


def split_commands(text):
    """The argv of each command of a shell line: `a && b` is two, comments dropped, a leading `time` dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars="&;|")
    lexer.whitespace_split = True
    commands, argv = [], []
    for token in lexer:
        if token in ("&&", ";"):
            commands.append(argv)
            argv = []
        elif token in ("|", "||", "&"):
            raise ValueError(f"{text!r}: pipes and background jobs are not supported here")
        else:
            argv.append(token)
    commands.append(argv)
    return [argv[1:] if argv[:1] == ["time"] else argv for argv in commands if argv]


def exclusion(argv):
    for words, reason in EXCLUDED.items():
        if tuple(argv[:len(words)]) == words:
            return reason
    return None


def collect():
    cases = []
    for doc in DOCS:
        for line, text in doc_commands(doc):
            for argv in split_commands(text):
                if exclusion(argv) is None:
                    cases.append(pytest.param(doc, line, text, argv, id=f"{doc}:{line}:{' '.join(argv)[:60]}"))
    return cases


# -----------------------------------------------------------------------------
# turning a documented command into the one that runs
def with_settings(script, args):
    """args + the script's FORCED settings + its DEFAULTS that args do not set."""
    if script not in SMALLEST:
        raise LookupError(f"no smallest settings for {script}: add it to SMALLEST (or EXCLUDED, with a reason) in "
                          "tests/test_docs.py")
    forced, defaults = SMALLEST[script]
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    return [*args, *forced, *(f"{key}={value}" for key, value in defaults.items() if key not in given)]


def substitute_models(args, model_dir):
    """A placeholder model path (--model=/path/to/X, --model /path) becomes the micro chat model's folder."""
    out = []
    for arg in args:
        key, _, value = arg.partition("=")
        if value and key in ("--model", "--init_from") and PLACEHOLDER_PATH.search(value):
            arg = f"{key}={model_dir}"
        elif out and out[-1] in ("--model", "--init_from") and PLACEHOLDER_PATH.search(arg):
            arg = model_dir
        out.append(arg)
    return out


def runnable(argv, model_dir):
    """(kind, argv) to run for a documented argv: ("script", [script, *args]), ("script", ["-m", module, *args])
    or ("accelerate", [launch args])."""
    if argv[0] in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py"):
        script = os.path.normpath(argv[1])
        return "script", [script, *with_settings(script, substitute_models(argv[2:], model_dir))]
    if argv[0] in ("python", "python3") and len(argv) > 2 and argv[1] == "-m":
        return "script", ["-m", argv[2], *with_settings(argv[2], substitute_models(argv[3:], model_dir))]
    if argv[:2] == ["accelerate", "launch"]:
        position = next((i for i, arg in enumerate(argv) if arg.endswith(".py")), None)
        if position is None:
            raise LookupError(f"{' '.join(argv)}: no script to launch")
        launch, script = [], os.path.normpath(argv[position])
        options = iter(argv[2:position])
        for option in options:  # one CPU process: no GPUs here (module docstring); an option beats a config file's
            if option == "--num_processes":
                next(options)
            elif not option.startswith("--num_processes=") and option != "--multi_gpu":
                launch.append(option)
        launch.append("--num_processes=1")
        args = with_settings(script, substitute_models(argv[position + 1:], model_dir))
        return "accelerate", ["accelerate", "launch", *launch, script, *args]
    raise LookupError(f"unknown program {argv[0]!r}: add it to SMALLEST (run) or EXCLUDED (with a reason) in "
                      "tests/test_docs.py")


# -----------------------------------------------------------------------------
# the folders the commands run in
@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the repository as a fresh clone has it (a command may write anywhere in its folder, never into the
    real one): the files git tracks, and new ones it does not ignore; without git, all but outputs and dot-files."""
    path = tmp_path_factory.mktemp("docs") / "tree"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True)
    if listed.returncode == 0:
        for name in listed.stdout.decode().split("\0"):
            if name and os.path.isfile(os.path.join(ROOT, name)):  # (a tracked file deleted in the work tree is not)
                os.makedirs(os.path.dirname(path / name), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, name), path / name)
    else:
        def ignore(folder, names):
            top = os.path.abspath(folder) == ROOT
            return [name for name in names if name.startswith(".") or name == "__pycache__"
                    or (top and name.startswith("out"))]
        shutil.copytree(ROOT, path, ignore=ignore, symlinks=True)
    return path


def command_folder(tree, path, seed_out=None):
    """A folder with links to the repository copy's files, and a copy of the seed run's out/ if given."""
    os.makedirs(path)
    for name in os.listdir(tree):
        os.symlink(os.path.join(tree, name), os.path.join(path, name))
    if seed_out:
        shutil.copytree(seed_out, os.path.join(path, "out"))
    return path


@pytest.fixture(scope="module")
def seed_out(tree, scripts, tmp_path_factory):
    """out/ after one plain `python train.py` (smallest settings, one step): a checkpoint and the warm start."""
    folder = command_folder(tree, str(tmp_path_factory.mktemp("seed") / "run"))
    argv = ["train.py", *with_settings("train.py", []), "--max_steps=1"]
    result = scripts.run(argv, cwd=folder, env=ENV, timeout=TIMEOUT_S)
    assert result.returncode == 0, f"python {' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}"
    return os.path.join(folder, "out")


# -----------------------------------------------------------------------------
def test_commands_are_read_from_the_documents():
    """The extraction finds what the README shows: its main job, a train.py run, an rg task and an evaluation."""
    commands = [" ".join(argv) for doc in DOCS for _, text in doc_commands(doc) for argv in split_commands(text)]
    assert "python compare.py" in commands and "python train.py" in commands
    assert any(command.startswith("python evaluate.py out/ckpt") for command in commands)
    assert any(command.startswith("python train.py --task=rg:") for command in commands)
    assert split_commands("pip install -r r.txt && python a.py --x='{1: 2}'  # note") == [
        ["pip", "install", "-r", "r.txt"], ["python", "a.py", "--x={1: 2}"]]
    markdown = ("text\n\n    python a.py \\\n        --b=1\n\n    <|im_start|>\n\n"
                "```bash\nbash x.sh\n```\n```\nout\n```\n")
    assert shell_lines(markdown) == [(3, "python a.py --b=1"), (9, "bash x.sh")]


CASES = collect()


# the slowest commands (tens of seconds each, measured) start first, so that the last ones to end are short
SLOW_FIRST = ("compare.py", os.path.join("benchmarks", "bench.py"), "lab.plots", "accelerate")


@pytest.fixture(scope="module")
def outcomes(request, tree, scripts, seed_out, chat_model_dir, tmp_path_factory):
    """{(doc, line, argv): (kind, argv run, CompletedProcess) or the LookupError} of every selected documented
    command, run PARALLEL at a time, each in a folder of its own (the tests below then only read their outcome).
    A command shown twice (the same argv to run) runs once: both folders would be the same fresh copy."""
    selected = [item.callspec.params for item in request.session.items
                if getattr(item, "originalname", "") == "test_documented_command_runs"]
    jobs, keys, results, running = [], {}, {}, {}  # keys: (kind, argv run) -> the documented commands it answers
    for params in selected:
        doc, line, argv = params["doc"], params["line"], params["argv"]
        key = (doc, line, tuple(argv))
        try:
            kind, run_argv = runnable(argv, chat_model_dir)
        except LookupError as error:
            results[key] = error
            continue
        if (kind, tuple(run_argv)) not in keys:
            keys[(kind, tuple(run_argv))] = []
            jobs.append((kind, run_argv))
        keys[(kind, tuple(run_argv))].append(key)
    jobs.sort(key=lambda job: not any(name in job[1][:2] for name in SLOW_FIRST))  # stable: else document order
    while jobs or running:
        while jobs and len(running) < PARALLEL:
            kind, run_argv = jobs.pop(0)
            folder = command_folder(tree, str(tmp_path_factory.mktemp("command") / "run"), seed_out)
            running[scripts.submit(run_argv, cwd=folder, env=ENV, timeout=TIMEOUT_S)] = (kind, run_argv)
        result = scripts.wait()
        kind, run_argv = running.pop(result.id)
        for key in keys[(kind, tuple(run_argv))]:
            results[key] = (kind, run_argv, result)
    return results


@pytest.mark.parametrize("doc, line, text, argv", CASES)
def test_documented_command_runs(doc, line, text, argv, outcomes):
    outcome = outcomes[(doc, line, tuple(argv))]
    if isinstance(outcome, LookupError):
        pytest.fail(f"{doc}:{line}: `{text}`: {outcome}", pytrace=False)
    kind, run_argv, result = outcome
    if result.returncode != 0:
        shown = " ".join(shlex.quote(arg) for arg in ([] if kind == "accelerate" else ["python"]) + run_argv)
        status = f"timed out after {TIMEOUT_S} s" if result.returncode == -9 else f"exit status {result.returncode}"
        output = (result.stdout.strip() + "\n" + result.stderr.strip()).strip()
        if len(output) > 6000:  # the first error (a launcher's child) and the last lines
            output = f"{output[:2500]}\n[...]\n{output[-3500:]}"
        pytest.fail(f"{doc}:{line}: `{text}` failed ({status}), run with its smallest settings as\n    {shown}\n"
                    f"Output:\n{output}", pytrace=False)


def test_git_keeps_exactly_the_figures_the_documents_show():
    """experiments/figures holds what lab/plots.py draws; git keeps a figure only when README, RESULTS, BENCHMARKS or
    docs/ show it, and every figure they show is in git (a fresh clone renders them)."""
    tracked = subprocess.run(["git", "ls-files", "experiments/figures"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    shown = set()
    for doc in DOCS + ["RESULTS.md", "BENCHMARKS.md"]:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", f.read()):
                shown.add(os.path.normpath(os.path.join(os.path.dirname(doc), target)))
    figures = {path for path in tracked if path.endswith(".png")}
    assert figures == {path for path in shown if path.startswith("experiments/figures/")}


def test_the_readme_line_counts_are_near_the_files():
    """Each line count the README's reading order states (`| `file.py` | N |`) is within 15% of the file's own:
    the files change, and the numbers are updated when one drifts further."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        stated = re.findall(r"^\| `([\w/]+\.py)` \| (\d+) \|", f.read(), flags=re.MULTILINE)
    assert len(stated) >= 10, "the README's reading order lists the method files with their line counts"
    for name, count in stated:
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            actual = sum(1 for _ in f)
        assert abs(actual - int(count)) <= 0.15 * actual, f"README.md says {name} has {count} lines; it has {actual}"


def test_the_readme_shows_the_committed_figure_that_compare_py_draws():
    """The README's figure is compare.py's PNG (OUT/passk_curves.png), committed small, and says how to draw it again."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "![" in readme and "(assets/passk_curves.png)" in readme
    assert "cp out/compare/passk_curves.png assets/passk_curves.png" in readme
    with open(os.path.join(ROOT, "assets", "passk_curves.png"), "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150_000
    tracked = subprocess.run(["git", "ls-files", "assets/passk_curves.png"], cwd=ROOT, capture_output=True, text=True)
    assert tracked.returncode != 0 or tracked.stdout.strip() == "assets/passk_curves.png"  # (without git: no check)
