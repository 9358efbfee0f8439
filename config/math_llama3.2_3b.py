# LLaMA3.2-3B-Instruct on the paper's math setting (appendix E.1: prompts up to 2,048 tokens, responses up to 6,144):
#   accelerate launch --num_processes 8 train.py config/math_llama3.2_3b.py --model=/path/to/Llama-3.2-3B-Instruct
# The paper's settings come from paper_math.py; only the memory-related choices below are ours (estimates,
# predicted, not measured: docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_math.py")).read())
model = "/path/to/Llama-3.2-3B-Instruct"
out_dir = "out/math-llama3.2-3b"
max_new_tokens = 6144
dtype = "bf16-mixed"  # float32 master weights + AdamW states: 16 bytes x 3.2B = 51 GB
# 2 prompts x 32 rollouts = 64 rows per generate call: KV cache ~112 KB/token x 64 x ~8k tokens ~ 59 GB is too
# much beside 51 GB of weights and states: 1 prompt per call (~29 GB)
rollout_batch = 1
micro_batch = 1  # one 8k-token row per forward/backward: ~4 GB of float32 logits (128k vocabulary)
gradient_checkpointing = True
