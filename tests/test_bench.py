"""benchmarks/bench.py's decode-step benchmark runs (on a micro model, in bf16 and fp32), benchmarks/alternate.py
takes its turns and ratios (on fake timings), benchmarks/compile_update.py runs its eager paths,
benchmarks/step_floor.py profiles a train.py step, benchmarks/prefill.py times both prefills and compares their
tokens; none is a timed test."""
import importlib
import os

import pytest
import torch
from conftest import make_micro_model

from benchmarks import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The benchmarks set torch's thread count for this process: give the later tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_step_times_reports_every_figure(micro_tokenizer, dtype):
    model = make_micro_model(micro_tokenizer).to(dtype)
    prompt_ids, prompt_mask = bench.bench_prompts(model, None, n_prompts=2, prompt_length=5)
    assert prompt_ids.shape == (2, 5) and int(prompt_ids.max()) < model.config.vocab_size
    times = bench.decode_step_times(model, prompt_ids, prompt_mask, n_rollouts=3, steps=2, repeats=1)
    assert set(times) == {"direct", "hf_forward", "matmul", "linear"} and all(value > 0 for value in times.values())


def test_bad_arguments_are_usage_errors():
    from infra.cli import CommandError

    with pytest.raises(CommandError, match="shapes"):
        bench.main(["--shapes=13b"])


def load_benchmark(name):
    """benchmarks/<name>.py as a module."""
    return importlib.import_module(f"benchmarks.{name}")


def test_alternate_runs_both_checkouts_in_turn_and_takes_ratios_within_a_round(monkeypatch, capsys):
    alternate = load_benchmark("alternate")
    calls = []

    def fake_workload(model_dir, steps, warmup, **overrides):
        is_ours = bench.ROOT == ROOT
        if not is_ours:  # the earlier commit, exported: it has a train.py of its own
            assert os.path.isfile(os.path.join(bench.ROOT, "train.py"))
        calls.append("ours" if is_ours else "before")
        return {"seconds_per_step": 0.5 if is_ours else 1.0}

    monkeypatch.setattr(bench, "run_workload", fake_workload)
    monkeypatch.setattr(bench, "run_trl", lambda *args: {"seconds_per_step": 2.0})
    monkeypatch.setattr(alternate.importlib.util, "find_spec", lambda name: object())  # as if trl were installed
    rounds = alternate.main(["--before=HEAD", "--rounds=2"])
    assert calls == ["ours", "before", "ours", "before"] and bench.ROOT == ROOT
    assert [r["ratios"] for r in rounds] == [{"ours/before": 0.5, "ours/trl": 0.25, "before/trl": 0.5}] * 2
    assert "round 2: ours 0.500 s/step  before 1.000 s/step  trl 2.000 s/step" in capsys.readouterr().out


def test_alternate_names_a_commit_it_cannot_export():
    with pytest.raises(SystemExit):
        load_benchmark("alternate").main(["--before=no-such-commit"])


def test_compile_update_times_both_eager_paths_and_checks_they_agree(monkeypatch):
    compile_update = load_benchmark("compile_update")
    monkeypatch.setattr(compile_update, "SHAPES", [(32, 5), (16, 9)])  # 2 of its 8 micro-batch shapes, smaller
    figures = compile_update.main(["--no-compile", "--passes=1", "--threads=1"])
    assert figures["shapes"] == [(32, 5), (16, 9)]
    assert figures["full_vs_shared_max_abs_diff"] <= 1e-4
    assert figures["eager_full_s"] > 0 and figures["eager_shared_s"] > 0 and "compiled_full_s" not in figures
    with pytest.raises(SystemExit):
        compile_update.main(["--passes=0"])


def test_step_floor_profiles_train_py_and_sets_the_target_against_its_kernels(monkeypatch):
    step_floor = load_benchmark("step_floor")
    monkeypatch.setattr(bench, "run_workload", lambda *args, **kwargs: {
        "seconds_per_step": 10.0, "generation_s": 4.0, "update_s": 6.0})  # the unprofiled run, faked
    monkeypatch.setattr(bench, "run_trl", lambda *args: {"seconds_per_step": 100.0})
    for key, value in dict(prompt_batch=2, mini_batch=2, n_rollouts=4).items():  # a smaller workload to profile
        monkeypatch.setitem(bench.DEFAULT, key, value)
    peak = step_floor.peak_matmul_flops  # the machine's peak rate, measured for real on a smaller product
    monkeypatch.setattr(step_floor, "peak_matmul_flops", lambda: peak(size=256, repeats=2))
    figures = step_floor.main(["--steps=1", "--warmup=0", "--threads=1"])  # train.py, one step, profiled for real
    kernels = figures["kernels_s"]
    assert figures["profiled_steps"] == 1 and set(kernels) <= set(step_floor.ARITHMETIC) and "aten::mm" in kernels
    assert 0 < figures["arithmetic_s"] < 10.0 and figures["other_s"] == pytest.approx(10.0 - figures["arithmetic_s"])
    assert figures["target_s"] == pytest.approx(15.0) and figures["ours_over_trl"] == pytest.approx(0.1)
    assert figures["peak_gflops"] > 0 and figures["products_at_peak_s"] > 0
    with pytest.raises(SystemExit):
        step_floor.main(["--steps=0"])


def test_prefill_times_both_ways_and_compares_their_tokens(micro_model, micro_tokenizer):
    from mazes import format_prompt, make_mazes

    prefill = load_benchmark("prefill")
    mazes = make_mazes((5, 7), {5: 1, 7: 1}, (5,), 1, seed=0)["train"]["maze"]
    prompts = [format_prompt(maze, "compact") for maze in mazes]  # different lengths: left padding
    figures = prefill.measure(micro_model, micro_tokenizer, prompts, n_rollouts=3, new_tokens=4)
    assert set(figures["seconds"]) == {"repeated", "once"} and all(value > 0 for value in figures["seconds"].values())
    assert figures["same_tokens"] and figures["max_logprob_diff"] < 1e-5 and figures["max_entropy_diff"] < 1e-5
    assert figures["prompts"] == 2 and len(set(figures["prompt_tokens"])) == 2
    assert figures["padded_length"] == max(figures["prompt_tokens"])
