# Pass@1 Training (GRPO/DAPO) baseline on the paper's maze setting: same as paper_maze.py, advantage pass1.
exec(open("config/paper_maze.py").read())
advantage = "pass1"
