"""Mathematics, the paper's second domain (appendix E.1: AIME 2024, AIME 2025, OlymMATH), on any local problem set.

    python train.py --task=math:problems.jsonl                                   # a held-out tenth is the test split
    python train.py --task=math:train.parquet "--task_options={'test': ['aime24.jsonl', 'aime25.jsonl']}"

`make_task("math:PATH", options)` (tasks.py) is a task of tasks.py's interface on a file of problems with reference
answers (`.jsonl`, `.json`, `.parquet`, `.csv` or a `save_to_disk` folder, read with `datasets`; nothing is
downloaded); its options are `MathTask`'s. Rows: question, gold (the answer as the file gives it), answer
(`\\boxed{gold}`, a reference answer as a response writes it: the tiny model's warm start imitates it), group, row
(the row's number in its file, from 0).

Reward: mathreward.py (math-verify on the response's last `\\boxed{}`, bounded in time and size). Prompts:
"paper" is the question and the usual instruction to reason step by step and box the answer (the Qwen-math /
DeepSeek-R1 prompt), through the chat template; "compact" (the tiny model) is the question, then "\\n>".
"""
import os
import sys

from infra.cli import one_line
from mathreward import MathVerifier, last_boxed

MATH_PREFIX = "math:"  # make_task's name of a math task: "math:PATH"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
OPTIONS = ("question", "answer", "solution", "test", "test_fraction", "group", "split")


def normalise(question):
    """The form in which two questions are compared: whitespace collapsed, lower case."""
    return " ".join(str(question).split()).lower()


def read_table(path, split=""):
    """The rows of a problem file or save_to_disk folder as a `datasets.Dataset`; ValueError in one line."""
    import datasets

    if not os.path.exists(path):
        raise ValueError(f"task math: no file or folder {path!r}")
    suffix = os.path.splitext(path)[1].lower()
    if not os.path.isdir(path) and suffix not in FORMATS:
        raise ValueError(f"task math: {path!r} is not one of {', '.join(FORMATS)} or a save_to_disk folder")
    bars, verbosity = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL + 1)  # its own report of a bad file: ours is one line
    try:
        data = (datasets.load_from_disk(path) if os.path.isdir(path) else
                datasets.load_dataset(FORMATS[suffix], data_files=path, split="train"))
    except Exception as error:  # datasets raises many kinds (DatasetGenerationError, FileNotFoundError, ArrowInvalid)
        raise ValueError(f"task math: cannot read {path!r}: {one_line(error)}") from None
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()
    if isinstance(data, datasets.DatasetDict):
        name = split or (next(iter(data)) if len(data) == 1 else "train")
        if name not in data:
            raise ValueError(f"task math: {path!r} holds the splits {list(data)}: choose one with task_options "
                             f"{{'split': NAME}}")
        data = data[name]
    elif split:
        raise ValueError(f"task math: {path!r} holds one split; drop the option split={split!r}")
    return data


class MathTask:
    """A local problem set as a binary-reward task. Options (`task_options`):
      - question: its column; default `problem`, else `question`.
      - answer: the gold answer's column; default `answer`, else the last `\\boxed{...}` of the `solution` column
        (option `solution`). A gold answer math-verify cannot parse skips its row; the rows skipped are named in
        one line on stderr, and a file with none left is an error.
      - test: a file (or a list of files, e.g. AIME 2024 and 2025) read the same way as the test split; without it
        a seeded `test_fraction` (default 0.1) of the file is held out (seed: train.py's split_seed).
      - group: the column a test item's table row is reported under (e.g. `source` or `level`); default the
        column `group` where the file has one, else the file's name (`aime24` for aime24.jsonl). A test file
        without the column named is grouped by its name (train on MATH by level, test on AIME files).
      - split: which split of a `save_to_disk` folder that holds several (default: its only one, else `train`).
    Questions are compared after normalising whitespace and case: a repeated question is dropped, and the train
    split never holds a test question.
    """

    def __init__(self, path, question="", answer="", solution="solution", test=(), test_fraction=0.1, group="",
                 split="", seed=0, verifier=None):
        self.name, self.path, self.seed = MATH_PREFIX + path, path, seed
        self.columns = dict(question=question, answer=answer, solution=solution, group=group)
        self.test_paths = [test] if isinstance(test, str) else list(test)
        self.test_fraction, self.split = test_fraction, split
        if not all(isinstance(value, str) for value in [*self.columns.values(), *self.test_paths, split]):
            raise ValueError(f"task {self.name}: the options question, answer, solution, group, split and test "
                             "take strings (test: a path or a list of paths)")
        if not self.test_paths and not (isinstance(test_fraction, float) and 0 < test_fraction < 1):
            raise ValueError(f"task {self.name}: test_fraction={test_fraction!r} must be a float between 0 and 1")
        self.verifier = verifier or MathVerifier()

    def column(self, data, path, option, defaults):
        """The column an option names, else the first default the file has; ValueError naming its columns."""
        names = [self.columns[option]] if self.columns[option] else defaults
        found = next((name for name in names if name in data.column_names), None)
        if found is None and names:
            raise ValueError(f"task math: {path!r} has no column {' or '.join(map(repr, names))} (option "
                             f"{option!r}); its columns: {', '.join(data.column_names)}")
        return found

    def read_rows(self, path, seen):
        """The problems of one file whose question is not in `seen` (normalised; updated), with parseable gold
        answers; the rows skipped for their gold answer are said in one line."""
        data = read_table(path, self.split)
        question = self.column(data, path, "question", ["problem", "question"])
        columns = data.column_names
        if not (self.columns["answer"] or "answer" in columns or self.columns["solution"] in columns):
            raise ValueError(f"task math: {path!r} has no column 'answer', nor {self.columns['solution']!r} to take "
                             f"the last \\boxed{{}} of (options 'answer', 'solution'); its columns: {', '.join(columns)}")
        answer = self.column(data, path, "answer", ["answer"]) if self.columns["answer"] or "answer" in columns else None
        solution = None if answer else self.columns["solution"]
        group = self.columns["group"] or "group"
        if group not in columns and self.columns["group"] and path == self.path:
            self.column(data, path, "group", [])  # the named column is missing: the error naming the columns
        group = group if group in columns else None  # None: the file's name (a test file without the column)
        name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        rows, unparsed, repeated = [], [], 0
        for i, item in enumerate(data):
            text, key = item[question], normalise(item[question])
            repeated += key in seen
            if not isinstance(text, str) or not text.strip() or key in seen:
                continue
            gold = gold_answer(item[answer] if answer else last_boxed(item[solution] or ""))
            if gold is None or not self.verifier.parses(gold):
                unparsed.append(i)
                continue
            seen.add(key)
            rows.append({"question": text, "gold": gold, "answer": f"\\boxed{{{gold}}}",
                         "group": str(item[group]) if group else name, "row": i})
        if unparsed:
            shown = ", ".join(map(str, unparsed[:20])) + (", ..." if len(unparsed) > 20 else "")
            print(f"task math: skipped {len(unparsed)} of {len(data)} rows of {path} whose answer math-verify cannot "
                  f"parse (rows {shown}, numbered from 0)", file=sys.stderr)
        if not rows and not repeated:  # (only repeated questions: make_splits names the empty split)
            raise ValueError(f"task math: {path!r} has no problem with a question and a gold answer math-verify "
                             f"can parse ({len(data)} rows, {len(unparsed)} skipped for their answer)")
        return rows

    def make_splits(self):
        import torch
        from datasets import Dataset, DatasetDict

        seen = set()
        if self.test_paths:
            test = [row for path in self.test_paths for row in self.read_rows(path, seen)]
            train = self.read_rows(self.path, seen)  # a question also in a test file is in `seen`: dropped
        else:
            rows = self.read_rows(self.path, seen)
            order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(self.seed)).tolist()
            n_test = max(1, round(self.test_fraction * len(rows)))
            test, train = [rows[i] for i in sorted(order[:n_test])], [rows[i] for i in sorted(order[n_test:])]
        for split, rows in (("train", train), ("test", test)):
            if not rows:
                raise ValueError(f"task {self.name}: the {split} split is empty (every question of {self.path!r} is "
                                 "also a test question, or the file has too few problems to hold some out)")
        return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})

    def format_prompt(self, row, template="compact"):
        if template == "compact":
            return row["question"] + "\n>"
        if template == "paper":
            return f"{row['question']}\n{INSTRUCTION}"
        raise ValueError(f"unknown prompt template {template!r}; choose from ['compact', 'paper']")

    def reward(self, response, row):
        return self.verifier.reward(response, row["gold"])

    def extract_answer(self, response):
        return last_boxed(response)


def gold_answer(value):
    """A file's answer as text for math-verify: a number or string, without surrounding `$` or `\\boxed{}`; None
    for an empty one."""
    if value is None or isinstance(value, (list, dict)):
        return None
    text = str(value).strip()
    text = last_boxed(text) if "\\boxed{" in text else text.strip("$").strip()
    return text or None


def make_math_task(path, options=None, seed=0):
    """make_task's "math:PATH": the options checked by name first."""
    unknown = sorted(set(options or {}) - set(OPTIONS))
    if unknown:
        raise ValueError(f"task math:{path} has no option {', '.join(unknown)}; its options: {', '.join(OPTIONS)}")
    if not path:
        raise ValueError("task math: name the problem file, --task=math:PATH")
    return MathTask(path, seed=seed, **(options or {}))
