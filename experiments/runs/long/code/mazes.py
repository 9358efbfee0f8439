"""The maze task of the paper (appendix A.1, table 4, figure 14).

A maze is an n x n text grid (n odd, n >= 5), rows joined by "\n":
    '*' wall, '.' free, 'S' start, 'E' end        (figure 14's prompt meaning)
The answer is a path of moves U/D/L/R from S to E (verify.py scores it).

Mazes are carved by a randomised depth-first search and then some extra walls are
opened (`loop_prob`), so that several different correct paths usually exist: Pass@k
training rewards diverse answers, and a maze with a single path cannot show that.
Everything is deterministic from a seed. The BFS shortest path is the reference
`solution`. `make_mazes` builds train/test splits like table 4 with strict
deduplication (a test maze never appears in train) as a `datasets.DatasetDict`.
"""
import random
from collections import deque

MOVES = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}
MAZE_CHARS = set("*.SE")

PROMPT_TEMPLATES = {
    # figure 14 of the paper; wrap it in the tokenizer's chat template for instruct models
    "paper": (
        "You need to solve the following maze.\n\n"
        "'*' denotes the wall that you cannot walk through, '.' denotes available area that you can "
        "walk through. 'S' denotes the starting point, 'E' denotes the destination.\n\n"
        "You need to start from the starting point and cross through the available area to reach the "
        "destination. There are four movement actions, including Left, Right, Up, Down.\n\n"
        "You need to use L to denote Left movement, R to denote Right movement, U to denote Up movement, "
        "and D to denote Down movement.\n\n"
        "You can analysis the maze to find the correct path, and you should write the final path in the "
        "<answer> </answer>, e.g., <answer> LLRRDUL </answer>.\n\n"
        "```\n## Maze\n{maze}\n```\n\n"
        "Now try to analyze the maze and put the final path in the <answer> </answer>."
    ),
    # the grid and a short marker, for the tiny char-level model (it answers "<answer>RRDD</answer>")
    "compact": "{maze}\n>",
}


def parse_maze(maze):
    """Validate a maze string; return (rows, start, end). Raises ValueError naming the problem."""
    if not isinstance(maze, str) or not maze:
        raise ValueError(f"maze must be a non-empty string, got {type(maze).__name__} {maze!r:.40}")
    rows = maze.split("\n")
    width = len(rows[0])
    if width == 0 or any(len(row) != width for row in rows):
        raise ValueError(f"maze rows must all have the same non-zero length, got {[len(r) for r in rows]}")
    bad = set(maze) - MAZE_CHARS - {"\n"}
    if bad:
        raise ValueError(f"maze contains characters {sorted(bad)}; allowed are '*', '.', 'S', 'E'")
    if maze.count("S") != 1 or maze.count("E") != 1:
        raise ValueError(f"maze needs exactly one 'S' and one 'E', got {maze.count('S')} and {maze.count('E')}")
    flat = maze.replace("\n", "")
    start, end = divmod(flat.index("S"), width), divmod(flat.index("E"), width)
    return rows, start, end


def solve_maze(maze):
    """Shortest path from S to E as a string of U/D/L/R (BFS), or None if E is unreachable."""
    rows, start, end = parse_maze(maze)
    came_from = {start: None}  # cell -> (previous cell, move)
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == end:
            path = []
            while came_from[cell] is not None:
                cell, move = came_from[cell]
                path.append(move)
            return "".join(reversed(path))
        for move, (dr, dc) in MOVES.items():
            r, c = cell[0] + dr, cell[1] + dc
            if 0 <= r < len(rows) and 0 <= c < len(rows[0]) and rows[r][c] != "*" and (r, c) not in came_from:
                came_from[(r, c)] = (cell, move)
                queue.append((r, c))
    return None


def generate_maze(size, rng, loop_prob=0.3):
    """One size x size maze from a `random.Random`: DFS-carved tree plus extra openings (loops)."""
    if not isinstance(size, int) or size < 5 or size % 2 == 0:
        raise ValueError(f"maze size must be an odd integer >= 5, got {size!r}")
    if not 0.0 <= loop_prob <= 1.0:
        raise ValueError(f"loop_prob must be in [0, 1], got {loop_prob}")
    grid = [["*"] * size for _ in range(size)]
    cells = [(r, c) for r in range(1, size, 2) for c in range(1, size, 2)]  # odd coordinates are rooms
    first = rng.choice(cells)
    grid[first[0]][first[1]] = "."
    stack = [first]
    while stack:  # iterative randomised DFS: knock down the wall to an unvisited neighbour room
        r, c = stack[-1]
        neighbours = [(r + dr, c + dc) for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2))
                      if 0 < r + dr < size and 0 < c + dc < size and grid[r + dr][c + dc] == "*"]
        if not neighbours:
            stack.pop()
            continue
        nr, nc = rng.choice(neighbours)
        grid[(r + nr) // 2][(c + nc) // 2] = grid[nr][nc] = "."
        stack.append((nr, nc))
    # walls between two rooms that the tree left standing: open some, creating alternative paths
    for r in range(1, size - 1):
        for c in range(1, size - 1):
            between_rooms = (r % 2 == 1) != (c % 2 == 1)
            if between_rooms and grid[r][c] == "*" and rng.random() < loop_prob:
                grid[r][c] = "."
    free = [(r, c) for r in range(size) for c in range(size) if grid[r][c] == "."]
    start, end = rng.sample(free, 2)
    grid[start[0]][start[1]], grid[end[0]][end[1]] = "S", "E"
    return "\n".join("".join(row) for row in grid)


def _generate_unique(size, count, seed, split, seen, loop_prob):
    rng = random.Random(f"nanopassk-{seed}-{split}-{size}")  # str seeds are hashed with sha512: stable
    rows, attempts = [], 0
    while len(rows) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"could only generate {len(rows)} unique {size}x{size} mazes for '{split}' "
                             f"(asked for {count}); small mazes have few distinct layouts")
        maze = generate_maze(size, rng, loop_prob)
        if maze in seen:
            continue
        seen.add(maze)
        rows.append({"maze": maze, "size": size, "solution": solve_maze(maze)})
    return rows


def make_mazes(train_sizes=(9, 11, 13, 15), n_train=10_000, test_sizes=(7, 9, 11, 13, 15, 17, 19, 21),
               n_test=None, seed=0, loop_prob=0.3):
    """Train/test splits like table 4, deduplicated within and between splits.

    n_train, n_test: mazes per size, an int or a {size: count} dict. The default n_test is the
    paper's (100 per size, 75 for 7x7). The test split is generated first, so it does not change
    when the train split grows. Returns DatasetDict(train, test) with columns maze, size, solution.
    """
    from datasets import Dataset, DatasetDict

    if n_test is None:
        n_test = {size: 75 if size == 7 else 100 for size in test_sizes}

    def counts(n, sizes):
        per_size = n if isinstance(n, dict) else {size: n for size in sizes}
        if set(per_size) != set(sizes) or any(not isinstance(v, int) or v < 0 for v in per_size.values()):
            raise ValueError(f"maze counts {n!r} must be a non-negative int or a dict for sizes {list(sizes)}")
        return per_size

    seen = set()
    splits = {}
    for split, sizes, n in (("test", test_sizes, n_test), ("train", train_sizes, n_train)):
        rows = []
        for size, count in counts(n, sizes).items():
            rows += _generate_unique(size, count, seed, split, seen, loop_prob)
        splits[split] = Dataset.from_list(rows) if rows else Dataset.from_dict({"maze": [], "size": [], "solution": []})
    return DatasetDict(train=splits["train"], test=splits["test"])


def format_prompt(maze, template="paper"):
    """The prompt text for a maze: `paper` (figure 14) or `compact` (for the tiny char-level model)."""
    parse_maze(maze)
    if template not in PROMPT_TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose from {sorted(PROMPT_TEMPLATES)}")
    return PROMPT_TEMPLATES[template].format(maze=maze)


if __name__ == "__main__":
    print(format_prompt(generate_maze(9, random.Random(0)), "paper"))
