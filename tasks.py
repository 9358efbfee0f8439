"""A verifiable-reward task: held-out splits, a prompt, a binary reward (paper section 2.1, R in {0, 1}).

Every task is the same four methods on plain rows (dicts), so train.py and evaluate.py never know which task
they run:
    task.make_splits()                 -> DatasetDict(train, test), deduplicated and disjoint; every row has
                                          `group` (its table row: a maze size, an rg dataset's name) and
                                          `answer` (one reference answer, "" if the task has none)
    task.format_prompt(row, template)  -> the prompt text ("compact": the tiny model's; "paper": English)
    task.reward(response, row)         -> 0.0 or 1.0, never raises: a response is untrusted input
    task.extract_answer(response)      -> the answer the reward reads, or None (evaluate.py's wrong-answer
                                          diversity, figure 7a)

`make_task(NAME, options, ...)` makes one: "maze" (the paper's, mazes.py + verify.py), "math:PATH" (a local
problem set, mathtask.py: appendix E.1) or "rg:NAME" (any reasoning-gym dataset, `ReasoningGymTask`: the
field's library of procedural tasks, each scored by its own `score_answer`; only a score of exactly 1 is 1).
"""
import os
import re

from infra.cli import one_line
from mathtask import MATH_PREFIX, make_math_task
from mazes import format_prompt as format_maze_prompt
from mazes import make_mazes
from verify import extract_answer as extract_tagged_answer
from verify import maze_reward

RG_PREFIX = "rg:"
MAX_ANSWER_CHARS = 2000
SAFE_ANSWERS = {  # reasoning-gym datasets whose scorer evaluates the answer: the answers it may see
    "countdown": lambda answer: re.fullmatch(r"[0-9+\-*/() ]*", answer) is not None and "**" not in answer,
}
# the tasks this project tests and measures, with settings that leave the tiny model headroom (RESULTS.md)
TASK_PRESETS = {
    "rg:countdown": dict(min_numbers=3, max_numbers=3, min_value=1, max_value=9, min_target=5, max_target=30),
    "rg:chain_sum": dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2),
}
RG_INSTRUCTION = ("Given a problem, answer the question. Provide the final answer in the following format: "
                  "<answer>answer here</answer>. Do not explain your reasoning inside the answer tags.\n\n")


class MazeTask:
    """The paper's maze (table 4): train/test sizes and counts as in mazes.make_mazes."""

    name = "maze"

    def __init__(self, train_sizes=(5, 7), n_train=None, test_sizes=(5, 7, 9, 11), n_test=30, seed=0):
        self.train_sizes, self.n_train, self.test_sizes, self.n_test, self.seed = (
            train_sizes, n_train, test_sizes, n_test, seed)

    def make_splits(self):
        from datasets import DatasetDict

        splits = make_mazes(self.train_sizes, self.n_train, self.test_sizes, self.n_test, seed=self.seed)
        return DatasetDict({name: split.add_column("group", split["size"]).add_column("answer", split["solution"])
                            for name, split in splits.items()})

    def format_prompt(self, row, template="compact"):
        return format_maze_prompt(row["maze"], template)

    def reward(self, response, row):
        return maze_reward(response, row["maze"])

    def extract_answer(self, response):
        return extract_tagged_answer(response)


class ReasoningGymTask:
    """Any reasoning-gym dataset (`reasoning_gym.create_dataset(NAME, size=, seed=, **options)`) as a binary-reward
    task. Items are kept by the task: a row's `key` ("test:i" or "train:i") names its entry, which `score_answer`
    needs.
      - splits: the test items are generated from `seed`, the train items from another seed, and a train item
        whose question is also a test question (or repeats an earlier one) is dropped. A generator that gives up
        on its options (countdown with a target range three small numbers cannot reach) is one ValueError line
        naming the task, its options and the preset that works (TASK_PRESETS);
      - reward: the text inside the last `<answer>...</answer>` (reasoning_gym.utils.extract_answer, the format
        of the task's own examples), scored by the dataset's `score_answer`; only a score of exactly 1.0 is 1.
        Partial credit (countdown scores a wrong expression 0.01) is 0: Pass@k needs binary rewards. Some
        scorers evaluate the answer as code (countdown: sympy's parse_expr, which calls eval), so the answers of
        such a task must first match the task's grammar (SAFE_ANSWERS): `__import__('os')` or `9**9**9` is 0
        without being evaluated. Answers over MAX_ANSWER_CHARS are 0;
      - prompts: "paper" is the question after an instruction to answer inside the tags (reasoning-gym's
        default system prompt, shortened), through the chat template as for mazes. "compact" (the tiny model) is
        the question without the text that every question of the task shares (their longest common prefix and
        suffix, e.g. countdown's instructions), then "\\n>": the tiny model reads only what varies.
    """

    def __init__(self, dataset_name, options=None, n_train=2000, n_test=100, seed=0):
        import reasoning_gym

        self.name, self.dataset_name, self.options = RG_PREFIX + dataset_name, dataset_name, dict(options or {})
        if dataset_name not in reasoning_gym.factory.DATASETS:
            raise ValueError(f"unknown reasoning-gym task {dataset_name!r}; known: "
                             f"{', '.join(sorted(reasoning_gym.factory.DATASETS))}")
        if not (isinstance(n_train, int) and isinstance(n_test, int) and n_train > 0 and n_test > 0):
            raise ValueError(f"task {self.name}: n_train and n_test must be positive integers (items), "
                             f"got {n_train!r} and {n_test!r}")
        try:  # the dataset checks its own options: an unknown or out-of-range one fails here, before any compute
            self.test_set = reasoning_gym.create_dataset(dataset_name, size=n_test, seed=seed, **self.options)
            # the train pool has spare items, so that dropping the duplicates still leaves about n_train
            self.train_set = reasoning_gym.create_dataset(dataset_name, size=n_train + n_test, seed=seed + 1_000_003,
                                                          **self.options)
        except Exception as error:  # reasoning-gym raises AssertionError/TypeError/ValueError for bad options
            raise ValueError(f"task {self.name} rejects options {self.options}: {one_line(error)}"
                             f"{self.preset_hint()}") from None
        self.n_train, self.entries, self.rows = n_train, {}, None

    def preset_hint(self):
        """'; a setting that works: ...' naming this task's preset as a --task_options value, or ''."""
        preset = TASK_PRESETS.get(self.name)
        if preset is None or preset == self.options:
            return ""
        return f"; a setting that works (tasks.TASK_PRESETS): \"--task_options={preset}\""

    def item(self, dataset, i):
        """Item i of a dataset; a generator that gives up (no item satisfies its options) is one ValueError line."""
        try:
            return dataset[i]
        except Exception as error:  # reasoning-gym's generators raise ValueError, RuntimeError or Exception
            raise ValueError(f"task {self.name} with options {self.options}: its generator gave up "
                             f"({one_line(error)}){self.preset_hint()}") from None

    def split_rows(self):
        """{"test": rows, "train": rows}, built once; also `shared`, the (prefix, suffix) lengths that every
        question of both splits shares, which the compact prompt cuts."""
        if self.rows is not None:
            return self.rows
        seen, rows = set(), {"test": [], "train": []}
        for split, dataset, limit in (("test", self.test_set, len(self.test_set)),
                                      ("train", self.train_set, self.n_train)):
            for i in range(len(dataset)):
                entry = self.item(dataset, i)
                if entry["question"] in seen or len(rows[split]) == limit:
                    continue
                seen.add(entry["question"])
                key = f"{split}:{len(rows[split])}"
                self.entries[key] = (dataset, entry)
                answer = entry.get("answer")
                rows[split].append({"key": key, "question": entry["question"], "group": self.dataset_name,
                                    "size": self.dataset_name, "answer": "" if answer is None else str(answer)})
        if not rows["train"] or not rows["test"]:
            raise ValueError(f"task {self.name} with options {self.options} gives no distinct items")
        questions = [row["question"] for split in rows.values() for row in split]
        prefix = os.path.commonprefix(questions)
        suffix = os.path.commonprefix([question[len(prefix):][::-1] for question in questions])[::-1]
        self.shared, self.rows = (len(prefix), len(suffix)), rows
        return rows

    def make_splits(self):
        from datasets import Dataset, DatasetDict

        rows = self.split_rows()
        return DatasetDict({split: Dataset.from_list(rows[split]) for split in ("train", "test")})

    def format_prompt(self, row, template="compact"):
        if template == "compact":
            question = row["question"]
            self.split_rows()  # `shared` is of every question of both splits, whichever is asked for first
            start, end = self.shared
            return question[start:len(question) - end] + "\n>"
        if template == "paper":
            return RG_INSTRUCTION + row["question"]
        raise ValueError(f"unknown prompt template {template!r}; choose from ['compact', 'paper']")

    def extract_answer(self, response):
        from reasoning_gym.utils import extract_answer

        return extract_answer(response) if isinstance(response, str) else None

    def reward(self, response, row):
        if not isinstance(response, str):
            return 0.0
        self.split_rows()  # the entries a row's key names
        dataset, entry = self.entries[row["key"]]
        try:
            answer = self.extract_answer(response)
            safe = SAFE_ANSWERS.get(self.dataset_name, lambda _: True)
            if answer is None or len(answer) > MAX_ANSWER_CHARS or not safe(answer):
                return 0.0
            return 1.0 if dataset.score_answer(answer, entry) == 1.0 else 0.0
        except Exception:  # a scorer may choke on odd text (eval of an expression, JSON...): untrusted input is 0
            return 0.0


def make_task(name="maze", options=None, **splits):
    """The task named `name` ("maze", "rg:NAME" or "math:PATH") with its options; `splits` are the split settings
    (maze: train_sizes, n_train, test_sizes, n_test, seed; rg: n_train, n_test, seed, the others ignored,
    and a per-size n_train dict, train.py's maze default, means the default 2000 items; math: seed only, the
    file decides the items). Bad names and options are a ValueError with one readable line."""
    if name == "maze":
        if options:
            raise ValueError(f"task 'maze' takes no task_options (got {options}); set train_sizes, n_train, ... instead")
        return MazeTask(**splits)
    if isinstance(name, str) and name.startswith(RG_PREFIX):
        splits = {key: value for key, value in splits.items() if key in ("n_train", "n_test", "seed")
                  and not (key == "n_train" and isinstance(value, dict))}
        return ReasoningGymTask(name[len(RG_PREFIX):], options, **splits)
    if isinstance(name, str) and name.startswith(MATH_PREFIX):
        return make_math_task(name[len(MATH_PREFIX):], options, seed=splits.get("seed", 0))
    raise ValueError(f"unknown task {name!r}: use 'maze', 'rg:NAME' with NAME a reasoning-gym dataset, or 'math:PATH' "
                     "with PATH a problem file (mathtask.py)")
