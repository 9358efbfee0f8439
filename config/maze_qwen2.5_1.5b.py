# Qwen2.5-1.5B-Instruct on the paper's maze setting (appendix A.2), one 80GB GPU or a node:
#   python train.py config/maze_qwen2.5_1.5b.py --model=/path/to/Qwen2.5-1.5B-Instruct
#   accelerate launch --num_processes 8 train.py config/maze_qwen2.5_1.5b.py --model=/path/to/Qwen2.5-1.5B-Instruct
# The paper's settings come from paper_maze.py (lr 1e-6, 10 warmup steps, 128 prompts, mini-batch 32,
# 32 rollouts, eps 0.2/0.28, no KL, no entropy, train 9-15, test 7-21, k = 8; the paper tries 4, 8, 16).
# Only the memory-related choices below are ours. Memory figures: PREDICTED for one 80 GB GPU by the memory model
# of benchmarks/real_shapes.py (`python benchmarks/real_shapes.py --predict`; docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_maze.py")).read())
model = "/path/to/Qwen2.5-1.5B-Instruct"
out_dir = "out/maze-qwen2.5-1.5b"
# float32 master weights and gradients + AdamW states: 16 bytes/param = 24.7 GB (+ autocast's bf16 copy, 3.1 GB),
# exact updates at lr 1e-6
dtype = "bf16-mixed"
max_new_tokens = 1024  # OUR choice: the paper does not state the maze response limit
# 16 prompts x 32 rollouts = 512 rows per generate call: predicted generation peak 49.1 GB, of which the KV
# cache 19.4 GB (the largest rollout_batch that fits, `--predict`: 16; 32 would need ~70 GB)
rollout_batch = 16
# rows per forward/backward under gradient checkpointing (each layer's input kept, one layer recomputed):
# the largest that fits (`--predict`: 64), predicted update peak 55.7 GB. Without checkpointing 8 rows would
# already need 55 GB.
micro_batch = 64
gradient_checkpointing = True
