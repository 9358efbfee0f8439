# Qwen2.5-0.5B-Instruct on the paper's maze setting (appendix A.2), one 80GB GPU or a node:
#   python train.py config/maze_qwen2.5_0.5b.py --model=/path/to/Qwen2.5-0.5B-Instruct
#   accelerate launch --num_processes 8 train.py config/maze_qwen2.5_0.5b.py --model=/path/to/Qwen2.5-0.5B-Instruct
# The paper's settings come from paper_maze.py (lr 1e-6, 10 warmup steps, 128 prompts, mini-batch 32,
# 32 rollouts, eps 0.2/0.28, no KL, no entropy, train 9-15, test 7-21, k = 8; the paper tries 4, 8, 16:
# pass --k=4 or --k=16). Only the memory-related choices below are ours. Memory figures: the memory model of
# benchmarks/real_shapes.py (`python benchmarks/real_shapes.py --predict`), PREDICTED for one 80 GB GPU at this
# config's work (1,024 new tokens, prompts of 298 tokens, the longest of the train sizes); the model is checked
# against measured peaks at the 0.5B shape on the CPU (docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_maze.py")).read())
model = "/path/to/Qwen2.5-0.5B-Instruct"
out_dir = "out/maze-qwen2.5-0.5b"
# float32 master weights and gradients + AdamW states (16 bytes/param = 7.9 GB) with bf16 autocast (+ its bf16
# copy of the weights, 1 GB): exact updates at lr 1e-6
dtype = "bf16-mixed"
# the response limit is OUR choice (the paper does not state it for the maze): long enough for a short
# analysis plus the path of a 21x21 maze; responses cut at the limit simply get reward 0 unless the path is there
max_new_tokens = 1024
# 32 prompts x 32 rollouts = 1,024 rows per generate call (the whole mini-batch): predicted generation peak
# 29.3 GB, of which the KV cache 16.6 GB (the largest rollout_batch that fits, `--predict`: 32)
rollout_batch = 32
# rows per forward/backward, the largest that fits (`--predict`: 32): predicted update peak 57.6 GB, of which
# the activations of 32 rows x 1,322 tokens ~47 GB; the output layer's log-probs are computed in chunks of
# 1,024 positions (infra/chunked_head.py), 1.7 GB whatever the micro-batch
micro_batch = 32
gradient_checkpointing = False
