"""End-to-end tests of train.py (run as a script, as users run it) on a micro model."""
import json
import os
import subprocess

import pytest
import torch

from infra.checkpoint import load_policy
from infra.tiny import build_model, build_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--train_sizes=(5,)", "--n_train=40", "--test_sizes=(5,)", "--n_test=3", "--prompt_batch=4",
        "--mini_batch=2", "--n_rollouts=4", "--k=2", "--max_new_tokens=12", "--eval_samples=4", "--eval_k=2",
        "--eval_every=1000", "--curve_samples=0", "--show_progress=False", "--threads=1",
        "--learning_rate=1e-3"]


@pytest.fixture(scope="module")
def micro_model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("micro"))
    tokenizer = build_tokenizer()
    build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# a deprecated API called by train.py is a bug, as in pytest.ini: fail the run (pytest's filters miss a subprocess)
STRICT_WARNINGS = "error::FutureWarning,error::DeprecationWarning,error::PendingDeprecationWarning"


SCRIPTS = None  # conftest's script server: `python train.py ...` without paying its imports each time


@pytest.fixture(autouse=True)
def _script_server(scripts):
    global SCRIPTS
    SCRIPTS = scripts


def run_train(*args, check=True, fast=True):
    result = SCRIPTS.run(["train.py", *(FAST if fast else []), *args], env={"PYTHONWARNINGS": STRICT_WARNINGS})
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed:\n{result.stdout}\n{result.stderr}")
    return result


def read_metrics(out_dir):
    return [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]


def params_of(path):
    model, _ = load_policy(path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_two_steps_write_metrics_and_a_loadable_checkpoint(tmp_path, micro_model_dir):
    out = str(tmp_path / "run")
    # seed 0: the random micro model samples a correct response in step 1 (rare), so a loss is trained and logged
    result = run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--max_steps=2",
                       "--prompt_template=compact", "--seed=0")
    records = read_metrics(out)
    steps = [r for r in records if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("reward", "pass@1", "pass@2", "entropy", "response_length", "zero_advantage_prompts", "eta",
                "clip_fraction", "grad_norm"):
        assert key in steps[0], key
    phases = ("generation", "advantage", "scoring", "update")  # infra/memory.Phases, each step's
    for r in steps:
        assert sum(r[f"{name}_time"] for name in phases) <= r["step_time"] + 1e-3
        peaks = [r[f"{name}_peak_mb"] for name in phases]
        assert all(100 < peak <= r["peak_memory_mb"] for peak in peaks), r  # CPU: resident MiB, torch and all
    trained = [r for r in steps if "ratio_mean" in r]
    assert trained and all(r["trained_tokens"] < r["generated_tokens"] for r in trained)  # rows were skipped
    for r in trained:  # diagnostics are means over the trained tokens, not diluted by the skipped rows
        assert 0.8 < r["ratio_mean"] < 1.25 and 0.0 <= r["clip_fraction"] <= 1.0, r
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in evals] == [0, 2]  # before and after
    assert set(evals[0]["eval"]["average"]) == {"pass@1", "pass@2"}
    model, tokenizer = load_policy(os.path.join(out, "ckpt"))
    assert tokenizer.decode(tokenizer("*.\nSE")["input_ids"]) == "*.\nSE"
    assert "pass@1/pass@2" in result.stdout  # the printed table
    before = params_of(micro_model_dir)
    after = params_of(os.path.join(out, "ckpt"))
    assert any(not torch.equal(before[n], after[n]) for n in before)  # it learned something


def test_tensorboard_holds_the_scalars_of_metrics_jsonl(tmp_path, micro_model_dir):
    """--log_with=tensorboard: the event files, read back with tensorboard's own reader, hold every number of
    metrics.jsonl under its name at its step, and nothing else."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = str(tmp_path / "run")
    run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--max_steps=2", "--log_with=tensorboard")
    folder = os.path.join(out, "nanopassk")  # accelerate's <project_dir>/<project name>; the config in a subfolder
    assert any("tfevents" in name for name in os.listdir(folder))
    events = EventAccumulator(folder, size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    expected = {}  # name -> {step: value}
    for record in read_metrics(out):
        for name, value in record.items():
            if isinstance(value, (int, float)):
                expected.setdefault(name, {})[record["step"]] = float(value)
    assert {"reward", "entropy", "grad_norm", "update_time"} <= set(expected)
    assert set(events.Tags()["scalars"]) == set(expected)
    for name, by_step in expected.items():
        logged = {event.step: event.value for event in events.Scalars(name)}
        assert set(logged) == set(by_step), name
        for step, value in by_step.items():  # tensorboard keeps float32
            assert logged[step] == pytest.approx(value, rel=1e-6, abs=1e-6, nan_ok=True), (name, step)


def test_resume_equals_uninterrupted(tmp_path, micro_model_dir):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    common = [f"--model={micro_model_dir}", "--prompt_template=compact", "--checkpoint_every=2"]
    run_train(*common, f"--out_dir={straight}", "--max_steps=4")
    run_train(*common, f"--out_dir={split}", "--max_steps=2")
    run_train(*common, f"--out_dir={split}", "--max_steps=4", "--resume=True")
    a, b = params_of(os.path.join(straight, "ckpt")), params_of(os.path.join(split, "ckpt"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    steps_a = [r for r in read_metrics(straight) if "reward" in r]
    steps_b = [r for r in read_metrics(split) if "reward" in r]
    assert [r["step"] for r in steps_b] == [1, 2, 3, 4]
    assert [r["reward"] for r in steps_a] == [r["reward"] for r in steps_b]


def test_samplers_train_the_same(tmp_path, micro_model_dir):
    """sampler=fast (our KV-cached loop) and sampler=generate (HF generate) draw the same rollouts for the same
    seed, so the runs are the same: equal rewards, evaluations and updated parameters."""
    runs = {sampler: str(tmp_path / sampler) for sampler in ("fast", "generate")}
    for sampler, out in runs.items():
        run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--max_steps=3", "--prompt_template=compact",
                  "--seed=10", "--eval_every=2", f"--sampler={sampler}")
    fast, generate = (read_metrics(out) for out in runs.values())
    # exact tokens from two code paths: both draw with one torch.multinomial over the same probabilities; their
    # logits differ by float noise (~1e-7), so a token could differ only if a draw fell that close to a boundary
    # of the cumulative distribution (~1e-4 over the few hundred draws here: accepted, and seen on no machine yet)
    steps = [r for r in fast if "reward" in r]
    assert len(steps) == 3 and sum(r["trained_tokens"] for r in steps) > 0  # some update had a gradient
    assert [r.get("reward") for r in fast] == [r.get("reward") for r in generate]
    # evaluations: the same tokens, so the same per-item counts and pass@k (functions of the counts, exact); the
    # entropy is a float32 sum of logits computed by two code paths (our loop, HF generate): their last digits
    # differ with the CPU's kernels (seen: 2.815479955940603 vs 2.815480098546108), so 1e-6 relative (~20x float32's
    # rounding of a sum over ~100 tokens) and far below what a different token changes (~1e-3)
    evals = [(a["eval"], b["eval"]) for a, b in zip(fast, generate) if "eval" in a]
    assert len(evals) == 3  # steps 0, 2 and 3
    for a, b in evals:
        assert a["correct"] == b["correct"] and a["per_group"] == b["per_group"] and a["g_pass"] == b["g_pass"]
        assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-6)
    for key in ("generated_tokens", "trained_tokens", "zero_advantage_prompts"):
        assert [r[key] for r in steps] == [r[key] for r in generate if "reward" in r], key
    for key in ("entropy", "grad_norm"):
        assert [r[key] for r in steps] == pytest.approx([r[key] for r in generate if "reward" in r], abs=1e-6), key
    a, b = params_of(os.path.join(runs["fast"], "ckpt")), params_of(os.path.join(runs["generate"], "ckpt"))
    start = params_of(micro_model_dir)
    assert any(not torch.equal(a[name], start[name]) for name in a)  # it trained
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


def test_tiny_default_path_and_init_from(tmp_path):
    out = str(tmp_path / "tiny")
    run_train(f"--out_dir={out}", "--max_steps=1", "--warmup_sft_steps=3")
    assert os.path.isdir(os.path.join(out, "tiny-warmstart"))
    # continual training: a P@k checkpoint as the start of P@1 training (tables 2 and 5)
    run_train(f"--out_dir={tmp_path / 'continual'}", f"--init_from={os.path.join(out, 'ckpt')}",
              "--advantage=pass1", "--max_steps=1")
    assert any("reward" in r for r in read_metrics(str(tmp_path / "continual")))


@pytest.mark.parametrize("args,message", [
    (["--k=5"], "k=5 must be between 1 and n_rollouts=4"),
    (["--advantage=pass2"], "unknown advantage"),
    (["--advantage_options={'noise': 0.1}"], "takes no option"),
    (["--model=/nonexistent/model"], "neither 'tiny' nor a local folder"),
    (["--learning_rate=fast"], "expected float"),
    (["--no_such_key=1"], "unknown config key"),
    (["--prompt_batch=3"], "multiple of mini_batch"),
    (["--sampler=beam"], "sampler='beam' must be auto, fast, generate or vllm"),
    (["--log_with=no_such_tracker"], "'no_such_tracker' is not an installed accelerate tracker"),
])
def test_bad_config_is_a_clear_error_before_compute(tmp_path, args, message):
    result = run_train(f"--out_dir={tmp_path / 'bad'}", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "bad" / "metrics.jsonl")  # nothing was computed


def test_unreadable_checkpoint_is_a_clear_error(tmp_path, micro_model_dir):
    out = tmp_path / "run"
    ckpt = out / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.pt").write_bytes(b"not a checkpoint")
    result = run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--resume=True", check=False)
    assert result.returncode != 0 and "unreadable checkpoint" in result.stderr and "Traceback" not in result.stderr
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    result = run_train(f"--model={broken}", f"--out_dir={tmp_path / 'run2'}", check=False)
    assert result.returncode != 0 and "could not read" in result.stderr and "Traceback" not in result.stderr


def test_long_config_smoke_pass_at_k_curves_and_eval_cache(tmp_path, micro_model_dir):
    """config/maze_tiny_long.py for two steps with a small n: the first and last evaluations carry pass@k curves
    (k = 1, 2, 4, 8), monotone in k and equal to pass@1 at k = 1; a second run from the same weights reuses the
    cached step-0 evaluation."""
    common = ["config/maze_tiny_long.py", *FAST, f"--model={micro_model_dir}", "--max_steps=2", "--eval_every=1",
              "--curve_samples=8", "--test_sizes=(5,7)", f"--eval_cache={tmp_path / 'cache'}"]
    for name in ("a", "b"):
        run_train(*common, f"--out_dir={tmp_path / name}", fast=False)
    evals = json.load(open(tmp_path / "a" / "eval.json"))
    for result in evals.values():
        assert result["n_samples"] == 8
        for curve, pass_1 in [(result["average_pass@k_curve"], result["average"]["pass@1"])] + [
                (cell["pass@k_curve"], cell["pass@1"]) for cell in result["per_group"].values()]:
            assert list(curve) == ["1", "2", "4", "8"]
            values = list(curve.values())
            assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
            assert curve["1"] == pytest.approx(pass_1)
        assert len(result["correct"]) == 6 and all(0 <= c <= 8 for c in result["correct"].values())
    middle = [r for r in read_metrics(tmp_path / "a") if r.get("step") == 1 and "eval" in r]
    assert middle and middle[0]["eval"]["n_samples"] == 4  # evaluations in between draw eval_samples
    second = [r for r in read_metrics(tmp_path / "b") if "eval" in r]
    assert "eval_cached" in second[0] and "eval_cached" not in [r for r in read_metrics(tmp_path / "a") if "eval" in r][0]
    assert json.load(open(tmp_path / "b" / "eval.json"))["before"] == evals["before"]


BEFORE_REDESIGN = "209faa7"  # train.py before the loop was rewritten around loss.update_policy and accelerate


def test_training_is_unchanged_by_the_redesign(tmp_path, micro_model_dir):
    """train.py as it was before its redesign (that commit's whole tree, from git) and train.py now, on the same
    machine, seed and config (2 mini-batches a step, so pi_old is scored; rows of advantage 0 skipped): the same
    rewards and advantages (eta = sum of |A|), and the same gradients and weights to float tolerance."""
    old_tree = tmp_path / "before"
    old_tree.mkdir()
    archive = subprocess.run(["git", "archive", BEFORE_REDESIGN, "--", "*.py", "config"], cwd=ROOT, capture_output=True)
    assert archive.returncode == 0, f"git archive {BEFORE_REDESIGN} failed (a clone with history is needed): {archive.stderr}"
    subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
    args = [*FAST, f"--model={micro_model_dir}", "--n_rollouts=8", "--max_steps=6", "--seed=3", "--eval_every=6",
            "--prompt_template=paper"]
    runs = {"before": str(tmp_path / "run_before"), "now": str(tmp_path / "run_now")}
    for name, cwd in (("before", str(old_tree)), ("now", ROOT)):
        result = SCRIPTS.run(["train.py", *args, f"--out_dir={runs[name]}"], cwd=cwd)  # the script's own folder first
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    before, now = ([r for r in read_metrics(out) if "reward" in r] for out in runs.values())
    # exact: both run the same float operations in the same order on this machine (the update's code moved, its
    # arithmetic did not), so the weights are bitwise equal after every step and every sampled token is the same
    assert [r["reward"] for r in before] == [r["reward"] for r in now]
    assert sum(r["trained_tokens"] for r in now) > 0  # some step had a gradient
    for key in ("eta", "grad_norm", "entropy"):  # the same float32 operations: equal up to summation order
        assert [r[key] for r in now] == pytest.approx([r[key] for r in before], rel=1e-5, abs=1e-7), key
    a, b = params_of(os.path.join(runs["before"], "ckpt")), params_of(os.path.join(runs["now"], "ckpt"))
    start = params_of(micro_model_dir)
    assert max(float((a[name] - start[name]).abs().max()) for name in a) > 1e-4  # it trained, 100x the tolerance
    for name in a:  # a changed update moves weights by ~1e-3 here (measured); float reassociation by ~1e-7
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=0, msg=name)


RG_FAST = ["--warmup_sft_steps=3", "--n_train=40", "--n_test=3", "--max_steps=2", "--eval_every=2"]


@pytest.mark.parametrize("task", ["rg:countdown", "rg:chain_sum"])
def test_two_training_steps_on_each_reasoning_gym_task(tmp_path, task):
    """The tiny model on a reasoning-gym task: a vocabulary and a warm start of its own, then RL steps and the
    evaluation, reported under the task's name."""
    from tasks import TASK_PRESETS

    out = str(tmp_path / "run")
    result = run_train(f"--out_dir={out}", f"--task={task}", f"--task_options={TASK_PRESETS[task]!r}", *RG_FAST)
    steps = [r for r in read_metrics(out) if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(0.0 <= r["reward"] <= 1.0 for r in steps)
    evals = [r["eval"] for r in read_metrics(out) if "eval" in r]
    assert [list(e["per_group"]) for e in evals] == [[task[3:]]] * 2
    warm = os.path.join(out, "tiny-warmstart-" + task.replace(":", "-"))
    _, tokenizer = load_policy(warm)
    question = '3 + 4, "é"?'  # the task's own characters round-trip (é only if the task has it)
    text = "".join(ch for ch in question if ch in tokenizer.get_vocab())
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert task[3:] in result.stdout  # the table's column


def test_cached_start_evaluation_of_a_reasoning_gym_task_reads_back(tmp_path):
    """experiments/maze.py --tasks shares the step-0 evaluation of a seed between its runs through --eval_cache:
    the second run from the same warm start reads it back under the task's name (not a maze size)."""
    from tasks import TASK_PRESETS

    task = "rg:chain_sum"
    first, second, cache = str(tmp_path / "a"), str(tmp_path / "b"), f"--eval_cache={tmp_path / 'cache'}"
    options = f"--task_options={TASK_PRESETS[task]!r}"
    run_train(f"--out_dir={first}", f"--task={task}", options, *RG_FAST, "--max_steps=1", cache)
    warm = os.path.join(first, "tiny-warmstart-" + task.replace(":", "-"))
    run_train(f"--out_dir={second}", f"--model={warm}", f"--task={task}", options, *RG_FAST, "--max_steps=1", cache)
    before = [[r for r in read_metrics(out) if "eval" in r][0] for out in (first, second)]
    assert "eval_cached" not in before[0] and "eval_cached" in before[1]
    assert before[1]["eval"] == before[0]["eval"] and list(before[1]["eval"]["per_group"]) == ["chain_sum"]


def test_bad_task_is_one_line_before_compute(tmp_path, micro_model_dir):
    for args, message in [(["--task=rg:nonexistent"], "unknown reasoning-gym task 'nonexistent'"),
                          (["--task=rg:countdown", "--task_options={'min_numbers': 0}"], "rejects options"),
                          (["--task=sudoku"], "unknown task 'sudoku'")]:
        result = run_train(f"--out_dir={tmp_path / 'bad'}", *args, check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and not os.path.exists(tmp_path / "bad" / "metrics.jsonl")


def test_task_without_reference_answer_needs_an_hf_model(tmp_path, micro_model_dir):
    """graph_color has many right colourings and no single reference answer: the tiny warm start cannot imitate
    one, so the tiny model is a clear error; a local HF model trains on it."""
    result = run_train(f"--out_dir={tmp_path / 'tiny'}", "--task=rg:graph_color", *RG_FAST, check=False)
    assert result.returncode != 0 and "no single reference answer" in result.stderr and "Traceback" not in result.stderr
    out = str(tmp_path / "hf")
    run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--task=rg:graph_color", *RG_FAST)
    assert [r["step"] for r in read_metrics(out) if "reward" in r] == [1, 2]


def test_the_entropy_bonus_keeps_the_rollout_entropy_under_its_own_name(tmp_path, micro_model_dir):
    """`entropy` is the sampling policy's token-mean entropy of the rollouts, whatever the loss; the loss's entropy
    term is `loss_entropy`. Step 1 samples the same rollouts with and without the bonus (the same start policy)."""
    runs = {}
    for coef in ("0.0", "0.01"):
        out = str(tmp_path / coef)
        run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--max_steps=1", f"--entropy_coef={coef}")
        runs[coef] = next(record for record in read_metrics(out) if "reward" in record)
    assert runs["0.01"]["entropy"] == runs["0.0"]["entropy"]
    assert "loss_entropy" in runs["0.01"] and "loss_entropy" not in runs["0.0"]


def test_resume_without_metrics_is_one_line(tmp_path, micro_model_dir):
    out = tmp_path / "run"
    run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--max_steps=1")
    (out / "metrics.jsonl").unlink()
    result = run_train(f"--model={micro_model_dir}", f"--out_dir={out}", "--max_steps=2", "--resume=True", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bad config: --resume") and "metrics.jsonl" in last
