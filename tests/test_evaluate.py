"""Tests for evaluate.py: the pass@k estimator and the evaluation loop."""
import math
import os

import pytest
import torch
from hypothesis import given, strategies as st

from evaluate import g_pass_at_k, pass_at_k


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(0, n))))
def test_pass_at_k_matches_binomials(case):
    n, c, k = case
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_edge_cases_and_tensors():
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 6, 5) == 1.0 and pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(1000, 1, 999) == pytest.approx(0.999)  # no overflow for large n
    counts = torch.tensor([[0.0], [3.0], [10.0]])
    expected = torch.tensor([[0.0], [1 - math.comb(7, 4) / math.comb(10, 4)], [1.0]], dtype=torch.float64)
    torch.testing.assert_close(pass_at_k(10, counts, 4), expected)


def test_pass_at_k_errors():
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="correct samples"):
        pass_at_k(4, 5, 2)
    with pytest.raises(ValueError, match="integer"):
        pass_at_k(4.0, 1, 2)



@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))),
       st.sampled_from([0.01, 0.25, 0.3, 0.5, 0.75, 1.0]))
def test_g_pass_at_k_counts_subsets(case, tau):
    """By definition: the share of the C(n, k) k-subsets with at least ceil(tau k) correct samples."""
    import itertools
    n, c, k = case
    need = math.ceil(round(tau * k, 9))
    subsets = list(itertools.combinations(range(n), k))
    expected = sum(sum(i < c for i in subset) >= need for subset in subsets) / len(subsets)
    assert g_pass_at_k(n, c, k, tau) == pytest.approx(expected, abs=1e-12)


def test_g_pass_at_k_limits_monotone_and_tensors():
    taus = [1e-9, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    for n in (1, 5, 16, 32):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert g_pass_at_k(n, c, k, 1e-9) == pytest.approx(pass_at_k(n, c, k), abs=1e-12)  # tau -> 0+
                assert g_pass_at_k(n, c, k, 1.0) == pytest.approx(math.comb(c, k) / math.comb(n, k), abs=1e-12)
                values = [g_pass_at_k(n, c, k, tau) for tau in taus]
                assert all(a >= b for a, b in zip(values, values[1:])), (n, c, k)  # stricter tau, lower
    assert g_pass_at_k(10, 3, 10, 0.3) == 1.0  # 0.3 * 10 = 3.0000000000000004 still needs 3, not 4
    counts = torch.tensor([[0.0], [4.0], [8.0]])
    expected = torch.tensor([[g_pass_at_k(8, c, 4, 0.5)] for c in (0, 4, 8)], dtype=torch.float64)
    torch.testing.assert_close(g_pass_at_k(8, counts, 4, 0.5), expected)
    for bad, message in (((4, 1, 5, 0.5), "k <= n"), ((4, 5, 2, 0.5), "correct samples"), ((4, 1, 2, 0.0), "tau"),
                         ((4, 1, 2, 1.5), "tau"), ((4, 1, 0, 0.5), "k <= n")):
        with pytest.raises(ValueError, match=message):
            g_pass_at_k(*bad)


def test_distinct_negative_share():
    from evaluate import distinct_negative_share
    assert distinct_negative_share(["UU", "UU", "DD", "RR"], [0, 0, 0, 1]) == 2 / 3
    assert distinct_negative_share(["UU", "DD"], [1, 1]) is None


def test_summarize_per_group_and_average():
    from evaluate import summarize
    records = [
        {"index": 1, "group": 5, "correct": 2, "pass@1": 0.5, "pass@4": 1.0, "negative_answer_diversity": 1.0,
         "entropy_sum": 2.0, "tokens": 4.0, "length_sum": 4.0, "responses": 4},
        {"index": 0, "group": 5, "correct": 0, "pass@1": 0.0, "pass@4": 0.0, "negative_answer_diversity": 0.5,
         "entropy_sum": 2.0, "tokens": 4.0, "length_sum": 8.0, "responses": 4},
        {"index": 2, "group": 7, "correct": 4, "pass@1": 1.0, "pass@4": 1.0, "negative_answer_diversity": None,
         "entropy_sum": 0.0, "tokens": 8.0, "length_sum": 8.0, "responses": 4},
    ]
    result = summarize(records, n_samples=4, temperature=1.0, top_p=0.95)
    curve_5 = result["per_group"][5].pop("pass@k_curve")
    assert result["per_group"][5].pop("correct") == {"0": 0, "1": 2} and result["per_group"][7]["correct"] == {"2": 4}
    assert result["per_group"][5] == {"pass@1": 0.25, "pass@4": 0.5, "n_items": 2}
    # pass@2 of a maze with 2 of 4 correct: 1 - C(2,2)/C(4,2) = 5/6; the other maze solves nothing
    assert curve_5 == pytest.approx({"1": 0.25, "2": 5 / 12, "4": 0.5})
    assert result["average_pass@k_curve"] == pytest.approx({"1": (0.25 + 1) / 2, "2": (5 / 12 + 1) / 2, "4": 0.75})
    assert result["correct"] == {"0": 0, "1": 2, "2": 4}
    assert result["average"] == {"pass@1": (0.25 + 1.0) / 2, "pass@4": (0.5 + 1.0) / 2}  # mean over sizes
    assert result["negative_answer_diversity"] == 0.75 and result["entropy"] == 0.25
    assert result["response_length"] == 20 / 12
    g_pass = result["g_pass"]
    # size 5: mazes with 2 and 0 of 4 correct; size 7: 4 of 4. G-Pass@4: tau=0.5 needs 2 of 4, tau=1 all 4
    assert g_pass == {"G-pass@4_0.5": ((1.0 + 0.0) / 2 + 1.0) / 2, "G-pass@4_1.0": ((0.0 + 0.0) / 2 + 1.0) / 2}


def test_evaluate_loop_and_cli(tmp_path, scripts):
    """The loop on a micro model: well-formed, deterministic; the CLI evaluates a saved folder to JSON (run as a
    script through conftest's `scripts`)."""
    import json

    from evaluate import evaluate, format_table
    from tasks import MazeTask
    from infra.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    task = MazeTask((), 0, (5, 7), 2, seed=0)
    test = task.make_splits()["test"]
    run = lambda: evaluate(model, tokenizer, test, "compact", n_samples=4, ks=(1, 2), max_new_tokens=8,
                           prompts_per_batch=3, show_progress=False, task=task)
    result = run()
    assert result == run()  # seeded
    assert set(result["per_group"]) == {5, 7} and all(v["n_items"] == 2 for v in result["per_group"].values())
    assert all(0 <= v <= 1 for v in result["average"].values())
    assert result["average"]["pass@1"] <= result["average"]["pass@2"]
    assert result["entropy"] > 0 and 1 <= result["response_length"] <= 8
    assert "5x5" in format_table({"random": result})
    with pytest.raises(ValueError, match="every k"):
        evaluate(model, tokenizer, test, n_samples=4, ks=(1, 8), task=task)

    folder = tmp_path / "micro"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "eval.json"
    result = scripts.run(["evaluate.py", str(folder), "--sizes=5", "--n_test=2", "--n_samples=4", "--k=2",
                          "--max_new_tokens=8", f"--out={out}"])  # in the repository, as a user runs it
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads(out.read_text())["average"]) == {"pass@1", "pass@2"}


def test_curve_ks():
    from evaluate import curve_ks
    assert curve_ks(1) == [1] and curve_ks(8) == [1, 2, 4, 8] and curve_ks(128)[-2:] == [64, 128]
    assert curve_ks(12) == [1, 2, 4, 8, 12]  # n itself closes the curve


@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), min_size=1, max_size=8))))
def test_pass_at_k_curve_is_monotone_and_starts_at_accuracy(case):
    from evaluate import pass_at_k_curve
    n, counts = case
    curve = pass_at_k_curve(n, counts)
    values = [curve[k] for k in sorted(curve)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    assert curve[1] == pytest.approx(sum(counts) / (n * len(counts)))
    assert curve[n] == pytest.approx(sum(c > 0 for c in counts) / len(counts))  # solved at all within n


def test_crossing_k():
    from evaluate import crossing_k
    start = {1: 0.2, 2: 0.3, 4: 0.4, 8: 0.5}
    # above by 0.1 at k=2, below by 0.1 at k=4: crosses halfway in log2 k, at k = 2 ** 1.5
    assert crossing_k({1: 0.3, 2: 0.4, 4: 0.3, 8: 0.3}, start) == (pytest.approx(2 ** 1.5), "cross")
    assert crossing_k({1: 0.3, 2: 0.4, 4: 0.5, 8: 0.6}, start) == (None, "above")
    assert crossing_k({1: 0.1, 2: 0.4, 4: 0.5, 8: 0.6}, start) == (None, "below")
    assert crossing_k({1: 0.3, 2: 0.3, 4: 0.4, 8: 0.5}, start) == (2.0, "cross")  # equal counts as reached


def test_solved_overlap():
    from evaluate import solved_overlap
    overlap = solved_overlap({"0": 3, "1": 0, "2": 1, "3": 0}, {"0": 0, "1": 2, "2": 5, "3": 0})
    assert overlap == {"a": 2, "b": 2, "both": 1, "only_a": 1, "only_b": 1, "neither": 1, "items": 4}
    with pytest.raises(ValueError, match="same items"):
        solved_overlap({"0": 1}, {"1": 1})


class Stop(Exception):
    pass


def stop_at(monkeypatch, module, name, seen):
    """Replace module.name by a function that records its arguments and stops the command."""
    def record(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        raise Stop
    monkeypatch.setattr(module, name, record)


def test_cli_picks_the_template_by_model_and_shares_train_py_defaults(qwen_model_dir, tmp_path, monkeypatch):
    """A chat model (Qwen's tokenizer and chat template) gets the paper's prompt through its chat template, on
    train.py's held-out split and settings; a nanopassk checkpoint is evaluated with its run's own config."""
    import torch

    import evaluate
    from infra.tiny import build_model, build_tokenizer

    seen, items = {}, {}
    real_score_items = evaluate.score_items
    monkeypatch.setattr(evaluate, "score_items", lambda *args, **kwargs: items.update(args=args) or
                        real_score_items(*args, **kwargs))
    stop_at(monkeypatch, evaluate, "generate_rollouts", seen)
    with pytest.raises(Stop):
        evaluate.main([qwen_model_dir])
    prompt = seen["args"][2][0]
    assert prompt.startswith("<|im_start|>") and "You need to solve the following maze" in prompt
    assert seen["args"][3:5] == (32, 48)  # train.py's eval_samples and max_new_tokens
    _, _, test, template, n_samples, ks, max_new_tokens = items["args"][:7]
    assert template == "paper" and (n_samples, ks, max_new_tokens) == (32, (1, 8), 48)
    assert sorted(set(test["group"])) == [5, 7, 9, 11] and len(test) == 4 * 30  # train.py's test split
    with pytest.raises(Stop):  # any task of tasks.make_task
        evaluate.main([qwen_model_dir, "--task=rg:chain_sum", "--n_test=2"])
    assert set(items["args"][2]["group"]) == {"chain_sum"} and "<answer>answer here</answer>" in seen["args"][2][0]

    run = tmp_path / "ckpt"  # a train.py checkpoint of the tiny model: its run's config decides
    tokenizer = build_tokenizer()
    build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2).save_pretrained(run)
    tokenizer.save_pretrained(run)
    from infra.cli import config_defaults
    config = {**config_defaults(os.path.join(os.path.dirname(evaluate.__file__), "train.py")),
              "train_sizes": (5,), "n_train": 5, "test_sizes": (5,), "n_test": 3, "max_new_tokens": 9,
              "eval_samples": 4, "eval_k": 2}
    torch.save({"config": config, "step": 1}, run / "trainer_state.pt")
    with pytest.raises(Stop):
        evaluate.main([str(run)])
    _, _, test, template, n_samples, ks, max_new_tokens = items["args"][:7]
    assert template == "compact" and (n_samples, ks, max_new_tokens) == (4, (1, 2), 9) and len(test) == 3


def test_wrong_answer_diversity_reads_the_tasks_own_answers():
    """score_items asks the task for each response's answer (a math task's \\boxed{}, not the maze's tags)."""
    from evaluate import score_items
    from infra.tiny import build_model, build_tokenizer
    from tasks import MazeTask

    maze = MazeTask((), 0, (5,), 2, seed=0)

    class Counting:
        calls = 0

        def format_prompt(self, row, template):
            return maze.format_prompt(row, template)

        def reward(self, response, row):
            return 0.0

        def extract_answer(self, response):
            Counting.calls += 1
            return "same"

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    records = score_items(model, tokenizer, maze.make_splits()["test"], "compact", n_samples=4, ks=(1,),
                          max_new_tokens=4, show_progress=False, task=Counting())
    assert Counting.calls == 2 * 4 and all(record["negative_answer_diversity"] == 1 / 4 for record in records)
