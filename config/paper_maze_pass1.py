# Pass@1 Training (GRPO/DAPO) baseline on the paper's maze setting: same as paper_maze.py, advantage pass1.
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_maze.py")).read())
advantage = "pass1"
