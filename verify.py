"""The verifiable reward of the maze task (paper section 2.1: R in {R_neg = 0, R_pos = 1}).

`maze_reward(response, maze)` walks the U/D/L/R moves of a response from S: a step off the grid or onto a wall
'*' gives 0, ending on E gives 1 (any valid path, not only the shortest). A response is untrusted input: every
string gets 0.0 or 1.0 and nothing raises. Which text is walked is the mode (`answer_text`): "released" (the
default) equals `compute_score` of the paper's released code (RUCAIBox/Passk_Training, code/maze_verifier.py);
"answer" reads only what the model marked as its answer; "strict" needs a closed `<answer>...</answer>` of moves.
`extract_answer` is the text of the last `<answer>` tag (the maze task's answer, for wrong-answer diversity).
"""
from mazes import MOVES, parse_maze

OPEN, CLOSE, BOXED = "<answer>", "</answer>", "boxed"
MODES = ("released", "answer", "strict")


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


def closed_answer(response):
    """Text between the last `<answer>` and the next `</answer>`; None if that pair is not closed."""
    answer = extract_answer(response)
    return answer if answer is not None and CLOSE in response[response.rfind(OPEN):] else None


def unbox(text):
    """(content, closed) after the last `boxed` in text: `{...}` with nested braces balanced (never
    closed: to the end, closed=False), or without a brace the text up to the first `$` (closed=False)."""
    tail = text[text.rfind(BOXED) + len(BOXED):]
    if not tail.startswith("{"):
        return tail.split("$", 1)[0], False
    depth = 0
    for i, ch in enumerate(tail):
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return tail[1:i], True
    return tail[1:], False


def answer_text(response, mode):
    """The text whose U/D/L/R letters are walked, or None (reward 0).

    The walk is the same in every mode: the text is upper-cased as a whole (so "ddrr" counts, and 'ﬂ' becomes
    "FL", an L), every character other than U/D/L/R is ignored. The modes differ in which text is walked:

    mode="released" equals `compute_score` of the paper's released code:
      1. only when both `<answer>` and `</answer>` occur anywhere in the response, the text is the part
         after the last `<answer>` up to the next `</answer>` (to the end if none follows it); otherwise
         it is the WHOLE response, tags included ("<answer>RR" walks A-N-S-W-E-R: R, R, R);
      2. then, if `boxed` (lower case) occurs, the text after the last `boxed`: if it starts with `{`, the
         content up to the matching `}` (nested braces kept; never closed: to the end), else up to the
         first `$` (or the end). "\\boxed{RR}" walks R, R; "\\boxed RR$ DD" walks R, R.
      An empty answer stays on S (0). The released code raises (TypeError) only on a non-string response;
      on strings it never raises for a well-formed maze.

    mode="answer" reads only what the model marked as its answer:
      1. the text after the last `<answer>` up to the next `</answer>`, if such a closed pair exists;
         without one, the whole response may only give a boxed answer (step 2), else 0;
      2. if `boxed` occurs in that text, the content of the last `boxed{...}`, which must open right after
         `boxed` and close with balanced braces, else 0.
      The two modes walk the same text whenever the response has a closed `<answer>...</answer>` (after
      its last `<answer>`) holding no `boxed` or a balanced `boxed{...}`, and for a bare "\\boxed{RR}".
      They can disagree only without such a closed answer (released walks the whole response, or the text
      after an unclosed last `<answer>`; answer gives 0 unless there is a balanced `boxed{...}`) or when
      the last `boxed` has no balanced brace (released walks up to `$` or the end; answer gives 0).

    mode="strict" (strict=True) needs a closed `<answer>...</answer>` after the last `<answer>` whose
    content holds only U/D/L/R (upper case) and whitespace; anything else gives 0.
    """
    if mode == "released":
        text = extract_answer(response) if OPEN in response and CLOSE in response else response
        return unbox(text)[0] if BOXED in text else text
    if mode == "answer":
        answer = closed_answer(response)
        scope = response if answer is None else answer
        if BOXED in scope:
            content, closed = unbox(scope)
            return content if closed else None
        return answer
    answer = closed_answer(response)  # strict
    if answer is None or any(ch not in MOVES and not ch.isspace() for ch in answer):
        return None
    return answer


def maze_reward(response, maze, strict=False, mode="released"):
    """1.0 if the moves in `response` lead from S to E in `maze` without hitting a wall, else 0.0."""
    rows, (r, c), end = parse_maze(maze)  # the maze is ours: a malformed one is a ValueError
    mode = "strict" if strict else mode
    if mode not in MODES:
        raise ValueError(f"unknown reward mode {mode!r}; choose from {list(MODES)}")
    text = answer_text(response, mode) if isinstance(response, str) else None
    if text is None:
        return 0.0
    for move in text.upper():
        if move not in MOVES:
            continue
        dr, dc = MOVES[move]
        r, c = r + dr, c + dc
        if not (0 <= r < len(rows) and 0 <= c < len(rows[0])) or rows[r][c] == "*":
            return 0.0
    return 1.0 if (r, c) == end else 0.0
