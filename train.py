"""Pass@k Training (Chen et al., 2025) with DAPO's clipped token-level loss, read top to bottom.

    python train.py                                  # offline CPU demo: tiny model, passk_analytical
    python train.py --advantage=pass1 --k=8          # any registered advantage, any config value
    python train.py --task=rg:chain_sum --n_train=2000 --n_test=100   # a reasoning-gym task (tasks.py)
    python train.py config/maze_qwen2.5_7b.py --model=/path/to/Qwen2.5-7B-Instruct   # a config file, then overrides
    python train.py --out_dir=out --resume=True      # continue a stopped run where it left off
    accelerate launch --num_processes=8 train.py config/maze_qwen2.5_7b.py --model=/path     # data parallel (DDP)

Each step is the paper's section 2.1: prompts -> rollouts (rollout.py) -> rewards (tasks.py) -> advantages
(advantage.py: the experiment) -> the clipped token-level update (loss.update_policy), then log, checkpoint and
evaluate (evaluate.py). Metrics go to out_dir/metrics.jsonl, checkpoints to out_dir/ckpt. Data parallel is
accelerate's (docs/real_models.md): every process rolls out its slice of every mini-batch, rewards are gathered
so that advantages and metrics are those of the global batch, and 1 or 8 processes train the same policy.
"""
import json
import os
import sys
import time

import torch

# -----------------------------------------------------------------------------
# config: defaults are the CPU demo; override with a config file and/or --key=value
out_dir = "out"
model = "tiny"  # "tiny": the offline char-level model (tiny.py), warm-started on the train split; else a local HF folder
init_from = ""  # start the policy from this checkpoint/HF folder instead (e.g. a P@k run -> P@1 continual)
resume = False  # continue from out_dir/ckpt (same config) if it exists
# data (tasks.py): the maze (mazes.py, verify.py) or any reasoning-gym task
task = "maze"  # "maze" | "rg:NAME" (a reasoning-gym dataset, e.g. "rg:countdown"; binary reward: score == 1.0)
task_options = {}  # rg: the dataset's own config, e.g. tasks.TASK_PRESETS["rg:countdown"]; maze: none
train_sizes = (5, 7)  # maze only
n_train = {5: 150, 7: 10000}  # maze: items per size (5x5 has only ~220 distinct layouts); rg: items (an int: 2000)
test_sizes = (5, 7, 9, 11)  # 9x9 and 11x11 are never seen in training (sec. 3.3); maze only
n_test = 30  # held-out items per group (maze size; an rg task is one group), or a dict {size: count}
split_seed = 0  # the seed of the train/test splits
prompt_template = ""  # "compact" (tiny model) or "paper" (figure 14, chat template); "" picks by model
warmup_sft_steps = 1200  # the tiny model's supervised warm start (tiny.py; the maze default's result is shipped)
warmup_retrain = False  # train the tiny warm start even where the shipped one (assets/tiny-maze) matches
# RL (appendix A.2 values for the paper in config/)
advantage = "passk_analytical"  # a name in advantage.ADVANTAGES
advantage_options = {}  # extra options of that estimator, e.g. {"noise": 0.3} or {"reduce": "mean"}
k = 4
k_end = 0  # k annealing (PKPO sec. 5.2.3): 0 = off; else k moves from `k` to k_end ...
k_anneal_steps = 0  # ... at this step ("step": the paper's k=8 -> k=1 at step 1500) or over these steps ("linear")
k_anneal = "step"  # step | linear (advantage.annealed_k); the k of each step is logged as "k"
n_rollouts = 16  # responses per prompt (N_rollout)
prompt_batch = 8  # prompts per step (BS_prompt)
mini_batch = 8  # prompts per optimizer update (BS_mini); prompt_batch / mini_batch updates per step
micro_batch = 64  # response rows per forward/backward (gradient accumulation inside a mini-batch)
sampler = "auto"  # rollout.py: fast (our KV-cached loop, Qwen2) | generate (HF generate, any model) | auto (fast for tiny)
# | vllm (infra/vllm_sampler.py: vLLM in this process, synced after every update; requirements-vllm.txt)
vllm_kv_cache_gib = 1.0  # sampler=vllm on the CPU: its KV cache (GiB)
vllm_gpu_memory_utilization = 0.3  # sampler=vllm on a GPU: the share of the GPU's memory vLLM takes (weights + KV cache)
vllm_sleep = False  # sampler=vllm on a GPU: sleep mode between rollouts (weights to host memory, KV cache freed)
tis_cap = 0.0  # truncated importance sampling: per-token weight min(pi_old / pi_sampler, tis_cap) (loss.py); 0 = off
rollout_batch = 0  # prompts per generate call (0: all of a process's prompts); bounds KV-cache memory
max_new_tokens = 48
temperature = 1.0
top_p = 1.0
learning_rate = 1e-4  # the tiny model's; the paper's 7B used 1e-6 (config/)
lr_warmup_steps = 10  # RL steps of linear warmup, then constant
weight_decay = 0.0
grad_clip = 1.0
eps_low, eps_high = 0.2, 0.28
entropy_coef = 0.0  # entropy regularisation baseline (sec. 3.1); 0 in the paper's Pass@k runs
kl_coef = 0.0  # KL to the initial policy; off in the paper
max_steps = 600  # the long protocol's horizon (config/maze_tiny_long.py): Pass@1 has narrowed the policy
# evaluation (evaluate.py; appendix A.2: temperature 1.0, top_p 0.95, 32 samples)
eval_every = 300  # steps; also before the first and after the last step; 0 = no evaluation
eval_samples = 32
eval_k = 8
curve_samples = 128  # samples per item of the first and last evaluation (pass@k curves to k = n); 0: eval_samples
eval_cache = ""  # a folder: reuse the step-0 evaluation of the same starting weights and settings (a grid's runs)
checkpoint_every = 50
seed = 0
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto (float32 on cpu, bf16-mixed on cuda) | float32 | bf16-mixed | bfloat16: docs/real_models.md
gradient_checkpointing = False  # recompute activations in the backward pass: less memory, slower updates
threads = 0  # torch CPU threads, 0 = torch's default
log_with = ""  # also send metrics to accelerate trackers, e.g. "tensorboard" or "wandb,tensorboard"
show_progress = True
# -----------------------------------------------------------------------------
config_keys = [key for key, value in globals().items() if not key.startswith("_") and
               isinstance(value, (int, float, bool, str, tuple, dict))]
if __name__ == "__main__":
    from infra.cli import apply_overrides
    apply_overrides(sys.argv[1:], globals(), config_keys)
config = {key: globals()[key] for key in config_keys}


def config_error(message):
    """Stop before any compute. Under a data-parallel launch every process stops; only rank 0 says why."""
    raise SystemExit(f"bad config: {message}" if os.environ.get("RANK", "0") == "0" else 1)


# validate everything before any compute: the first broken rule stops the run, in one line
import importlib.util  # noqa: E402
from infra.vllm_sampler import INSTALL as VLLM_INSTALL  # noqa: E402
from advantage import annealed_k, check_options, compute_advantages  # noqa: E402
from tasks import make_task  # noqa: E402

for broken, message in [
    (not 1 <= k <= n_rollouts, f"k={k} must be between 1 and n_rollouts={n_rollouts}"),
    (k_end and not 1 <= k_end <= n_rollouts, f"k_end={k_end} must be between 1 and n_rollouts={n_rollouts} (or 0)"),
    (k_end and (k_anneal not in ("step", "linear") or k_anneal_steps < 1),
     f"k annealing to k_end={k_end} needs k_anneal 'step' or 'linear' (got {k_anneal!r}) and k_anneal_steps >= 1"),
    (prompt_batch % mini_batch, f"prompt_batch={prompt_batch} must be a multiple of mini_batch={mini_batch}"),
    (not 1 <= eval_k <= eval_samples, f"eval_k={eval_k} must be between 1 and eval_samples={eval_samples}"),
    (curve_samples and curve_samples < eval_k, f"curve_samples={curve_samples} must be 0 or at least eval_k={eval_k}"),
    (max_steps < 0, f"max_steps={max_steps} must be >= 0"),
    *[(config[name] < 1, f"{name}={config[name]} must be positive") for name in
      ("prompt_batch", "mini_batch", "micro_batch", "n_rollouts", "max_new_tokens")],
    (rollout_batch < 0, f"rollout_batch={rollout_batch} must be >= 0 (0: one generate call per process)"),
    (device not in ("auto", "cpu", "cuda"), f"device={device!r} must be auto, cpu or cuda"),
    (device == "cuda" and not torch.cuda.is_available(), "device='cuda' but torch sees no CUDA device"),
    (dtype not in ("auto", "float32", "bf16-mixed", "bfloat16"), f"dtype={dtype!r} must be auto, float32, bf16-mixed or bfloat16"),
    (sampler not in ("auto", "fast", "generate", "vllm"), f"sampler={sampler!r} must be auto, fast, generate or vllm"),
    (sampler == "vllm" and importlib.util.find_spec("vllm") is None, VLLM_INSTALL),
    (vllm_kv_cache_gib <= 0 or not 0 < vllm_gpu_memory_utilization <= 1,
     f"vllm_kv_cache_gib={vllm_kv_cache_gib} must be > 0, vllm_gpu_memory_utilization={vllm_gpu_memory_utilization} in (0, 1]"),
    (tis_cap < 0, f"tis_cap={tis_cap} must be >= 0 (0: off)"),
    (model != "tiny" and not os.path.isdir(model), f"model={model!r} is neither 'tiny' nor a local folder: weights "
     "must be on local disk (no model hub is assumed); copy the model folder here and pass --model=/path/to/it"),
    (init_from and not os.path.isdir(init_from), f"init_from={init_from!r} is not a folder"),
]:
    if broken:
        config_error(message)
try:  # an unknown advantage or task, or an option either rejects: one line, before any compute
    check_options(advantage, advantage_options)
    task_spec = make_task(task, task_options, train_sizes=train_sizes, n_train=n_train, test_sizes=test_sizes,
                          n_test=n_test, seed=split_seed)
    splits = task_spec.make_splits()
except ValueError as error:
    config_error(error)
train_items, test_items = splits["train"], splits["test"]  # rows: the task's fields, `group` and `answer`

# -----------------------------------------------------------------------------
# set-up
if torch.distributed.is_available():  # before any process group: imported later (transformers does), it keeps
    import torch.distributed.nn  # noqa: E402, F401  the gloo group alive past its end and the process can abort at exit
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import DistributedType, gather_object  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from evaluate import (cached_evaluation, format_curves, format_table, pass_at_k, prompt_template_for,  # noqa: E402
                      sampler_for, score_items, summarize)
from loss import update_policy  # noqa: E402
from rollout import chat_prompt, concat_rollouts, generate_rollouts  # noqa: E402
from infra.compat import enable_activation_checkpointing  # noqa: E402
from infra.memory import Phases, fix_mmap_threshold  # noqa: E402
from infra.checkpoint import load_checkpoint, load_optimizer_state, load_policy, save_checkpoint  # noqa: E402
from infra.optim import StochasticRoundingAdamW  # noqa: E402

if threads:
    torch.set_num_threads(threads)
use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
# float32: float32 weights, no autocast (the CPU default). bf16-mixed: float32 master weights and AdamW states,
# forward/backward under bf16 autocast (the CUDA default). bfloat16: bf16 weights and AdamW moments with
# stochastic rounding (optim.py; 8 bytes/parameter).
precision = dtype if dtype != "auto" else ("bf16-mixed" if use_cuda else "float32")
if not use_cuda:  # freed activations of >= 1 MiB go back to the OS, not into malloc's heaps (infra/memory.py)
    fix_mmap_threshold()
if log_with:  # accelerate would silently drop a tracker whose package is missing
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

    installed = sorted(str(getattr(tracker, "value", tracker)) for tracker in get_available_trackers())  # LoggerTypes
    for tracker in log_with.split(","):
        if tracker not in LOGGER_TYPE_TO_CLASS or tracker not in installed:
            config_error(f"log_with: {tracker!r} is not an installed accelerate tracker (installed: "
                         f"{installed or 'none'}; known: {sorted(LOGGER_TYPE_TO_CLASS)})")
accelerator = Accelerator(cpu=not use_cuda, mixed_precision="bf16" if precision == "bf16-mixed" else "no",
                          log_with=log_with.split(",") if log_with else None, project_dir=out_dir)
n_processes, rank, master = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
sharded = accelerator.distributed_type == DistributedType.FSDP
if prompt_batch % n_processes or mini_batch % n_processes:
    config_error(f"prompt_batch={prompt_batch} and mini_batch={mini_batch} must be multiples of the number of "
                 f"processes ({n_processes}): each process takes whole prompts of every mini-batch")
ckpt_dir = os.path.join(out_dir, "ckpt")
try:
    resume_from, trainer_state = load_checkpoint(ckpt_dir) if resume else (None, None)
except ValueError as error:
    config_error(error)
if trainer_state:  # a resumed run may run longer, elsewhere or quieter, but must be the same experiment
    free = ("resume", "max_steps", "device", "threads", "show_progress", "gradient_checkpointing", "log_with")
    changed = sorted(key for key in config if trainer_state["config"].get(key) != config[key] and key not in free)
    if changed:
        config_error(f"--resume with a different config than the checkpoint's: {changed}")
    if not os.path.exists(os.path.join(out_dir, "metrics.jsonl")):  # the steps before the stop are logged there
        config_error(f"--resume: {resume_from} holds step {trainer_state['step']} but {out_dir}/metrics.jsonl, the "
                     "log of its steps, is missing; start a new run (another out_dir, or --resume=False)")
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(seed)

policy_path = resume_from or init_from or model
if policy_path == "tiny":  # warm-started on the train split by the main process (or found cached/shipped) first
    from infra.tiny import load_or_train_task_tiny, load_or_train_tiny

    with accelerator.main_process_first():
        try:
            warm = dict(steps=warmup_sft_steps, seed=seed, progress=show_progress and master, retrain=warmup_retrain)
            if task == "maze":  # (compact prompt, reference answer) pairs to imitate
                examples = [(task_spec.format_prompt(row, "compact"), row["answer"]) for row in train_items]
                policy_path = load_or_train_tiny(out_dir, examples, **warm)
            else:  # another task's characters and lengths
                policy_path = load_or_train_task_tiny(out_dir, task_spec, splits, max_new_tokens, **warm)
        except ValueError as error:
            config_error(error)
weights_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
try:
    policy, tokenizer = load_policy(policy_path, dtype=weights_dtype)
    reference = load_policy(policy_path, dtype=weights_dtype)[0].requires_grad_(False) if kl_coef else None
except ValueError as error:
    config_error(error)
# FSDP: HF generate, or vLLM (a full copy of the weights per process); else fast for the tiny model, generate for others
rollout_sampler = "generate" if sharded and sampler != "vllm" else sampler_for(policy, sampler)
if rollout_sampler == "vllm":
    from infra import vllm_sampler

    vllm_sampler.configure(vllm_kv_cache_gib, vllm_gpu_memory_utilization, vllm_sleep)
template = prompt_template_for(policy, prompt_template)  # "compact" for the tiny model, else "paper"
if gradient_checkpointing:  # recomputes only in train mode: sampling (eval mode) keeps its KV cache
    enable_activation_checkpointing(policy)
if weights_dtype == torch.bfloat16:  # plain AdamW would round lr=1e-6 steps away in bf16 (optim.py)
    optimizer = StochasticRoundingAdamW(policy.parameters(), lr=learning_rate, weight_decay=weight_decay, seed=seed)
else:
    # fused: one kernel for every tensor instead of a loop over them (FSDP's sharded tensors: torch's default)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=learning_rate, weight_decay=weight_decay,
                                  fused=None if sharded else True)
for param in policy.parameters():  # zero grads, never None: a mini-batch without a gradient row then
    param.grad = torch.zeros_like(param)  # steps AdamW exactly as a backward of zeros would
policy, optimizer = accelerator.prepare(policy, optimizer)  # DDP or FSDP when launched so; else as it was
if reference is not None:
    reference = reference.to(accelerator.device)
if rollout_sampler == "vllm":  # every process makes its engine now, together: under data parallel that is collective
    vllm_sampler.engine_for(accelerator.unwrap_model(policy))
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer, lambda s: min(1.0, (s + 1) / max(1, lr_warmup_steps)))
start_step = 0
if trainer_state:
    load_optimizer_state(accelerator.unwrap_model(policy), optimizer.optimizer, trainer_state)
    scheduler.load_state_dict(trainer_state["scheduler"])
    start_step = trainer_state["step"]
if log_with:
    accelerator.init_trackers("nanopassk", config={key: str(value) for key, value in config.items()})

metrics_path = os.path.join(out_dir, "metrics.jsonl")
if master:  # keep the metrics of steps up to the resume point, drop any written after it
    kept = [line for line in open(metrics_path) if json.loads(line)["step"] <= start_step] if start_step else []
    with open(metrics_path, "w") as f:
        f.writelines(kept)

# each process's prompts: its slice of every mini-batch, so global mini-batch j is that of a single process
n_minis, local_mini = prompt_batch // mini_batch, mini_batch // n_processes
positions = torch.arange(prompt_batch).view(n_minis, n_processes, local_mini)  # position in the step's batch
share = positions[:, rank].flatten()  # this process's prompts
gather_order = positions.transpose(0, 1).flatten()  # the positions of accelerator.gather's process-major rows


def log(record):
    if master:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if log_with:
            accelerator.log({name: value for name, value in record.items() if isinstance(value, (int, float))},
                            step=record["step"])


def step_prompts(step):
    """The positions in train_items of the step's prompt batch: a function of (seed, step), so resuming needs no
    RNG state."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(len(train_items), generator=generator)[:prompt_batch]


def sample_rollouts(step, prompts):
    """n_rollouts responses per prompt, in calls of rollout_batch prompts, each seeded by (seed, step, position
    of its first prompt): when rollout_batch divides mini_batch / processes, 1 or 8 processes draw the same."""
    size, parts = rollout_batch or len(prompts), []
    for start in range(0, len(prompts), size):
        torch.manual_seed(seed * 1_000_003 + step + int(share[start]) * 1_000_000_007)
        with accelerator.autocast():
            parts.append(generate_rollouts(accelerator.unwrap_model(policy), tokenizer, prompts[start:start + size],
                                           n_rollouts, max_new_tokens, temperature, top_p, sampler=rollout_sampler))
    return concat_rollouts(parts, tokenizer.pad_token_id)


def gather_batch(local):
    """(this process's prompts, ...) -> (prompt_batch, ...) on the CPU, in the step's prompt order."""
    gathered = accelerator.gather(local.contiguous().to(accelerator.device)).cpu()
    return torch.empty_like(gathered).index_copy_(0, gather_order, gathered)


def run_eval(step, n_samples=eval_samples):
    """pass@k of the held-out items. Each process scores a share, unless sharded (FSDP: every process must run
    the same forwards, so each scores all); the records are gathered."""
    start = time.time()
    with accelerator.autocast():
        records = score_items(accelerator.unwrap_model(policy), tokenizer, test_items, template, n_samples,
                              (1, eval_k), max_new_tokens, temperature=1.0, top_p=0.95,
                              prompts_per_batch=rollout_batch or 8, seed=seed + 1,
                              shard=(0, 1) if sharded else (rank, n_processes), show_progress=show_progress and master,
                              sampler=rollout_sampler, task=task_spec)
    result = summarize(records if sharded or n_processes == 1 else gather_object(records), n_samples, 1.0, 0.95)
    log({"step": step, "eval": result, "eval_time": time.time() - start})
    return result


# -----------------------------------------------------------------------------
# the loop
if master:
    print(f"{n_processes} process(es) on {accelerator.device}, {precision}, policy {policy_path}, sampler {rollout_sampler}")
evals = {}
phases = Phases(accelerator.device)  # each step's seconds and peak memory (MiB) per phase (infra/memory.py)
if eval_every and start_step == 0:  # the step-0 evaluation, shared by a grid's runs from the same weights
    key = [task, task_options, [task_spec.format_prompt(row, template) for row in test_items], template,
           curve_samples or eval_samples, eval_k, max_new_tokens, seed, n_processes]
    evals["before"], cached_path = cached_evaluation(eval_cache, key, policy_path, master,
                                                     lambda: run_eval(0, curve_samples or eval_samples))
    if cached_path:
        log({"step": 0, "eval": evals["before"], "eval_time": 0.0, "eval_cached": cached_path})
elif eval_every and master:  # resumed: the step-0 evaluation is in the metrics kept from before the stop
    evals.update({"before": record["eval"] for record in map(json.loads, open(metrics_path))
                  if record["step"] == 0 and "eval" in record})
for step in tqdm(range(start_step, max_steps), desc="train", disable=not (show_progress and master),
                 initial=start_step, total=max_steps):
    started = time.time()
    phases.begin("generation")
    # 1. prompts: this process's share of the step's prompt batch
    rows = [train_items[int(index)] for index in step_prompts(step)[share]]
    prompts = [chat_prompt(tokenizer, task_spec.format_prompt(row, template)) for row in rows]

    # 2. rollouts: n_rollouts responses per prompt, with the sampling policy's logprobs and entropies
    rollout = sample_rollouts(step, prompts)
    phases.begin("advantage")  # rewards and advantages

    # 3. rewards (tasks.py), 0 or 1 per response; gathered with per-response sums, so every process sees the global batch
    local_rewards = torch.tensor([task_spec.reward(text, rows[i // n_rollouts]) for i, text in enumerate(rollout.texts)])
    mask = rollout.response_mask
    rewards, row_tokens, row_entropy, row_logprob, row_lengths = (gather_batch(values.view(len(rows), n_rollouts))
        for values in (local_rewards, mask.sum(-1), (rollout.entropies * mask).sum(-1),
                       (rollout.logprobs * mask).sum(-1), rollout.response_lengths))  # each (P, N)

    # 4. advantages: the experiment (advantage.py), on the global batch (estimators may rank prompts or sample)
    step_k = annealed_k(step, k, k_end, k_anneal_steps, k_anneal)
    advantages = compute_advantages(advantage, rewards, advantage_options, k=step_k, sequence_logprobs=row_logprob,
                                    entropies=row_entropy.sum(-1) / row_tokens.sum(-1).clamp_min(1),
                                    generator=torch.Generator().manual_seed(seed * 1_000_003 + step))  # (P, N)

    # 5. update: DAPO's token-level loss over mini-batches (loss.py). Rows of advantage 0 add nothing unless an
    # entropy or KL term is on; every process runs as many rows as the process with the most rows that do
    trained = (advantages != 0) | (entropy_coef != 0 or kl_coef != 0)  # (P, N)
    stats = update_policy(policy, optimizer, rollout, advantages[share].flatten(),
                          mini_tokens=row_tokens.view(n_minis, -1).sum(-1),
                          mini_rows=trained.view(n_minis, n_processes, -1).sum(-1).amax(-1),
                          accelerator=accelerator, micro_batch=micro_batch, eps_low=eps_low, eps_high=eps_high,
                          grad_clip=grad_clip, entropy_coef=entropy_coef, kl_coef=kl_coef, reference=reference,
                          sharded=sharded, phase=phases.begin, tis_cap=tis_cap)  # it begins "scoring", then "update"
    scheduler.step()  # the learning-rate schedule counts RL steps
    if rollout_sampler == "vllm":  # the sampler gets the updated weights (logged as weight_sync_time)
        phases.begin("weight_sync")
        vllm_sampler.sync_weights(accelerator.unwrap_model(policy))

    # 6. log, checkpoint, evaluate
    log({"step": step + 1, "k": step_k, "reward": float(rewards.mean()),
         "pass@1": float(pass_at_k(n_rollouts, rewards.sum(-1), 1).mean()),
         f"pass@{k}": float(pass_at_k(n_rollouts, rewards.sum(-1), k).mean()),
         "entropy": float(row_entropy.sum() / row_tokens.sum()),
         "response_length": float(row_lengths.float().mean()),
         "prompt_length": rollout.prompt_length,  # this process's padded prompt tokens (the longest prompt)
         "zero_advantage_prompts": float((advantages.abs().sum(-1) == 0).float().mean()),
         "eta": float(advantages.abs().sum(-1).mean()),  # eq. 16 per prompt, averaged
         **stats, "lr": scheduler.get_last_lr()[0],
         **phases.take(), "step_time": time.time() - started,  # each phase's seconds and peak MiB
         "generated_tokens": int(row_lengths.sum()), "trained_tokens": int(row_tokens[trained].sum()),
         "peak_memory_mb": phases.overall_peak_mb()})
    if (step + 1) % checkpoint_every == 0 or step + 1 == max_steps:
        save_checkpoint(ckpt_dir, accelerator, policy, optimizer.optimizer, tokenizer,
                        {"scheduler": scheduler.state_dict(), "step": step + 1, "config": config})
    if eval_every and (step + 1) % eval_every == 0 and step + 1 != max_steps:
        run_eval(step + 1)

# -----------------------------------------------------------------------------
if eval_every:
    evals["after"] = run_eval(max_steps, curve_samples or eval_samples)
if rollout_sampler == "vllm":  # while the process group is still there
    vllm_sampler.shutdown()
accelerator.end_training()
if master and evals:
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(evals, f, indent=1)
    named = {f"step {0 if name == 'before' else max_steps}": result for name, result in evals.items()}
    print(format_table(named))
    print(format_curves(named))
    print(f"metrics: {metrics_path}  checkpoint: {ckpt_dir}")
