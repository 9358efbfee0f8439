# DeepSeek-R1-Distill-Qwen-7B on the paper's math setting (appendix E.1: responses up to 10,240 tokens):
#   accelerate launch --num_processes 8 train.py config/math_r1_distill_qwen_7b.py --model=/path/to/DeepSeek-R1-Distill-Qwen-7B
# The paper's settings come from paper_math.py; only the memory-related choices below are ours (estimates,
# predicted, not measured: docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_math.py")).read())
model = "/path/to/DeepSeek-R1-Distill-Qwen-7B"
out_dir = "out/math-r1-distill-qwen-7b"
max_new_tokens = 10240
# bf16 weights, grads and AdamW moments with stochastic rounding (optim.py): 8 bytes x 7.6B = 61 GB, as for the
# maze's 7B (config/maze_qwen2.5_7b.py)
dtype = "bfloat16"
rollout_batch = 1  # 32 rows: KV cache ~56 KB/token x 32 x ~10.5k tokens ~ 19 GB
micro_batch = 1
gradient_checkpointing = True
