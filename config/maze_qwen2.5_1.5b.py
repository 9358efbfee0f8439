# Qwen2.5-1.5B-Instruct on the paper's maze setting (appendix A.2), one 80GB GPU or a node:
#   python train.py config/maze_qwen2.5_1.5b.py --model=/path/to/Qwen2.5-1.5B-Instruct
#   accelerate launch --num_processes 8 train.py config/maze_qwen2.5_1.5b.py --model=/path/to/Qwen2.5-1.5B-Instruct
# The paper's settings come from paper_maze.py (lr 1e-6, 10 warmup steps, 128 prompts, mini-batch 32,
# 32 rollouts, eps 0.2/0.28, no KL, no entropy, train 9-15, test 7-21, k = 8; the paper tries 4, 8, 16).
# Only the memory-related choices below are ours; memory numbers are estimates (docs/real_models.md).
exec(open("config/paper_maze.py").read())
model = "/path/to/Qwen2.5-1.5B-Instruct"
out_dir = "out/maze-qwen2.5-1.5b"
# float32 master weights + AdamW states: 16 bytes/param = 25 GB, exact updates at lr 1e-6
dtype = "bf16-mixed"
max_new_tokens = 1024  # OUR choice: the paper does not state the maze response limit
# 16 prompts x 32 rollouts = 512 rows per generate call: KV cache ~28 KB/token x 512 x ~1500 tokens ~ 22 GB
rollout_batch = 16
# 8 rows per forward/backward: ~15 GB of logits; activations of 28 layers would add ~35 GB, so recompute
# them in the backward pass (gradient checkpointing: ~1 GB kept, ~30% more update compute)
micro_batch = 8
gradient_checkpointing = True
