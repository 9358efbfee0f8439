# DeepSeek-R1-Distill-Qwen-1.5B on the paper's math setting (appendix E.1: responses up to 10,240 tokens):
#   accelerate launch --num_processes 8 train.py config/math_r1_distill_qwen_1.5b.py --model=/path/to/DeepSeek-R1-Distill-Qwen-1.5B
# The paper's settings come from paper_math.py; only the memory-related choices below are ours (estimates,
# predicted, not measured: docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_math.py")).read())
model = "/path/to/DeepSeek-R1-Distill-Qwen-1.5B"
out_dir = "out/math-r1-distill-qwen-1.5b"
max_new_tokens = 10240
dtype = "bf16-mixed"  # float32 master weights + AdamW states: 16 bytes x 1.8B = 28 GB
# 4 prompts x 32 rollouts = 128 rows per generate call: KV cache ~28 KB/token x 128 x ~10.5k tokens ~ 38 GB
rollout_batch = 4
micro_batch = 2  # 2 rows of ~10k tokens per forward/backward: ~12 GB of float32 logits (152k vocabulary)
gradient_checkpointing = True
