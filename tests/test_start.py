"""The shipped start policy (assets/tiny-maze-start, experiments/start.py): trained on no held-out maze of the
families that start from it, checked by layout (the maze grid text), and its recorded fingerprint is its file's."""
import hashlib
import json
import os

import pytest

from experiments import modes, start
from mazes import format_prompt, make_mazes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, start.START)
# the held-out mazes that must be unseen: every mode starting from the shipped start, the original family, and
# train.py's default split (compare.py's demo evaluates on it)
DEFAULT_SPLIT = dict(train_sizes=(5, 7), n_train={5: 150, 7: 10000}, test_sizes=(5, 7, 9, 11), n_test=30)
SPLITS = {}  # built once per test session: each takes a few seconds


def split_of(name):
    """make_mazes' split of a mode's train.py settings (or train.py's default), as tasks.py builds it (seed 0)."""
    if name not in SPLITS:
        train = DEFAULT_SPLIT if name == "default" else modes.MODES[name]["train"]
        SPLITS[name] = make_mazes(train["train_sizes"], train["n_train"], train["test_sizes"], train["n_test"], seed=0)
    return SPLITS[name]


def examples_sha256(rows):
    """The hash of a maze set's (compact prompt, solution) pairs as infra/tiny.py's load_or_train_tiny records it in
    warm_start.json."""
    pairs = (f"{format_prompt(row['maze'], 'compact')}\n{row['solution']}" for row in rows)
    return hashlib.sha256("\n\n".join(pairs).encode()).hexdigest()


@pytest.fixture(scope="module")
def start_train():
    return start.start_split()["train"]


def test_the_shipped_start_was_trained_on_the_start_split(start_train):
    with open(os.path.join(SHIPPED, "warm_start.json")) as f:
        info = json.load(f)
    assert info["settings"]["examples_sha256"] == examples_sha256(start_train)
    assert info["settings"]["n_examples"] == len(start_train) == 10150
    assert info["command"] == start.BUILD_COMMAND


def test_the_start_saw_no_held_out_maze_by_layout(start_train):
    """No layout the start was trained on is a held-out maze of the replication, of H11's test (the unseen 9x9
    and 11x11 included), of the original family or of train.py's default split."""
    seen = {row["maze"] for row in start_train}
    assert len(seen) == len(start_train)
    sizes = set()
    for name in ("replication", "h11", "primary", "default"):
        held_out = split_of(name)["test"]
        sizes |= set(held_out["size"])
        shared = seen & set(held_out["maze"])
        assert not shared, f"{name}: {len(shared)} held-out layouts are in the start's training mazes"
    assert sizes == {5, 7, 9, 11}
    # the check has teeth: the shipped assets/tiny-maze's split (train.py's default) holds held-out 7x7 mazes of
    # the family (RESULTS.md: 19 of its 200)
    default_train = {row["maze"] for row in split_of("default")["train"]}
    assert len(default_train & set(split_of("replication")["test"]["maze"])) == 19


def test_the_families_train_on_the_mazes_the_start_was_trained_on(start_train):
    """The runs' train split is the start's: RL trains on mazes the start has seen, and evaluates on none."""
    for mode in ("replication", "h11"):
        assert examples_sha256(split_of(mode)["train"]) == examples_sha256(start_train), mode
    for mode, counts in (("replication", modes.PRIMARY_TEST), ("h11", modes.H11_TEST)):
        assert all(start.HELD_OUT[size] >= count for size, count in counts.items()), mode


def test_the_shipped_start_is_the_file_its_fingerprint_names():
    here = start.weights_fingerprint(SHIPPED)
    assert here == start.recorded_fingerprint()
    assert os.path.getsize(os.path.join(SHIPPED, "model.safetensors")) < 5e6


def test_compare_py_keeps_a_start_that_saw_none_of_its_held_out_mazes():
    """assets/tiny-maze stays train.py's default (compare.py's demo) start: trained on the default split's train
    mazes, which share no layout with that split's held-out ones (what the demo evaluates on)."""
    with open(os.path.join(ROOT, "assets", "tiny-maze", "warm_start.json")) as f:
        info = json.load(f)
    split = split_of("default")
    assert info["settings"]["examples_sha256"] == examples_sha256(split["train"])
    assert not {row["maze"] for row in split["train"]} & set(split["test"]["maze"])
