# Qwen2.5-7B-Instruct on the paper's maze setting (appendix A.2; the paper's own backbone):
#   accelerate launch --num_processes 8 train.py config/maze_qwen2.5_7b.py --model=/path/to/Qwen2.5-7B-Instruct
#   python train.py config/maze_qwen2.5_7b.py --model=/path/to/Qwen2.5-7B-Instruct   # one GPU: fits, but slow
# The paper's settings come from paper_maze.py (lr 1e-6, 10 warmup steps, 128 prompts, mini-batch 32,
# 32 rollouts, eps 0.2/0.28, no KL, no entropy, train 9-15, test 7-21, k = 8; the paper tries 4, 8, 16).
# Only the memory-related choices below are ours. Memory figures: PREDICTED for one 80 GB GPU by the memory model
# of benchmarks/real_shapes.py (`python benchmarks/real_shapes.py --predict`; docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_maze.py")).read())
model = "/path/to/Qwen2.5-7B-Instruct"
out_dir = "out/maze-qwen2.5-7b"
# float32 master weights + AdamW states would be 16 bytes x 7.6B = 122 GB per GPU (data parallel keeps a
# full replica on every GPU): they do not fit in 80 GB. bf16 weights, grads and AdamW moments are 8 bytes
# x 7.6B = 61 GB; the update is computed in float32 and stored with stochastic rounding (optim.py), since
# plain bf16 AdamW would round almost every lr=1e-6 step away.
dtype = "bfloat16"
max_new_tokens = 1024  # OUR choice: the paper does not state the maze response limit
# 61 GB are taken. 2 prompts x 32 rollouts = 64 rows per generate call: predicted generation peak 66.0 GB, of
# which the KV cache 4.9 GB (the largest rollout_batch that fits, `--predict`: 2)
rollout_batch = 2
# rows per forward/backward with checkpointing: the largest that fits (`--predict`: 4), predicted update peak
# 67.9 GB
micro_batch = 4
gradient_checkpointing = True
