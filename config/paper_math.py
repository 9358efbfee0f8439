# The paper's math setting (appendix E.1, with appendix A.2's training and evaluation) for an instruct or R1-distilled
# model and problem files on local disk. Nothing is downloaded: write the files first (README, "Math"), e.g.
#   data/math_train.jsonl  the RL training problems (the paper uses those of its ref. [9], STILL-3; any file with
#                          `problem`/`question` and `answer`/`solution` columns works)
#   data/aime24.jsonl, data/aime25.jsonl   the test split: AIME 2024 and AIME 2025, one table column each
#   python train.py config/math_r1_distill_qwen_1.5b.py --model=/path/to/DeepSeek-R1-Distill-Qwen-1.5B
# DAPO with only clip-higher and token-level loss, no KL, no entropy term. Reward: math-verify (mathreward.py).
model = "/path/to/model"
task = "math:data/math_train.jsonl"
task_options = {"test": ["data/aime24.jsonl", "data/aime25.jsonl"]}  # add OlymMATH files the same way
prompt_template = "paper"  # the question, then "Please reason step by step, and put your final answer within \boxed{}."
advantage = "passk_analytical"
k = 8  # OUR choice: appendix E does not state k for math; the maze's (the paper tries 4, 8, 16)
n_rollouts = 32
prompt_batch = 128
mini_batch = 32
learning_rate = 1e-6
lr_warmup_steps = 10
weight_decay = 0.0
eps_low, eps_high = 0.2, 0.28
entropy_coef = 0.0
kl_coef = 0.0
temperature = 1.0
top_p = 1.0
max_steps = 400  # OUR choice: appendix E does not state the number of steps
eval_every = 50
eval_samples = 8  # appendix A.2: 8 samples per question for tasks other than the maze; pass@1 and pass@8
eval_k = 8
curve_samples = 0  # the curves (k = 1, 2, 4, 8) from the same 8 samples: 128 responses of 10k tokens per problem would dwarf training
checkpoint_every = 25
