"""The verifiable reward of the maze task (paper section 2.1: R in {R_neg = 0, R_pos = 1}).

A model's response is untrusted input: every string gets 0.0 or 1.0 and nothing raises.

Default semantics follow the paper's released maze verifier:
  - the answer is the text after the last `<answer>` up to the next `</answer>` (to the end of the
    response if that tag is never closed), or the whole response when there is no `<answer>` tag;
  - it is upper-cased and every character other than U/D/L/R is ignored;
  - walking the moves from S, a step off the grid or onto a wall '*' gives 0;
  - ending on E gives 1 (any valid path, not only the shortest one).
`strict=True` requires a closed `<answer>...</answer>` and rejects any character in it other
than U/D/L/R and whitespace.
"""
from mazes import MOVES, parse_maze

OPEN, CLOSE = "<answer>", "</answer>"


def extract_answer(response):
    """Text after the last `<answer>` up to `</answer>` (or the end); None if there is no `<answer>`."""
    if not isinstance(response, str):
        return None
    start = response.rfind(OPEN)
    if start < 0:
        return None
    answer = response[start + len(OPEN):]
    end = answer.find(CLOSE)
    return answer if end < 0 else answer[:end]


def maze_reward(response, maze, strict=False):
    """1.0 if the moves in `response` lead from S to E in `maze` without hitting a wall, else 0.0."""
    rows, (r, c), end = parse_maze(maze)  # the maze is ours: a malformed one is a ValueError
    if not isinstance(response, str):
        return 0.0
    answer = extract_answer(response)
    if strict:
        closed = answer is not None and CLOSE in response[response.rfind(OPEN):]
        if not closed or any(ch not in MOVES and not ch.isspace() for ch in answer):
            return 0.0
        moves = [ch for ch in answer if ch in MOVES]
    else:
        text = response if answer is None else answer
        moves = [ch for ch in text.upper() if ch in MOVES]
    for move in moves:
        dr, dc = MOVES[move]
        r, c = r + dr, c + dc
        if not (0 <= r < len(rows) and 0 <= c < len(rows[0])) or rows[r][c] == "*":
            return 0.0
    return 1.0 if (r, c) == end else 0.0
