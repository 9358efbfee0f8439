"""tasks.py: the maze and reasoning-gym tasks behind one interface (splits, prompt, binary reward)."""
import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mazes import format_prompt, make_mazes
from tasks import TASK_PRESETS, make_task
from verify import maze_reward

SMALL = dict(n_train=60, n_test=12, seed=0)


def rg_task(name, **splits):
    return make_task(name, TASK_PRESETS[name], **{**SMALL, **splits})


@pytest.fixture(scope="module", params=sorted(TASK_PRESETS))
def rg_splits(request):
    task = rg_task(request.param)
    return task, task.make_splits()


def test_maze_task_is_the_maze_of_mazes_and_verify():
    """The refactor changes nothing on the maze path: the same rows in the same order, the same prompts,
    the same reward on every response."""
    settings_ = dict(train_sizes=(5,), n_train={5: 20}, test_sizes=(5, 7), n_test=4, seed=3)
    task = make_task("maze", **settings_)
    splits, mazes = task.make_splits(), make_mazes(**settings_)
    for split in ("train", "test"):
        assert splits[split]["maze"] == mazes[split]["maze"] and splits[split]["size"] == mazes[split]["size"]
        assert splits[split]["answer"] == mazes[split]["solution"]
    row = splits["test"][0]
    for template in ("compact", "paper"):
        assert task.format_prompt(row, template) == format_prompt(row["maze"], template)
    responses = [f"<answer>{row['answer']}</answer>", row["answer"], "\\boxed{RR}", "<answer>", "", "DDRRLLUU"]
    assert [task.reward(text, row) for text in responses] == [maze_reward(text, row["maze"]) for text in responses]
    assert task.reward(f"<answer>{row['answer']}</answer>", row) == 1.0


def test_rg_splits_are_disjoint_deduplicated_and_deterministic(rg_splits):
    task, splits = rg_splits
    train, test = splits["train"]["question"], splits["test"]["question"]
    assert not set(train) & set(test)
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert 0 < len(test) <= SMALL["n_test"] and 0 < len(train) <= SMALL["n_train"]
    again = rg_task(task.name).make_splits()
    assert again["train"]["question"] == train and again["test"]["question"] == test
    other = rg_task(task.name, seed=1).make_splits()
    assert other["test"]["question"] != test  # the seed picks the items


def test_rg_reference_answers_score_one_and_partial_credit_scores_zero(rg_splits):
    task, splits = rg_splits
    for row in splits["test"]:
        assert row["answer"], "a supported task has a reference answer for the tiny warm start"
        assert task.reward(f"<answer>{row['answer']}</answer>", row) == 1.0
        assert task.reward(f"<answer> {row['answer']} </answer>", row) == 1.0  # the task's own extraction strips
        assert task.reward(row["answer"], row) == 0.0  # no tags: no answer
    if task.name == "rg:countdown":  # countdown gives a wrong expression partial credit (0.01): binary 0 here
        row = splits["test"][0]
        dataset, entry = task.entries[row["key"]]
        assert 0 < dataset.score_answer("1", entry) < 1 and task.reward("<answer>1</answer>", row) == 0.0


def test_countdown_accepts_any_valid_expression():
    """Countdown has many right answers: another expression than the reference, equal to the target, scores 1."""
    task = rg_task("rg:countdown")
    splits = task.make_splits()
    for row in splits["train"]:
        numbers = task.entries[row["key"]][1]["metadata"]["numbers"]
        target = task.entries[row["key"]][1]["metadata"]["target"]
        if len(numbers) == 3 and numbers[0] + numbers[1] + numbers[2] == target:
            reordered = f"{numbers[2]} + {numbers[1]} + {numbers[0]}"
            if reordered != row["answer"]:
                assert task.reward(f"<answer>{reordered}</answer>", row) == 1.0
                return
    pytest.fail("no countdown item with a sum target among the train items")


RESPONSE_PIECES = st.sampled_from(["<answer>", "</answer>", "boxed{", "}", "{", "$", "(", ")", "*", "/", "+", "-",
                                   "0", "7", "1e400", "**", "9**9**9", "__import__('os')", "\n", " ", "nan", "{\"0\": 1}",
                                   "RRDD", "ainomma", "answer", "é", "\x00"])


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.one_of(RESPONSE_PIECES, st.text(max_size=8)), max_size=12), index=st.integers(0, 11))
def test_any_string_gets_zero_or_one_on_every_task(pieces, index):
    response = "".join(pieces)
    for task, splits in TASKS_FOR_FUZZ:
        row = splits["test"][index % len(splits["test"])]
        assert task.reward(response, row) in (0.0, 1.0)
        assert task.reward(f"<answer>{response}</answer>", row) in (0.0, 1.0)


def _fuzz_tasks():
    tasks = [make_task("maze", train_sizes=(5,), n_train={5: 5}, test_sizes=(5,), n_test=4)]
    tasks += [rg_task(name) for name in sorted(TASK_PRESETS)]
    return [(task, task.make_splits()) for task in tasks]


TASKS_FOR_FUZZ = _fuzz_tasks()


def test_non_string_responses_get_zero(rg_splits):
    task, splits = rg_splits
    for response in (None, 3, b"<answer>x</answer>", ["<answer>"]):
        assert task.reward(response, splits["test"][0]) == 0.0


@pytest.mark.parametrize("name, options, message", [
    ("rg:no_such_task", {}, "unknown reasoning-gym task 'no_such_task'"),
    ("countdown", {}, "unknown task 'countdown': use 'maze', 'rg:NAME'"),
    ("rg:countdown", {"bogus": 1}, "task rg:countdown rejects options {'bogus': 1}: TypeError"),
    ("rg:countdown", {"min_numbers": 0}, "task rg:countdown rejects options {'min_numbers': 0}: AssertionError"),
    ("maze", {"size": 5}, "task 'maze' takes no task_options"),
])
def test_bad_task_names_and_options_are_one_clear_line(name, options, message):
    with pytest.raises(ValueError) as error:
        make_task(name, options, n_train=10, n_test=2)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_generator_that_gives_up_names_the_task_its_options_and_a_preset_that_works():
    """Three numbers up to 9 cannot reach countdown's default targets: reasoning-gym gives up on the first item.
    The line says which task and options, and the printed preset is a --task_options value that works."""
    options = {"min_numbers": 3, "max_numbers": 3, "max_value": 9}
    task = make_task("rg:countdown", options, n_train=2000, n_test=100)  # the README's example (item 3 fails)
    with pytest.raises(ValueError) as error:
        task.make_splits()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"task rg:countdown with options {options}: its generator gave up (ValueError: ")
    assert "tasks.TASK_PRESETS" in message
    suggested = message.split('"--task_options=')[1].rstrip('"')
    assert ast.literal_eval(suggested) == TASK_PRESETS["rg:countdown"]
    splits = make_task("rg:countdown", ast.literal_eval(suggested), n_train=10, n_test=2).make_splits()
    assert len(splits["test"]) == 2
    with pytest.raises(ValueError) as error:  # a rejected option also points to the preset
        make_task("rg:countdown", {"bogus": 1}, n_train=10, n_test=2)
    assert f'"--task_options={TASK_PRESETS["rg:countdown"]}"' in str(error.value)


def test_every_row_names_its_group(rg_splits):
    """`group` is the table row a test item is reported under: the maze size, or the rg task's dataset name.
    `size` stays on every row (the maze's own word; evaluate.py still reads it on rg rows)."""
    task, splits = rg_splits
    for split in ("train", "test"):
        assert set(splits[split]["group"]) == {task.dataset_name} == set(splits[split]["size"])
    mazes = make_task("maze", train_sizes=(5,), n_train={5: 4}, test_sizes=(5, 7), n_test=2).make_splits()
    assert mazes["test"]["group"] == mazes["test"]["size"] == [5, 5, 7, 7]


def test_compact_prompt_keeps_only_what_varies():
    task = rg_task("rg:chain_sum")
    splits = task.make_splits()
    row = splits["test"][0]
    expression = task.entries[row["key"]][1]["metadata"]["expression"]
    # "State the final answer to the following arithmetic problem: 15 - 43 - 75 =": the shared words and " =" go
    assert task.format_prompt(row, "compact") == expression + "\n>"
    assert row["question"] in task.format_prompt(row, "paper") and "<answer>" in task.format_prompt(row, "paper")
    with pytest.raises(ValueError, match="unknown prompt template"):
        task.format_prompt(row, "chatty")


def test_compact_prompt_does_not_depend_on_call_order():
    split_first = rg_task("rg:chain_sum")
    row = split_first.make_splits()["test"][0]
    prompt_first = rg_task("rg:chain_sum")  # a fresh task asked for a prompt before its splits
    assert prompt_first.format_prompt(row, "compact") == split_first.format_prompt(row, "compact")


def test_each_task_extracts_its_own_answer(tmp_path):
    """The wrong-answer diversity of evaluate.py reads the answer as the task's own reward does."""
    assert make_task("maze").extract_answer("think <answer>RRD</answer> done") == "RRD"
    rg = rg_task("rg:chain_sum")
    assert rg.extract_answer("so <answer> 12 </answer>") == "12" and rg.extract_answer("no tags") is None
    (tmp_path / "p.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": "4"}\n')
    math = make_task(f"math:{tmp_path / 'p.jsonl'}")
    assert math.extract_answer("<answer>3</answer> so \\boxed{1} or \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert math.extract_answer("no box") is None
