"""Tests for mazes.py: generation, solving, splits and prompts."""
import random

import pytest

import mazes
from verify import maze_reward


def test_generated_maze_is_valid_and_solvable():
    for size in (5, 7, 9, 15):
        for seed in range(20):
            maze = mazes.generate_maze(size, random.Random(seed))
            rows, start, end = mazes.parse_maze(maze)
            assert len(rows) == size and all(len(row) == size for row in rows)
            assert set(rows[0]) == set(rows[-1]) == {"*"}  # walled border
            solution = mazes.solve_maze(maze)
            assert solution and maze_reward(solution, maze) == 1.0


def test_generation_is_deterministic():
    assert mazes.generate_maze(11, random.Random(7)) == mazes.generate_maze(11, random.Random(7))
    assert mazes.generate_maze(11, random.Random(7)) != mazes.generate_maze(11, random.Random(8))


def count_simple_paths(maze):
    rows, start, end = mazes.parse_maze(maze)
    count, stack = 0, [(start, {start})]
    while stack and count < 2:
        (r, c), seen = stack.pop()
        if (r, c) == end:
            count += 1
            continue
        for dr, dc in mazes.MOVES.values():
            nxt = (r + dr, c + dc)
            if rows[nxt[0]][nxt[1]] != "*" and nxt not in seen:
                stack.append((nxt, seen | {nxt}))
    return count


def test_several_correct_paths_usually_exist():
    multi = sum(count_simple_paths(mazes.generate_maze(9, random.Random(seed))) >= 2 for seed in range(50))
    assert multi >= 25  # loops make most 9x9 mazes solvable in more than one simple way


def test_solve_maze_is_shortest_and_none_when_unreachable():
    maze = "*****\n*S..*\n*.*.*\n*..E*\n*****"
    assert len(mazes.solve_maze(maze)) == 4
    assert mazes.solve_maze("*****\n*S*.*\n***.*\n*..E*\n*****") is None


@pytest.mark.parametrize("bad", ["", "*S\n*E*", "*****\n*S.x*\n*..E*", "*****\n*S..*\n*...*", 42,
                                 "*****\n*S.S*\n*..E*"])
def test_malformed_maze_is_a_value_error(bad):
    with pytest.raises(ValueError):
        mazes.parse_maze(bad)
    with pytest.raises(ValueError):
        mazes.format_prompt(bad)


def test_bad_sizes_and_options():
    for size in (4, 3, 8, "9"):
        with pytest.raises(ValueError, match="odd integer"):
            mazes.generate_maze(size, random.Random(0))
    with pytest.raises(ValueError, match="template"):
        mazes.format_prompt(mazes.generate_maze(5, random.Random(0)), "fancy")
    with pytest.raises(ValueError, match="unique 5x5"):
        mazes.make_mazes((5,), 400, (7,), 1)
    with pytest.raises(ValueError, match="counts"):
        mazes.make_mazes((9,), {11: 3}, (7,), 1)


def test_splits_are_deduplicated_and_deterministic(tmp_path):
    data = mazes.make_mazes((5, 7), {5: 100, 7: 200}, (5, 7, 9), 30, seed=1)
    train, test = data["train"], data["test"]
    assert len(train) == 300 and len(test) == 90
    assert len(set(train["maze"])) == len(train) and len(set(test["maze"])) == len(test)
    assert not set(train["maze"]) & set(test["maze"])
    assert sorted(set(test["size"])) == [5, 7, 9]
    row = train[0]
    assert maze_reward(row["solution"], row["maze"]) == 1.0 and len(row["maze"].split("\n")) == row["size"]
    again = mazes.make_mazes((5, 7), {5: 100, 7: 200}, (5, 7, 9), 30, seed=1)
    assert again["train"]["maze"] == train["maze"]
    bigger = mazes.make_mazes((5, 7), {5: 100, 7: 400}, (5, 7, 9), 30, seed=1)
    assert bigger["test"]["maze"] == test["maze"]  # the test split does not move when train grows
    data.save_to_disk(str(tmp_path / "mazes"))


def test_paper_default_test_split_is_table_4():
    data = mazes.make_mazes(train_sizes=(9,), n_train=10)
    counts = {size: data["test"]["size"].count(size) for size in (7, 9, 11, 13, 15, 17, 19, 21)}
    assert counts == {7: 75, 9: 100, 11: 100, 13: 100, 15: 100, 17: 100, 19: 100, 21: 100}


def test_prompts():
    maze = mazes.generate_maze(7, random.Random(0))
    paper = mazes.format_prompt(maze, "paper")
    assert paper.startswith("You need to solve the following maze.") and maze in paper
    assert paper.endswith("put the final path in the <answer> </answer>.")
    assert mazes.format_prompt(maze, "compact") == maze + "\n>"
