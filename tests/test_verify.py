"""Tests for verify.py: the reward is 0 or 1 for any string; the default mode equals the paper's released
maze verifier (checked against a test-only transcription of its semantics on a large fuzzed corpus)."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from mazes import generate_maze, solve_maze
from verify import MODES, extract_answer, maze_reward

MAZE = "\n".join(["*******",
                  "*S....*",
                  "*.***.*",
                  "*...*.*",
                  "***.*.*",
                  "*E....*",
                  "*******"])  # shortest path DDRRDDLL


def released_reference(response, maze):
    """Test-only transcription of `compute_score` in RUCAIBox/Passk_Training code/maze_verifier.py,
    step by step as that file does it, kept independent of verify.py's implementation."""
    text = response
    if "<answer>" in text and "</answer>" in text:
        text = text.split("<answer>")[-1].strip()
        text = text.split("</answer>")[0].strip()
    parts = text.split("boxed")
    if len(parts) > 1:
        rest = parts[-1]
        if rest == "":
            text = ""
        elif rest[0] == "{":
            depth, kept = 1, ""
            for ch in rest[1:]:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == 0:
                        break
                kept += ch
            text = kept
        else:
            text = rest.split("$")[0].strip()
    grid = maze.strip().split("\n")
    x, y = [(i, row.index("S")) for i, row in enumerate(grid) if "S" in row][0]
    step = {"L": (0, -1), "R": (0, 1), "U": (-1, 0), "D": (1, 0)}
    for letter in text.upper():
        if letter in step:
            x, y = x + step[letter][0], y + step[letter][1]
            if x < 0 or x >= len(grid) or y < 0 or y >= len(grid[0]) or grid[x][y] == "*":
                return 0.0
    return 1.0 if grid[x][y] == "E" else 0.0


FUZZ_MAZES = [MAZE] + [generate_maze(size, random.Random(seed)) for size in (5, 7, 9, 11) for seed in (1, 2)]
PIECES = ["<answer>", "</answer>", "<answer", "answer>", "<Answer>", "boxed", "\\boxed{", "\\boxed", "BOXED",
          " boxed {", "{", "}", "{{", "}}", "$", "$$", "\\(", "\\)", "\\text{", "The answer is ", "Let me think.\n",
          "path", "Right", "down ", "Up", "left", "wall", "So the final path: ", "\n", " ", ", ", "U", "D", "L",
          "R", "u", "d", "l", "r", "ﬂ", "ı", "é", "\x00", "**"]


def fuzz_responses(n, seed):
    """n deterministic (response, maze) pairs: tags, `boxed`, braces, `$`, English and moves, often
    wrapped around the maze's shortest path so that both rewards occur often."""
    rng = random.Random(seed)
    solutions = {maze: solve_maze(maze) for maze in FUZZ_MAZES}
    wrappers = ["{}", "<answer>{}</answer>", "\\boxed{{{}}}", "$\\boxed{{{}}}$", "<answer>\\boxed{{{}}}</answer>",
                "<answer>{}", "\\boxed {}$", "<answer> {} </answer>", "\\boxed{{\\text{{{}}}}}"]
    pairs = []
    for _ in range(n):
        maze = rng.choice(FUZZ_MAZES)
        path = solutions[maze]
        path = rng.choice([path, path.lower(), path + rng.choice("UDLR"), path[:-1],
                           "".join(rng.choice("UDLR") for _ in range(rng.randint(0, 6)))])
        parts = [rng.choice(PIECES) for _ in range(rng.randint(0, 8))]
        if rng.random() < 0.8:
            parts.insert(rng.randint(0, len(parts)), rng.choice(wrappers).format(path))
        pairs.append(("".join(parts), maze))
    return pairs


def test_released_mode_equals_released_verifier_on_fuzzed_corpus():
    pairs = fuzz_responses(40_000, seed=0)
    rewards = [maze_reward(response, maze) for response, maze in pairs]
    mismatches = [(r, m) for (r, m), got in zip(pairs, rewards) if got != released_reference(r, m)]
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:3]}"
    assert 0.1 < sum(rewards) / len(rewards) < 0.9  # the corpus exercises both outcomes
    assert len({response for response, _ in pairs}) > 30_000


def test_modes_relate_on_fuzzed_corpus():
    for response, maze in fuzz_responses(10_000, seed=1):
        released, answer, strict = (maze_reward(response, maze, mode=mode) for mode in MODES)
        assert strict <= answer                    # a strict answer is walked the same way by mode="answer"
        after_last_open = response.split("<answer>")[-1]
        if "<answer>" in response and "</answer>" in after_last_open and \
                "boxed" not in after_last_open.split("</answer>")[0]:
            assert answer == released              # a closed answer without boxed: the same text walked


@pytest.mark.parametrize("response,released,answer", [
    ("<answer>RRRRDDDDLLLL</answer>", 1.0, 1.0),           # long way round
    ("<answer> DDRRDDLL </answer>", 1.0, 1.0),
    ("<answer>ddrrddll</answer>", 1.0, 1.0),               # lower case is upper-cased
    ("<answer>D, D, R, R, D, D, L, L</answer>", 1.0, 1.0),  # other characters ignored
    ("think... <answer>UU</answer> no wait <answer>DDRRDDLL</answer>", 1.0, 1.0),  # last tag counts
    ("<answer>DDRRDDLL</answer> <answer>UU</answer>", 0.0, 0.0),
    ("DDRRDDLL", 1.0, 0.0),                                 # no tag: released walks the whole response
    ("Answer: DDRRDDLL", 0.0, 0.0),                         # ... so 'Answer' walks R first, into a wall
    ("<answer>DDRRDDLL", 0.0, 0.0),                         # only <answer>: its letters count, R first
    ("</answer> then <answer>DDRRDDLL", 1.0, 0.0),          # both tags occur: after the last <answer>
    ("<answer>DDRRDDLL</answer> <answer>", 0.0, 0.0),       # a trailing <answer>: empty answer
    ("<answer>DDRRDDLL</answer> RR", 1.0, 1.0),             # text after the answer is ignored
    ("<answer>DDRRDDLLR</answer>", 0.0, 0.0),               # overshoots E: must end on E
    ("<answer>DDRRDDLLRL</answer>", 1.0, 1.0),              # past E and back: ends on E
    ("<answer>DDRRDDLLLL</answer>", 0.0, 0.0),              # walks into a wall
    ("<answer>UDDRRDDLL</answer>", 0.0, 0.0),               # steps onto the border wall
    ("<answer></answer>", 0.0, 0.0),                        # staying on S
    ("", 0.0, 0.0),
    ("\\boxed{DDRRDDLL}", 1.0, 1.0),                        # 'boxed' letters do not count (D of BOXED)
    ("$\\boxed{DDRRDDLL}$ so R", 1.0, 1.0),                 # up to the matching brace
    ("<answer>\\boxed{DDRRDDLL}</answer>", 1.0, 1.0),
    ("\\boxed{\\text{DD}RR{DD}LL}", 1.0, 1.0),              # nested braces balanced, inner text kept
    ("\\boxed{UU} then \\boxed{DDRRDDLL}", 1.0, 1.0),       # the last boxed counts
    ("\\boxed{DDRRDDLL} then \\boxed{UU}", 0.0, 0.0),
    ("\\boxed{RR} <answer>DDRRDDLL</answer>", 1.0, 1.0),    # a closed answer is read first
    ("$\\boxed DDRRDDLL$ and then RR", 1.0, 0.0),           # no brace: up to '$'
    ("\\boxed DDRRDDLL", 1.0, 0.0),                         # no brace, no '$': to the end
    ("\\boxed{DDRRDDLL", 1.0, 0.0),                         # brace never closed: to the end
    ("\\boxed{DDRR}DDLL}", 0.0, 0.0),
    ("boxed", 0.0, 0.0),
    ("BOXED{DDRRDDLL}", 0.0, 0.0),                          # only lower-case 'boxed' is a box
    ("DDRRDDLﬂ", 1.0, 0.0),                                 # 'ﬂ'.upper() is 'FL': the last L
])
def test_hand_cases(response, released, answer):
    assert maze_reward(response, MAZE) == released == released_reference(response, MAZE)
    assert maze_reward(response, MAZE, mode="released") == released
    assert maze_reward(response, MAZE, mode="answer") == answer


def test_strict_mode():
    assert maze_reward("<answer> DDRR DDLL </answer>", MAZE, strict=True) == 1.0
    assert maze_reward("<answer> DDRR DDLL </answer>", MAZE, mode="strict") == 1.0
    assert maze_reward("DDRRDDLL", MAZE, strict=True) == 0.0                     # tags required
    assert maze_reward("<answer>DDRRDDLL", MAZE, strict=True) == 0.0             # closed tag required
    assert maze_reward("<answer>D,DRRDDLL</answer>", MAZE, strict=True) == 0.0   # stray character
    assert maze_reward("<answer>ddrrddll</answer>", MAZE, strict=True) == 0.0    # lower case
    assert maze_reward("<answer>\\boxed{DDRRDDLL}</answer>", MAZE, strict=True) == 0.0
    assert maze_reward("<answer>DDRRDDLL</answer>", MAZE, strict=True, mode="answer") == 1.0  # strict wins


def test_extract_answer():
    assert extract_answer("a <answer>UD</answer> b <answer>LR</answer>") == "LR"
    assert extract_answer("<answer><answer>UD</answer></answer>") == "UD"
    assert extract_answer("no tags") is None
    assert extract_answer("<answer>UD") == "UD"
    assert extract_answer(None) is None


def test_bad_maze_or_mode_is_a_value_error():
    with pytest.raises(ValueError, match="maze"):
        maze_reward("UD", "not a maze")
    with pytest.raises(ValueError, match="unknown reward mode 'paper'"):
        maze_reward("UD", MAZE, mode="paper")


@pytest.mark.parametrize("mode", MODES)
def test_non_string_response_gets_0(mode):
    for response in (None, b"<answer>DDRRDDLL</answer>", ["DDRRDDLL"], 3):
        assert maze_reward(response, MAZE, mode=mode) == 0.0


def test_huge_response():
    assert maze_reward("<answer>" + "LR" * 500_000 + "DDRRDDLL</answer>", MAZE) == 0.0  # L from S hits wall
    assert maze_reward("x" * 2_000_000 + "<answer>DDRRDDLL</answer>", MAZE) == 1.0
    assert maze_reward("\\boxed{" + "{" * 1_000_000 + "DDRRDDLL", MAZE) == 1.0       # never closed: to the end


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_string_gets_0_or_1(response):
    for mode in MODES:
        assert maze_reward(response, MAZE, mode=mode) in (0.0, 1.0)
    assert maze_reward(response, MAZE) == released_reference(response, MAZE)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES + ["DDRRDDLL", "ddrrddll", "\\boxed{DDRRDDLL}"]), max_size=40))
def test_tag_soup_gets_0_or_1(parts):
    response = "".join(parts)
    for mode in MODES:
        assert maze_reward(response, MAZE, mode=mode) in (0.0, 1.0)
    assert maze_reward(response, MAZE) == released_reference(response, MAZE)
