# LLaMA3.1-8B-Instruct on the paper's math setting (appendix E.1: prompts up to 2,048 tokens, responses up to 6,144):
#   accelerate launch --config_file=config/fsdp.yaml train.py config/math_llama3.1_8b.py --model=/path/to/Llama-3.1-8B-Instruct
# The paper's settings come from paper_math.py; only the memory-related choices below are ours (estimates,
# predicted, not measured: docs/real_models.md).
import os  # noqa: E402  (the file this one builds on is beside it)
exec(open(os.path.join(os.path.dirname(__file__), "paper_math.py")).read())
model = "/path/to/Llama-3.1-8B-Instruct"
out_dir = "out/math-llama3.1-8b"
max_new_tokens = 6144
# bf16 weights, grads and AdamW moments with stochastic rounding (optim.py): 8 bytes x 8B = 64 GB on one GPU;
# sharded with FSDP over 8 GPUs, 8 GB each
dtype = "bfloat16"
rollout_batch = 1  # 32 rows of up to 8k tokens: KV cache ~128 KB/token x 32 x 8k ~ 34 GB
micro_batch = 1
gradient_checkpointing = True
