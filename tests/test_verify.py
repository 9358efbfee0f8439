"""Tests for verify.py: the reward is 0 or 1 for any string, following the paper's verifier."""
import pytest
from hypothesis import given, settings, strategies as st

from verify import extract_answer, maze_reward

MAZE = "\n".join(["*******",
                  "*S....*",
                  "*.***.*",
                  "*...*.*",
                  "***.*.*",
                  "*E....*",
                  "*******"])


@pytest.mark.parametrize("response,reward", [
    ("<answer>RRRRDDDDLLLL</answer>", 1.0),       # long way round
    ("<answer> DDRRDDLL </answer>", 1.0),        # another valid path
    ("<answer>ddrrddll</answer>", 1.0),          # lower case is upper-cased
    ("<answer>D, D, R, R, D, D, L, L</answer>", 1.0),  # other characters ignored
    ("think... <answer>UU</answer> no wait <answer>DDRRDDLL</answer>", 1.0),  # last tag counts
    ("DDRRDDLL", 1.0),                            # no tag: the whole response
    ("<answer>DDRRDDLLR</answer>", 0.0),          # overshoots E: must end on E
    ("<answer>DDRRDDLLLL</answer>", 0.0),         # walks into a wall
    ("<answer>UDDRRDDLL</answer>", 0.0),          # steps onto the border wall
    ("<answer>RRRRR</answer>", 0.0),              # into a wall
    ("<answer></answer>", 0.0),                   # staying on S
    ("<answer>DDRRDDLL", 1.0),                    # unclosed tag: to the end
    ("<answer>DDRRDDLL</answer> RR", 1.0),        # text after the answer is ignored
])
def test_reward_semantics(response, reward):
    assert maze_reward(response, MAZE) == reward


def test_strict_mode():
    assert maze_reward("<answer> DDRR DDLL </answer>", MAZE, strict=True) == 1.0
    assert maze_reward("DDRRDDLL", MAZE, strict=True) == 0.0                     # tags required
    assert maze_reward("<answer>DDRRDDLL", MAZE, strict=True) == 0.0             # closed tag required
    assert maze_reward("<answer>D,DRRDDLL</answer>", MAZE, strict=True) == 0.0   # stray character
    assert maze_reward("<answer>ddrrddll</answer>", MAZE, strict=True) == 0.0    # lower case


def test_extract_answer():
    assert extract_answer("a <answer>UD</answer> b <answer>LR</answer>") == "LR"
    assert extract_answer("<answer><answer>UD</answer></answer>") == "UD"
    assert extract_answer("no tags") is None
    assert extract_answer("<answer>UD") == "UD"
    assert extract_answer(None) is None


def test_malformed_maze_is_a_value_error():
    with pytest.raises(ValueError):
        maze_reward("UD", "not a maze")


def test_huge_response():
    assert maze_reward("<answer>" + "LR" * 500_000 + "DDRRDDLL</answer>", MAZE) == 0.0  # L from S hits wall
    assert maze_reward("x" * 2_000_000 + "<answer>DDRRDDLL</answer>", MAZE) == 1.0


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_string_gets_0_or_1(response):
    assert maze_reward(response, MAZE) in (0.0, 1.0)
    assert maze_reward(response, MAZE, strict=True) in (0.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<answer>", "</answer>", "<answer", "answer>", "U", "D", "L", "R",
                                 " ", "\n", "é", "\x00", "<", ">", "DDRRDDLL"]), max_size=40))
def test_tag_soup_gets_0_or_1(parts):
    response = "".join(parts)
    assert maze_reward(response, MAZE) in (0.0, 1.0)
    assert maze_reward(response, MAZE, strict=True) in (0.0, 1.0)
