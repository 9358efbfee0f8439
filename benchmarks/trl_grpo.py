"""The peer side of our RL-step throughput comparison: TRL's GRPOTrainer on bench.py's default workload.

    /tmp/trlenv/bin/python benchmarks/trl_grpo.py --steps 8 --warmup 2      # from the repository root

trl is NOT a dependency of this project: install it in a scratch environment that reuses the system
torch and transformers (so both sides run the same torch build):

    python -m venv --system-site-packages /tmp/trlenv
    /tmp/trlenv/bin/pip install "trl==1.16.*" torch==2.13.0 transformers==<the installed version>

What it measures: seconds per optimizer step of `trl.GRPOTrainer` (generation + reward + advantage +
forward/backward + optimizer step, i.e. everything between the Trainer's on_step_begin and on_step_end
callbacks), completion tokens per second, and peak resident memory of the process. The workload is the
one bench.py times for train.py:

  - the warm-started tiny char-level Qwen2 (assets/tiny-maze, shipped), fp32, CPU, 2 torch threads;
  - prompts `format_prompt(maze, "compact")` for the 7x7 train mazes of
    `make_mazes(train_sizes=(7,), n_train=500, test_sizes=(5,), n_test=1, seed=0)`;
  - 8 prompts x 16 completions per optimizer step, one optimizer update per step, at most 32 new tokens,
    temperature 1.0, top_p 1.0, no top-k;
  - clip-higher DAPO token-level loss (epsilon 0.2 / 0.28), no KL (beta=0), AdamW at a constant lr 1e-4,
    grad-norm clip 1.0, no gradient checkpointing, forward/backward in micro-batches of 64 rows like
    train.py (`--micro_batch 128` for a single forward/backward);
  - reward = verify.maze_reward.

Differences from train.py that TRL does not let us remove: the advantage is TRL's group-normalised one
(reward minus the group mean over the group's std, and TRL's std is Bessel-corrected) instead of our
passk_analytical with k=4; the cost of either is negligible. The first `--warmup` steps are dropped.
The last line printed is one JSON object with the figures.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # mazes.py and verify.py live in the repository root

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402

import trl  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from mazes import format_prompt, make_mazes  # noqa: E402
from verify import maze_reward  # noqa: E402

PROMPTS_PER_STEP, ROLLOUTS, MAX_NEW_TOKENS, THREADS = 8, 16, 32, 2


class CompletionCounter:
    """The reward function: verify.maze_reward per completion; also counts the completion tokens it sees
    (TRL passes `completion_ids`, eos included and padding excluded, like train.py's response lengths)."""

    __name__ = "maze_reward"  # TRL names the logged reward metric after the function

    def __init__(self):
        self.tokens, self.completions = 0, 0  # since the last `take`

    def __call__(self, prompts, completions, completion_ids, maze, **kwargs):
        self.tokens += sum(len(ids) for ids in completion_ids)
        self.completions += len(completion_ids)
        return [maze_reward(completion, m) for completion, m in zip(completions, maze)]

    def take(self):
        counts = self.tokens, self.completions
        self.tokens, self.completions = 0, 0
        return counts


class StepTimer(TrainerCallback):
    """Wall-clock time of each optimizer step and the completion tokens generated within it."""

    def __init__(self, counter):
        self.counter, self.steps, self.logs, self._start = counter, [], [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.counter.take()  # nothing should be pending, but start each step from zero
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        seconds = time.perf_counter() - self._start
        tokens, completions = self.counter.take()
        self.steps.append({"seconds": seconds, "completion_tokens": tokens, "completions": completions})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:
            self.logs.append(logs)


def build_dataset():
    mazes = make_mazes(train_sizes=(7,), n_train=500, test_sizes=(5,), n_test=1, seed=0)["train"]
    return Dataset.from_dict({"prompt": [format_prompt(m, "compact") for m in mazes["maze"]],
                              "maze": list(mazes["maze"])})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps run first and not timed")
    parser.add_argument("--model", default=os.path.join(ROOT, "assets", "tiny-maze"))  # the shipped warm start
    parser.add_argument("--micro_batch", type=int, default=64,
                        help="completions per forward/backward (per_device_train_batch_size; 64 = train.py's "
                             "micro_batch); the step's 128 completions are still generated in one batch and make "
                             "one optimizer update, with 128 / micro_batch gradient accumulation steps")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch CPU threads (2 = bench.py's workload; 1 compares fairly on a busy machine)")
    parser.add_argument("--output_dir", default="/tmp/trl_grpo_bench")
    args = parser.parse_args()
    rows_per_step = PROMPTS_PER_STEP * ROLLOUTS
    if args.micro_batch <= 0 or rows_per_step % args.micro_batch:
        parser.error(f"--micro_batch must divide {rows_per_step}, got {args.micro_batch}")
    accumulation = rows_per_step // args.micro_batch

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)

    config = GRPOConfig(
        output_dir=args.output_dir,
        loss_type="dapo", beta=0.0, epsilon=0.2, epsilon_high=0.28,
        num_iterations=1,
        num_generations=ROLLOUTS,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation,  # one generation of 8 x 16 completions per optimizer step
        # (with steps_per_generation == gradient_accumulation_steps and num_iterations=1, TRL skips the
        # separate old-logprob forward: the samples are on-policy, the ratio is exp(logp - logp.detach()))
        max_completion_length=MAX_NEW_TOKENS,
        temperature=1.0, top_p=1.0, top_k=0,
        scale_rewards="group",  # TRL's default; its std is Bessel-corrected, not configurable
        learning_rate=1e-4, lr_scheduler_type="constant",  # no decay to zero over a 10-step run
        optim="adamw_torch", weight_decay=0.0, max_grad_norm=1.0,  # train.py: torch.optim.AdamW, grad_clip=1.0
        gradient_checkpointing=False,  # TRL defaults to True; train.py does not recompute activations
        bf16=False, fp16=False, use_cpu=True,
        report_to=[], logging_steps=1, save_strategy="no",
        max_steps=args.warmup + args.steps,
        dataloader_num_workers=0,
        seed=0,
    )
    counter = CompletionCounter()
    timer = StepTimer(counter)
    trainer = GRPOTrainer(model=model, reward_funcs=counter, args=config, train_dataset=build_dataset(),
                          processing_class=tokenizer, callbacks=[timer])
    trainer.train()

    timed = timer.steps[args.warmup:]
    if not timed:
        raise SystemExit(f"no timed steps: ran {len(timer.steps)} steps with warmup {args.warmup}")
    seconds = sum(s["seconds"] for s in timed)
    tokens = sum(s["completion_tokens"] for s in timed)
    completions = sum(s["completions"] for s in timed)
    logged = [log["completions/mean_length"] for log in timer.logs[args.warmup:]]
    rewards = [log["reward"] for log in timer.logs[args.warmup:] if "reward" in log]
    result = {
        "seconds_per_step": round(seconds / len(timed), 4),
        "completion_tokens_per_s": round(tokens / seconds, 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "mean_completion_length": round(tokens / completions, 2),
        "logged_mean_length": round(sum(logged) / len(logged), 2) if logged else None,
        "completions_per_step": completions / len(timed),
        "reward": round(sum(rewards) / len(rewards), 3) if rewards else None,
        "steps_timed": len(timed),
        "warmup": args.warmup,
        "micro_batch": args.micro_batch,
        "threads": torch.get_num_threads(),
        "trl": trl.__version__,
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
