"""The peer side of our RL-step throughput comparison: TRL's GRPOTrainer on bench.py's default workload, or on
train.py's work at a real Qwen2.5 shape (--shape).

    PYTHONPATH=.trl python benchmarks/trl_grpo.py --steps 8 --warmup 2      # from the repository root
    PYTHONPATH=.trl python benchmarks/trl_grpo.py --shape=0.5b --prompts=2 --rollouts=8 --max_new_tokens=64
    PYTHONPATH=.trl python benchmarks/trl_grpo.py --shape=0.5b --layers=2 --prompts=1 --rollouts=4 --max_new_tokens=8 --micro_batch=4 --warmup=0 --steps=1

The side-by-side with train.py at a shape, in turn and on identical work, is benchmarks/alternate_shape.py: it
runs this with --shape and --model=<the folder it wrote>. Alone, --shape writes the random-weight model folder
itself (benchmarks/shapes.py, in a child process) to --output_dir, unless --model names one.

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

--shape=0.5b|1.5b|7b: train.py's work with config/maze_qwen2.5_<shape>.py (alternate_shape.py's docstring says
what is the same on both sides): a random-weight Qwen2.5 of that shape (--layers N keeps N layers), float32
weights, the config's train-split maze prompts through the chat template, --prompts per step in train.py's order
(the dataset is those prompts, step after step, unshuffled), --rollouts each, at most --max_new_tokens, one
update per step in micro-batches of --micro_batch rows (default: the config's), fused AdamW at the config's lr,
the config's gradient checkpointing, and the rewards train.py's noise_rewards advantage makes (the task's reward,
each 0 turned to 1 where alternate_shape.reward_flips says, from train.py's generator of that step). CPU by
default (float32, peak RSS); --device=cuda: bf16 autocast over float32 weights, peak torch.cuda.max_memory_allocated.
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

from benchmarks import alternate_shape  # noqa: E402
from mazes import format_prompt, make_mazes  # noqa: E402
from verify import maze_reward  # noqa: E402

PROMPTS_PER_STEP, ROLLOUTS, MAX_NEW_TOKENS, THREADS = 8, 16, 32, 2


class CompletionCounter:
    """The reward function: verify.maze_reward per completion; also counts the completion tokens it sees
    (TRL passes `completion_ids`, eos included and padding excluded, like train.py's response lengths)
    and notes when it was called (generation has ended by then)."""

    __name__ = "maze_reward"  # TRL names the logged reward metric after the function

    def __init__(self):
        self.tokens, self.completions, self.called = 0, 0, None  # since the last `take`

    def __call__(self, prompts, completions, completion_ids, **columns):
        self.called = time.perf_counter()
        self.tokens += sum(len(ids) for ids in completion_ids)
        self.completions += len(completion_ids)
        return self.rewards(completions, **columns)

    def rewards(self, completions, maze, **kwargs):
        return [maze_reward(completion, m) for completion, m in zip(completions, maze)]

    def take(self):
        counts = self.tokens, self.completions, self.called
        self.tokens, self.completions, self.called = 0, 0, None
        return counts


class NoisyTaskReward(CompletionCounter):
    """The rewards train.py's noise_rewards advantage normalises, per completion: the task's 0/1 reward, each 0
    turned to 1 where `alternate_shape.reward_flips` says for this step (the n-th call is step n)."""

    __name__ = "noisy_task_reward"

    def __init__(self, task, items, seed, rollouts, noise):
        super().__init__()
        self.task, self.items, self.seed, self.rollouts, self.noise, self.step = task, items, seed, rollouts, noise, 0

    def rewards(self, completions, item, **kwargs):
        rewards = torch.tensor([self.task.reward(text, self.items[index]) for text, index in zip(completions, item)],
                               dtype=torch.float64).view(-1, self.rollouts)  # (prompts, rollouts): TRL groups them
        flips = alternate_shape.reward_flips(self.seed, self.step, rewards.shape, self.noise)
        self.step += 1
        return torch.where(flips, 1.0, rewards).flatten().tolist()


class StepTimer(TrainerCallback):
    """Wall-clock time of each optimizer step (and of its generation: until the reward call), and the
    completion tokens generated within it."""

    def __init__(self, counter):
        self.counter, self.steps, self.logs, self._start = counter, [], [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.counter.take()  # nothing should be pending, but start each step from zero
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        end = time.perf_counter()
        tokens, completions, called = self.counter.take()
        generation = called - self._start if called is not None else None
        self.steps.append({"seconds": end - self._start, "generation": generation, "completion_tokens": tokens,
                           "completions": completions})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:
            self.logs.append(logs)


def build_dataset():
    mazes = make_mazes(train_sizes=(7,), n_train=500, test_sizes=(5,), n_test=1, seed=0)["train"]
    return Dataset.from_dict({"prompt": [format_prompt(m, "compact") for m in mazes["maze"]],
                              "maze": list(mazes["maze"])})


def tiny_workload(args):
    """bench.py's workload: (model folder, dataset, reward function, GRPOConfig fields)."""
    fields = dict(learning_rate=1e-4, lr_scheduler_type="constant",  # no decay to zero over a 10-step run
                  optim="adamw_torch", gradient_checkpointing=False)  # TRL defaults to True; train.py does not
    return args.model or os.path.join(ROOT, "assets", "tiny-maze"), build_dataset(), CompletionCounter(), fields


def shape_workload(args):
    """train.py's work at --shape (the module docstring): (model folder, dataset, reward function, GRPOConfig
    fields)."""
    from rollout import chat_prompt

    config = alternate_shape.read_config(args.config)
    folder = args.model or alternate_shape.write_model(
        alternate_shape.model_folder(args.output_dir, args.shape, args.layers, args.device), args.shape, args.layers,
        args.device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    task, items = alternate_shape.train_items(config)
    template = config["prompt_template"] or "paper"  # train.py's choice for a model that is not the tiny one
    indices = [index for step in range(args.warmup + args.steps + 1)  # one step spare
               for index in alternate_shape.step_prompts(config["seed"], len(items), args.prompts, step)]
    prompts = [chat_prompt(tokenizer, task.format_prompt(items[index], template)) for index in indices]
    # train.py tokenizes prompts without special tokens; TRL tokenizes a plain prompt with them: none are added
    if tokenizer(prompts[0])["input_ids"] != tokenizer(prompts[0], add_special_tokens=False)["input_ids"]:
        raise SystemExit("the tokenizer adds special tokens to a prompt: TRL's prompts would not be train.py's")
    reward = NoisyTaskReward(task, items, config["seed"], args.rollouts, args.noise)
    fields = dict(learning_rate=config["learning_rate"], lr_scheduler_type="constant_with_warmup",
                  warmup_steps=config["lr_warmup_steps"], optim="adamw_torch_fused",  # train.py: fused=True
                  gradient_checkpointing=config["gradient_checkpointing"],
                  gradient_checkpointing_kwargs={"use_reentrant": False},  # as train.py's
                  weight_decay=config["weight_decay"], max_grad_norm=config["grad_clip"],
                  epsilon=config["eps_low"], epsilon_high=config["eps_high"],
                  temperature=config["temperature"], top_p=config["top_p"],
                  shuffle_dataset=False)  # the prompts in train.py's order
    return folder, Dataset.from_dict({"prompt": prompts, "item": indices}), reward, fields


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="", choices=("", *alternate_shape.SHAPES),
                        help="train.py's work at this Qwen2.5 shape ('': bench.py's tiny workload)")
    parser.add_argument("--layers", type=int, default=0, help="--shape: keep this many layers (0: the shape's)")
    parser.add_argument("--config", default="", help="--shape: train.py's config (default: config/maze_qwen2.5_<shape>.py)")
    parser.add_argument("--prompts", type=int, default=0, help=f"prompts per step (default {PROMPTS_PER_STEP}; --shape: 2)")
    parser.add_argument("--rollouts", type=int, default=0, help=f"completions per prompt (default {ROLLOUTS}; --shape: 8)")
    parser.add_argument("--max_new_tokens", type=int, default=0, help=f"default {MAX_NEW_TOKENS}; --shape: 64")
    parser.add_argument("--noise", type=float, default=0.5, help="--shape: noise_rewards' flip probability")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: bf16 autocast (--shape only)")
    parser.add_argument("--steps", type=int, default=0, help="timed optimizer steps (default 8; --shape: 2)")
    parser.add_argument("--warmup", type=int, default=-1, help="optimizer steps run first and not timed (default 2; --shape: 1)")
    parser.add_argument("--model", default="", help="the model folder (default: assets/tiny-maze; --shape: one written "
                                                    "to --output_dir)")
    parser.add_argument("--micro_batch", type=int, default=0,
                        help="completions per forward/backward (per_device_train_batch_size; default 64 = train.py's "
                             "micro_batch; --shape: the config's); the step's completions are still generated in one "
                             "batch and make one optimizer update, with rows / micro_batch gradient accumulation steps")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch CPU threads (2 = bench.py's workload; 1 compares fairly on a busy machine)")
    parser.add_argument("--output_dir", default="/tmp/trl_grpo_bench")
    args = parser.parse_args(argv)
    shaped = bool(args.shape)
    if not shaped and (args.layers or args.config or args.device != "cpu"):
        parser.error("--layers, --config and --device=cuda go with --shape")
    if shaped and args.model and args.layers:
        parser.error("--layers cuts the model --shape writes: not with --model")
    args.prompts = args.prompts or (2 if shaped else PROMPTS_PER_STEP)
    args.rollouts = args.rollouts or (8 if shaped else ROLLOUTS)
    args.max_new_tokens = args.max_new_tokens or (64 if shaped else MAX_NEW_TOKENS)
    args.steps = args.steps or (2 if shaped else 8)
    args.warmup = args.warmup if args.warmup >= 0 else (1 if shaped else 2)
    if shaped:
        args.config = args.config or alternate_shape.config_path(args.shape)
        if not os.path.isfile(args.config):
            parser.error(f"--config={args.config}: no such file")
        args.micro_batch = args.micro_batch or alternate_shape.read_config(args.config)["micro_batch"]
    args.micro_batch = args.micro_batch or 64
    rows_per_step = args.prompts * args.rollouts
    if args.micro_batch <= 0 or rows_per_step % args.micro_batch:
        parser.error(f"--micro_batch must divide the step's {rows_per_step} rows, got {args.micro_batch}")
    if min(args.prompts, args.rollouts, args.max_new_tokens, args.steps, args.threads) < 1 or args.layers < 0:
        parser.error("--prompts, --rollouts, --max_new_tokens, --steps and --threads must be >= 1, --layers >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device=cuda but torch sees no CUDA device")
    return args


def peak_memory_mb(device):
    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def main():
    args = parse_args()
    accumulation = args.prompts * args.rollouts // args.micro_batch
    torch.set_num_threads(args.threads)
    folder, dataset, reward, fields = shape_workload(args) if args.shape else tiny_workload(args)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    common = dict(
        output_dir=args.output_dir,
        loss_type="dapo", beta=0.0, epsilon=0.2, epsilon_high=0.28,
        num_iterations=1,
        num_generations=args.rollouts,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation,  # one generation of prompts x rollouts completions per optimizer step
        # (with steps_per_generation == gradient_accumulation_steps and num_iterations=1, TRL skips the
        # separate old-logprob forward: the samples are on-policy, the ratio is exp(logp - logp.detach()))
        max_completion_length=args.max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0,
        scale_rewards="group",  # TRL's default; its std is Bessel-corrected, not configurable
        weight_decay=0.0, max_grad_norm=1.0,  # train.py: torch.optim.AdamW, grad_clip=1.0
        bf16=args.device == "cuda", fp16=False, use_cpu=args.device == "cpu",
        report_to=[], logging_steps=1, save_strategy="no",
        max_steps=args.warmup + args.steps,
        dataloader_num_workers=0,
        seed=0,
    )
    # the workload's fields win: optimizer, learning rate, gradient checkpointing (and --shape's config values)
    config = GRPOConfig(**{**common, **fields})
    timer = StepTimer(reward)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[timer])
    trainer.train()

    timed = timer.steps[args.warmup:]
    if not timed:
        raise SystemExit(f"no timed steps: ran {len(timer.steps)} steps with warmup {args.warmup}")
    seconds = sum(s["seconds"] for s in timed)
    tokens = sum(s["completion_tokens"] for s in timed)
    completions = sum(s["completions"] for s in timed)
    generation = [s["generation"] for s in timed if s["generation"] is not None]
    logged = [log["completions/mean_length"] for log in timer.logs[args.warmup:]]
    rewards = [log["reward"] for log in timer.logs[args.warmup:] if "reward" in log]
    result = {
        "seconds_per_step": round(seconds / len(timed), 4),
        "generation_s": round(sum(generation) / len(generation), 4) if generation else None,
        "update_s": round((seconds - sum(generation)) / len(timed), 4) if len(generation) == len(timed) else None,
        "completion_tokens_per_s": round(tokens / seconds, 1),
        "peak_memory_mb": peak_memory_mb(args.device),
        "response_length": round(tokens / completions, 2),
        "mean_completion_length": round(tokens / completions, 2),
        "logged_mean_length": round(sum(logged) / len(logged), 2) if logged else None,
        "completions_per_step": completions / len(timed),
        "reward": round(sum(rewards) / len(rewards), 3) if rewards else None,
        "steps_timed": len(timed),
        "warmup": args.warmup,
        "micro_batch": args.micro_batch,
        "threads": torch.get_num_threads(),
        "shape": args.shape or "tiny",
        "layers": model.config.num_hidden_layers,
        "prompts": args.prompts, "rollouts": args.rollouts, "max_new_tokens": args.max_new_tokens,
        "device": args.device,
        "trl": trl.__version__,
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
