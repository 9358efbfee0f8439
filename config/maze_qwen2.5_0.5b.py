# Qwen2.5-0.5B-Instruct on the paper's maze setting (appendix A.2), one 80GB GPU or a node:
#   python train.py config/maze_qwen2.5_0.5b.py --model=/path/to/Qwen2.5-0.5B-Instruct
#   accelerate launch --num_processes 8 train.py config/maze_qwen2.5_0.5b.py --model=/path/to/Qwen2.5-0.5B-Instruct
# The paper's settings come from paper_maze.py (lr 1e-6, 10 warmup steps, 128 prompts, mini-batch 32,
# 32 rollouts, eps 0.2/0.28, no KL, no entropy, train 9-15, test 7-21, k = 8; the paper tries 4, 8, 16:
# pass --k=4 or --k=16). Only the memory-related choices below are ours; all memory numbers are
# estimates (docs/real_models.md), not measurements.
exec(open("config/paper_maze.py").read())
model = "/path/to/Qwen2.5-0.5B-Instruct"
out_dir = "out/maze-qwen2.5-0.5b"
# float32 master weights + AdamW states (16 bytes/param = 8 GB) with bf16 autocast: exact updates at lr 1e-6
dtype = "bf16-mixed"
# the response limit is OUR choice (the paper does not state it for the maze): long enough for a short
# analysis plus the path of a 21x21 maze; responses cut at the limit simply get reward 0 unless the path is there
max_new_tokens = 1024
# 32 prompts x 32 rollouts = 1024 rows per generate call: KV cache ~12 KB/token x 1024 rows x ~1500 tokens ~ 19 GB
rollout_batch = 32
# rows per forward/backward: float32 logits over a 152k vocabulary are ~0.6 GB per row at 1024 response
# tokens (x ~3 with log-softmax and its gradient): 8 rows ~ 15 GB + ~16 GB activations, no checkpointing needed
micro_batch = 8
gradient_checkpointing = False
