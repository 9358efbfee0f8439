"""mathtask.py: a local problem set as a task (splits, columns, groups, prompts, bad input), trained and evaluated."""
import json
import os

import pytest

from mathreward import MathVerifier
from mathtask import INSTRUCTION, MathTask
from tasks import make_task


def write_jsonl(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return str(path)


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    """60 generated sums (reasoning-gym's chain_sum) with `\\boxed` solutions, a source column and one repeat."""
    import reasoning_gym

    items = reasoning_gym.create_dataset("chain_sum", size=60, seed=1, min_terms=2, max_terms=2, min_digits=1,
                                         max_digits=1)
    rows = [{"problem": item["question"].split(": ")[-1], "solution": f"We add: \\boxed{{{item['answer']}}}.",
             "source": "even" if i % 2 == 0 else "odd"} for i, item in enumerate(items)]
    rows.append({**rows[0], "problem": "  " + rows[0]["problem"].upper()})  # the same question, spaced and cased
    return write_jsonl(tmp_path_factory.mktemp("math") / "sums.jsonl", rows), rows


@pytest.fixture(scope="module")
def verifier():
    verifier = MathVerifier()
    yield verifier
    verifier.close()


def test_held_out_split_is_seeded_disjoint_and_deduplicated(problems, verifier):
    path, rows = problems
    splits = MathTask(path, verifier=verifier, seed=3).make_splits()
    train, test = splits["train"], splits["test"]
    questions = [" ".join(q.split()).lower() for q in list(train["question"]) + list(test["question"])]
    assert len(questions) == len(set(questions)) == len({" ".join(r["problem"].split()).lower() for r in rows})
    assert len(test) == round(0.1 * len(questions))
    assert set(test["group"]) == {"sums"}  # no group column: the file's name
    assert list(test["question"]) == list(MathTask(path, verifier=verifier, seed=3).make_splits()["test"]["question"])
    assert list(test["question"]) != list(MathTask(path, verifier=verifier, seed=4).make_splits()["test"]["question"])
    row = train[0]
    assert row["answer"] == f"\\boxed{{{row['gold']}}}" and rows[row["row"]]["solution"] == f"We add: {row['answer']}."


def test_a_test_file_removes_its_questions_from_train_and_groups_by_file(problems, verifier, tmp_path):
    path, rows = problems
    aime = write_jsonl(tmp_path / "aime24.jsonl", [{"question": rows[5]["problem"].lower(), "answer": 7},
                                                   {"question": "Find $x$ if $2x = 1$.", "answer": "$\\frac{1}{2}$"}])
    other = write_jsonl(tmp_path / "other.jsonl", [{"question": "What is 1+1?", "answer": "2"}])
    task = make_task(f"math:{path}", {"test": [aime, other], "group": "source"}, seed=0)
    task.verifier.close()
    task.verifier = verifier
    splits = task.make_splits()
    assert list(splits["test"]["group"]) == ["aime24", "aime24", "other"] and list(splits["test"]["gold"])[1] == "\\frac{1}{2}"
    distinct = {" ".join(row["problem"].split()).lower() for row in rows}
    assert rows[5]["problem"] not in list(splits["train"]["question"]) and len(splits["train"]) == len(distinct) - 1
    assert set(splits["train"]["group"]) == {"even", "odd"}  # a column when the file has one
    test = splits["test"][1]
    assert task.format_prompt(test, "paper") == f"Find $x$ if $2x = 1$.\n{INSTRUCTION}"
    assert task.format_prompt(test, "compact") == "Find $x$ if $2x = 1$.\n>"
    assert task.reward("so $x = \\boxed{0.5}$", test) == 1.0 and task.reward("\\boxed{2}", test) == 0.0


def test_other_formats_and_columns(tmp_path, verifier):
    from datasets import Dataset, DatasetDict

    data = Dataset.from_list([{"question": f"What is {i} + {i}?", "answer": str(2 * i), "level": f"L{i % 2}"}
                              for i in range(10)])
    data.to_parquet(str(tmp_path / "p.parquet"))
    data.to_csv(str(tmp_path / "c.csv"), index=False)
    DatasetDict({"test": data}).save_to_disk(str(tmp_path / "folder"))
    for path in ("p.parquet", "c.csv", "folder"):
        splits = MathTask(str(tmp_path / path), group="level", test_fraction=0.5, verifier=verifier).make_splits()
        assert len(splits["train"]) == len(splits["test"]) == 5 and set(splits["train"]["group"]) <= {"L0", "L1"}
        assert sorted(list(splits["train"]["gold"]) + list(splits["test"]["gold"]), key=int) == [str(2 * i) for i in range(10)]


def test_bad_input_is_one_clear_line(tmp_path, problems, verifier, capsys):
    path, _ = problems
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "1+1", "answer": "2"}\n{not json\n')
    cases = [("math:/no/such.jsonl", {}, "no file or folder '/no/such.jsonl'"),
             (f"math:{broken}", {}, "cannot read"),
             (f"math:{tmp_path}/x.txt", {}, "is not one of .jsonl"),
             (f"math:{path}", {"question": "prompt"}, "has no column 'prompt' (option 'question'); its columns: problem, "
                                                      "solution, source"),
             (f"math:{path}", {"answer": "final"}, "its columns: problem, solution, source"),
             (f"math:{path}", {"solution": "steps"}, "has no column 'answer', nor 'steps'"),
             (f"math:{path}", {"test": path}, "the train split is empty"),
             (f"math:{path}", {"test_fraction": 1.5}, "test_fraction=1.5"),
             (f"math:{path}", {"shuffle": True}, "has no option shuffle; its options: question")]
    (tmp_path / "x.txt").write_text("")
    for name, options, message in cases:
        with pytest.raises(ValueError, match=None) as error:
            task = make_task(name, options)
            task.verifier = verifier
            task.make_splits()
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)

    # gold answers math-verify cannot parse: those rows are skipped and named; all of them: an error
    rows = [{"problem": f"q{i}", "answer": answer} for i, answer in enumerate(["1", "\\left(", "2", "", "3", None])]
    splits = MathTask(write_jsonl(tmp_path / "some.jsonl", rows), verifier=verifier, test_fraction=0.3).make_splits()
    assert sorted(list(splits["train"]["row"]) + list(splits["test"]["row"])) == [0, 2, 4]
    assert capsys.readouterr().err.strip() == (f"task math: skipped 3 of 6 rows of {tmp_path}/some.jsonl whose answer "
                                               "math-verify cannot parse (rows 1, 3, 5, numbered from 0)")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"problem": "q", "answer": "\\left("}])
    with pytest.raises(ValueError, match="has no problem with a question and a gold answer math-verify can parse"):
        MathTask(bad, verifier=verifier).make_splits()


FAST = ["--warmup_sft_steps=20", "--max_steps=2", "--eval_every=2", "--prompt_batch=4", "--mini_batch=2",
        "--n_rollouts=4", "--k=2", "--max_new_tokens=16", "--eval_samples=4", "--eval_k=2", "--curve_samples=0",
        "--show_progress=False", "--threads=1"]


def test_the_tiny_model_trains_on_a_problem_file_and_evaluate_reports_its_curve(problems, verifier, scripts,
                                                                                 tmp_path):
    """train.py and evaluate.py run the math task through tasks.py's interface, as they run any task; a bad
    column is one line before any compute."""
    from infra.checkpoint import load_policy
    from evaluate import evaluate, format_curves

    path, _ = problems
    out = str(tmp_path / "run")
    result = scripts.run(["train.py", f"--out_dir={out}", f"--task=math:{path}", "--task_options={'group': 'source'}",
                          *FAST])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["step"] for r in metrics if "reward" in r] == [1, 2] and all(0 <= r["reward"] <= 1 for r in metrics
                                                                          if "reward" in r)
    evals = [r["eval"] for r in metrics if "eval" in r]
    assert len(evals) == 2 and set(evals[-1]["per_group"]) <= {"even", "odd"} and "pass@k (%)" in result.stdout

    task = MathTask(path, group="source", verifier=verifier)
    test = task.make_splits()["test"]
    model, tokenizer = load_policy(os.path.join(out, "ckpt"))
    curve = evaluate(model, tokenizer, test, "compact", n_samples=4, ks=(1, 4), max_new_tokens=16,
                     show_progress=False, task=task)
    assert set(curve["average_pass@k_curve"]) == {"1", "2", "4"}
    assert all(0 <= value <= 1 for value in curve["average_pass@k_curve"].values())
    assert "k=4" in format_curves({"math": curve})

    bad = scripts.run(["train.py", f"--out_dir={tmp_path / 'bad'}", f"--task=math:{path}",
                       "--task_options={'question': 'prompt'}", *FAST])
    assert bad.returncode != 0 and "has no column 'prompt'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("config, length", [("math_llama3.2_3b", 6144), ("math_llama3.1_8b", 6144),
                                            ("math_r1_distill_qwen_1.5b", 10240), ("math_r1_distill_qwen_7b", 10240)])
def test_paper_configs_load_and_ask_for_the_users_files(scripts, tmp_path, config, length):
    """Every key of the math configs is one train.py knows (appendix E.1's response lengths); without the user's
    problem files the run stops in one line naming the first missing file (the test files are read first), before any compute."""
    source = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "config", config + ".py")).read()
    assert f"max_new_tokens = {length}" in source
    result = scripts.run(["train.py", f"config/{config}.py", "--model=tiny", f"--out_dir={tmp_path}"])
    assert result.returncode != 0 and "no file or folder 'data/aime24.jsonl'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
