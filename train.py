"""Pass@k Training (Chen et al., 2025) with DAPO's clipped token-level loss, read top to bottom.

    python train.py                                  # offline CPU demo: tiny model, passk_analytical
    python train.py --advantage=pass1 --k=8          # any registered advantage, any config value
    python train.py --task=rg:countdown --n_train=2000 --n_test=100   # any reasoning-gym task (tasks.py)
    python train.py config/maze_qwen2.5_7b.py --model=/path/to/Qwen2.5-7B-Instruct   # a config file, then overrides
    python train.py --out_dir=out --resume=True      # continue a stopped run where it left off
    accelerate launch --num_processes 8 train.py config/maze_qwen2.5_7b.py --model=/path   # data parallel

Data parallel (any number of processes, docs/real_models.md): every process holds the whole policy and
rolls out its own share of the step's prompts (from every mini-batch, its slice of mini_batch /
num_processes prompts: a prompt's group never splits, and the global mini-batches are those of one
process). Rewards and per-row counts are gathered, so advantages, token counts and metrics are those of
the global batch; each process backpropagates its rows, and the gradients are summed over processes once
per mini-batch. Only the main process writes metrics and checkpoints.

Each step: prompt batch -> rollouts (rollout.py) -> rewards (tasks.py; verify.py for the maze) -> advantages
(advantage.py, the experiment) -> clipped token-level policy loss (loss.py) on mini-batches -> AdamW update.
Metrics go to out_dir/metrics.jsonl as they are computed; checkpoints to out_dir/ckpt (HF format).
"""
import ast
import hashlib
import json
import os
import resource
import sys
import time

import torch

# -----------------------------------------------------------------------------
# config: defaults are the CPU demo; override with a config file and/or --key=value
out_dir = "out"
model = "tiny"  # "tiny": build and warm-start the offline char-level model, else a local HF folder
init_from = ""  # start the policy from this checkpoint/HF folder instead (e.g. a P@k run -> P@1 continual)
resume = False  # continue from out_dir/ckpt (same config) if it exists
# data (tasks.py): the maze (mazes.py, verify.py) or any reasoning-gym task
task = "maze"  # "maze" | "rg:NAME" (a reasoning-gym dataset, e.g. "rg:countdown"; binary reward: score == 1.0)
task_options = {}  # rg: the dataset's own config, e.g. {"min_numbers": 3, "max_numbers": 3}; maze: none
train_sizes = (5, 7)  # maze only
n_train = {5: 150, 7: 10000}  # mazes per size (5x5 has only ~220 distinct layouts); rg: items (a dict: 2000)
test_sizes = (5, 7, 9, 11)  # 9x9 and 11x11 are never seen in training (sec. 3.3); maze only
n_test = 30  # held-out mazes per size; rg: held-out items
maze_seed = 0  # the seed of the splits, of any task
prompt_template = ""  # "compact" (tiny model) or "paper" (figure 14, chat template); "" picks by model
# the tiny model's warm start (tiny.py)
warmup_sft_steps = 1200
# RL (appendix A.2 values for the paper in config/)
advantage = "passk_analytical"  # a name in advantage.ADVANTAGES
advantage_options = {}  # extra options of that estimator, e.g. {"noise": 0.3} or {"reduce": "mean"}
k = 4
k_end = 0  # k annealing (PKPO sec. 5.2.3): 0 = off, k stays fixed; else k moves from `k` to k_end ...
k_anneal_steps = 0  # ... at this step ("step": the paper's k=8 -> k=1 at step 1500) or over these steps ("linear")
k_anneal = "step"  # step | linear (advantage.annealed_k); the k of each step is logged as "k"
n_rollouts = 16  # responses per prompt (N_rollout)
prompt_batch = 8  # prompts per step (BS_prompt)
mini_batch = 8  # prompts per optimizer update (BS_mini); prompt_batch / mini_batch updates per step
micro_batch = 64  # response rows per forward/backward (gradient accumulation inside a mini-batch)
sampler = "auto"  # rollout.py: fast (our KV-cached loop, tested on Qwen2) | generate (HF generate, any model) | auto:
# fast for model="tiny", generate for any other model. Both draw the same tokens for the same seed
rollout_batch = 0  # prompts per generate call (0: all of a process's prompts); bounds KV-cache memory; see sampling_seed
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
curve_samples = 128  # samples per maze of the first and last evaluation (pass@k curves to k = n); 0: eval_samples
eval_cache = ""  # a folder: reuse the step-0 evaluation of the same starting weights and settings (a grid's runs)
checkpoint_every = 50
seed = 0
device = "auto"  # auto | cpu | cuda
dtype = "auto"  # auto (float32 on cpu, bf16-mixed on cuda) | float32 | bf16-mixed | bfloat16: see docs/real_models.md
gradient_checkpointing = False  # recompute activations in the backward pass: less memory, slower updates
threads = 0  # torch CPU threads, 0 = torch's default
show_progress = True
# -----------------------------------------------------------------------------
config_keys = [key for key, value in globals().items() if not key.startswith("_") and
               isinstance(value, (int, float, bool, str, tuple, dict)) and key not in ("config_keys",)]


def apply_overrides(argv, scope):
    """nanoGPT-style: a positional config file (python assignments) then --key=value overrides."""
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise SystemExit(f"config file {arg!r} not found")
            exec(open(arg).read(), {}, overrides := {})
            pairs = overrides.items()
        else:
            if "=" not in arg:
                raise SystemExit(f"bad argument {arg!r}: use --key=value")
            key, raw = arg[2:].split("=", 1)
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw  # a bare string
            pairs = [(key, value)]
        for key, value in pairs:
            if key not in config_keys:
                raise SystemExit(f"unknown config key {key!r}; known: {', '.join(config_keys)}")
            default = scope[key]
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(default, tuple) and isinstance(value, (list, int)):
                value = tuple(value) if isinstance(value, list) else (value,)
            if type(value) is not type(default) and not (isinstance(default, dict) and isinstance(value, int)):
                raise SystemExit(f"config {key}={value!r}: expected {type(default).__name__} like {default!r}")
            scope[key] = value


if __name__ == "__main__":
    apply_overrides(sys.argv[1:], globals())
config = {key: globals()[key] for key in config_keys}

# -----------------------------------------------------------------------------
# validate everything before any compute
# imported before the process group exists: its functions take `group=group.WORLD` as a default argument,
# which, if first imported later (transformers does, while building the model), holds the gloo group alive
# past destroy_process_group and can abort the process at exit (SIGABRT, 'terminate called ...')
if torch.distributed.is_available():  # (absent from some builds; then there is no process group either)
    import torch.distributed.nn  # noqa: E402, F401
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from advantage import annealed_k, check_options, compute_advantages  # noqa: E402
from checkpoint import latest_checkpoint, load_policy, load_trainer_state, save_checkpoint  # noqa: E402
from evaluate import format_curves, format_table, pass_at_k, score_mazes, summarize  # noqa: E402
from loss import DIAGNOSTIC_STATS, policy_loss  # noqa: E402
from optim import StochasticRoundingAdamW  # noqa: E402
from rollout import chat_prompt, concat_rollouts, generate_rollouts, rollout_logprobs  # noqa: E402
from tasks import make_task  # noqa: E402
from tiny import is_tiny  # noqa: E402


def config_error(message):
    """Stop before any compute. Under a data-parallel launch every process stops; only rank 0 says why."""
    raise SystemExit(f"bad config: {message}" if os.environ.get("RANK", "0") == "0" else 1)


try:
    check_options(advantage, advantage_options)
except ValueError as error:
    config_error(error)
if not 1 <= k <= n_rollouts:
    config_error(f"k={k} must be between 1 and n_rollouts={n_rollouts}")
if k_end and not 1 <= k_end <= n_rollouts:
    config_error(f"k_end={k_end} must be between 1 and n_rollouts={n_rollouts} (or 0: no k annealing)")
if k_end and (k_anneal not in ("step", "linear") or k_anneal_steps < 1):
    config_error(f"k annealing to k_end={k_end} needs k_anneal 'step' or 'linear' (got {k_anneal!r}) and "
                 f"k_anneal_steps >= 1 (got {k_anneal_steps})")
if prompt_batch % mini_batch:
    config_error(f"prompt_batch={prompt_batch} must be a multiple of mini_batch={mini_batch}")
if not 1 <= eval_k <= eval_samples:
    config_error(f"eval_k={eval_k} must be between 1 and eval_samples={eval_samples}")
if curve_samples and not eval_k <= curve_samples:
    config_error(f"curve_samples={curve_samples} must be 0 (use eval_samples) or at least eval_k={eval_k}")
for name in ("max_steps", "prompt_batch", "mini_batch", "micro_batch", "n_rollouts", "max_new_tokens"):
    if config[name] < 1 and not (name == "max_steps" and config[name] == 0):
        config_error(f"{name}={config[name]} must be positive")
if device not in ("auto", "cpu", "cuda"):
    config_error(f"device={device!r} must be auto, cpu or cuda")
if dtype not in ("auto", "float32", "bf16-mixed", "bfloat16"):
    config_error(f"dtype={dtype!r} must be auto, float32, bf16-mixed or bfloat16")
if sampler not in ("auto", "fast", "generate"):
    config_error(f"sampler={sampler!r} must be auto, fast or generate")
if rollout_batch < 0:
    config_error(f"rollout_batch={rollout_batch} must be >= 0 (0: one generate call per process)")
try:  # an unknown task or an option its dataset rejects: one line, before any compute
    task_spec = make_task(task, task_options, train_sizes=train_sizes, n_train=n_train, test_sizes=test_sizes,
                          n_test=n_test, seed=maze_seed)
except ValueError as error:
    config_error(error)
if model != "tiny" and not os.path.isdir(model):
    config_error(f"model={model!r} is neither 'tiny' nor a local folder: weights must be on local disk (no model "
                 "hub is assumed); download the model folder elsewhere, copy it here, pass --model=/path/to/it")
if device == "cuda" and not torch.cuda.is_available():
    config_error("device='cuda' but torch sees no CUDA device")
use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
# float32: float32 weights, no autocast (exact; the CPU default). bf16-mixed: float32 master weights and AdamW
# states, forward/backward under bf16 autocast (the CUDA default; 16 bytes/parameter + activations).
# bfloat16: bf16 weights, grads and AdamW moments with stochastic rounding (optim.py; 8 bytes/parameter).
precision = dtype if dtype != "auto" else ("bf16-mixed" if use_cuda else "float32")
accelerator = Accelerator(cpu=not use_cuda, mixed_precision="bf16" if precision == "bf16-mixed" else "no")
n_processes, rank, master = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
if prompt_batch % n_processes or mini_batch % n_processes:
    config_error(f"prompt_batch={prompt_batch} and mini_batch={mini_batch} must be multiples of the number of "
                 f"processes ({n_processes}): each process takes whole prompts of every mini-batch")
if init_from and not os.path.isdir(init_from):
    config_error(f"init_from={init_from!r} is not a folder")
ckpt_dir = os.path.join(out_dir, "ckpt")
resume_from = latest_checkpoint(ckpt_dir) if resume else None
try:
    trainer_state = load_trainer_state(resume_from) if resume_from else None
except ValueError as error:
    config_error(error)
if trainer_state:  # a resumed run may run longer, elsewhere or quieter, but must be the same experiment
    free_to_change = ("resume", "max_steps", "device", "threads", "show_progress", "gradient_checkpointing")
    changed = sorted(key for key in config if trainer_state["config"].get(key) != config[key] and key not in free_to_change)
    if changed:
        config_error(f"--resume with a different config than the checkpoint's: {changed}")

# -----------------------------------------------------------------------------
# set-up
if threads:
    torch.set_num_threads(threads)
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(seed)
try:
    splits = task_spec.make_splits()
except ValueError as error:
    config_error(error)
train_items, test_items = splits["train"], splits["test"]  # maze rows: maze, size, solution, answer

if resume_from:
    policy_path = resume_from
elif init_from:
    policy_path = init_from
elif model == "tiny":
    from tiny import load_or_train_task_tiny, load_or_train_tiny

    # the warm start sees exactly our train split, so never a test maze. The main process trains it (or
    # finds it cached) first; the other processes then load the cached folder.
    with accelerator.main_process_first():
        if task == "maze":
            policy_path = load_or_train_tiny(out_dir, train_items, steps=warmup_sft_steps, seed=seed,
                                             progress=show_progress and master)
        else:  # supervised on the task's reference answers, with a vocabulary and a cached folder of its own
            try:
                policy_path = load_or_train_task_tiny(out_dir, task_spec, splits, max_new_tokens, steps=warmup_sft_steps,
                                                      seed=seed, progress=show_progress and master)
            except ValueError as error:
                config_error(error)
else:
    policy_path = model
weights_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
try:
    policy, tokenizer = load_policy(policy_path, dtype=weights_dtype)
except ValueError as error:
    config_error(error)
# "auto": our fast loop for the tiny model (tested to equal generate on Qwen2), HF generate for any other model
rollout_sampler = sampler if sampler != "auto" else ("fast" if model == "tiny" or is_tiny(policy) else "generate")
policy.to(accelerator.device)  # not wrapped in DDP: the gradients are summed explicitly, see the update
if gradient_checkpointing:  # recomputes only in train mode: generate (eval mode) keeps its KV cache
    if hasattr(policy, "activation_checkpointing_enable"):  # the newer transformers 5 name
        policy.activation_checkpointing_enable({"use_reentrant": False})
    else:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
template = prompt_template or ("compact" if model == "tiny" or is_tiny(policy) else "paper")  # tiny: char-level
reference = None
if kl_coef:
    reference, _ = load_policy(policy_path, dtype=weights_dtype)
    reference.requires_grad_(False).to(accelerator.device)
if weights_dtype == torch.bfloat16:  # plain AdamW would round lr=1e-6 steps away in bf16 (optim.py)
    optimizer = StochasticRoundingAdamW(policy.parameters(), lr=learning_rate, weight_decay=weight_decay, seed=seed)
else:
    optimizer = torch.optim.AdamW(policy.parameters(), lr=learning_rate, weight_decay=weight_decay)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, lr_warmup_steps)))
for param in policy.parameters():  # zero grads, never None: a mini-batch whose rows were all skipped
    param.grad = torch.zeros_like(param)  # then steps AdamW exactly as a backward of zeros would
start_step = 0
if trainer_state:
    optimizer.load_state_dict(trainer_state["optimizer"])
    scheduler.load_state_dict(trainer_state["scheduler"])
    start_step = trainer_state["step"]

metrics_path = os.path.join(out_dir, "metrics.jsonl")
if master:  # keep the metrics of steps before the resume point, drop any written after it
    kept = []
    if start_step and os.path.exists(metrics_path):
        kept = [line for line in open(metrics_path) if json.loads(line)["step"] <= start_step]
    with open(metrics_path, "w") as f:
        f.writelines(kept)


def log(record):
    if master:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def run_eval(step, n_samples=eval_samples):
    """Each process scores its share of the test mazes; the records are gathered, so every process
    gets the result of the whole test set (the same as one process scoring all of it)."""
    eval_start = time.time()
    with accelerator.autocast():
        records = score_mazes(policy, tokenizer, test_items, template, n_samples, (1, eval_k), max_new_tokens,
                              temperature=1.0, top_p=0.95, prompts_per_batch=rollout_batch or 8, seed=seed + 1,
                              shard=(rank, n_processes), show_progress=show_progress and master,
                              sampler=rollout_sampler, task=task_spec)
    result = summarize(gather_object(records), n_samples, temperature=1.0, top_p=0.95)
    log({"step": step, "eval": result, "eval_time": time.time() - eval_start})
    return result


def peak_memory_mb():
    if use_cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def prompt_indices(step):
    """The prompts of a step: a deterministic function of (seed, step), so resuming needs no RNG state."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(len(train_items), generator=generator)[:prompt_batch].tolist()


def share_of(process):
    """Positions (in the step's prompt batch) of the prompts a process rolls out and trains on: its slice
    of local_mini prompts from every mini-batch, so global mini-batch j is prompts j*mini_batch.. as in
    a single process. The process's local mini-batch j is then its local prompts j*local_mini.."""
    return [j * mini_batch + process * local_mini + i for j in range(prompt_batch // mini_batch) for i in range(local_mini)]


local_mini = mini_batch // n_processes
share = share_of(rank)
share_positions = torch.tensor([position for process in range(n_processes) for position in share_of(process)])


def sampling_seed(step, position):
    """The seed of a generate call whose first prompt is at `position` in the step's prompt batch.

    Each process generates its share in chunks of rollout_batch prompts (0: the whole share at once),
    each after torch.manual_seed(sampling_seed(step, position of its first prompt)). Sampling then
    depends only on (seed, step, chunk): when rollout_batch divides mini_batch / processes, the chunks,
    and so the rollouts, are the same for any number of processes (1 or 8 processes sample the very
    same tokens). One process with rollout_batch=0 seeds each step as before chunks existed."""
    return seed * 1_000_003 + step + position * 1_000_000_007


def gather_prompts(tensor):
    """(local prompts, ...) of every process -> (prompt_batch, ...) on the CPU, in prompt-batch order."""
    if n_processes == 1:
        return tensor.cpu()
    gathered = accelerator.gather(tensor.contiguous().to(accelerator.device)).cpu()  # process-major
    ordered = torch.empty_like(gathered)
    ordered[share_positions] = gathered
    return ordered


def process_mean(sums, divisor):
    """[{stat name: one process's sum}, ...] -> {stat name: sum over the processes / divisor}"""
    names = dict.fromkeys(name for process in sums for name in process)
    return {name: sum(process.get(name, 0.0) for process in sums) / max(divisor, 1) for name in names}


def all_reduce_sum(tensors, bucket_bytes=2**29):
    """Sum `tensors` over the processes, in place, with a few all_reduce calls instead of one per tensor (each
    call is a round trip; a 7B model has hundreds of tensors): consecutive tensors of one dtype are copied into
    a flat bucket of at most bucket_bytes (or one larger tensor), summed in one call and copied back."""
    buckets, size = [], 0
    for tensor in tensors:
        if not buckets or buckets[-1][0].dtype != tensor.dtype or size + tensor.nbytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(tensor)
        size += tensor.nbytes
    for bucket in buckets:
        flat = torch.cat([tensor.flatten() for tensor in bucket])
        torch.distributed.all_reduce(flat)
        for tensor, summed in zip(bucket, flat.split([tensor.numel() for tensor in bucket])):
            tensor.copy_(summed.view_as(tensor))


# -----------------------------------------------------------------------------
# the loop
if master:
    print(f"{n_processes} process(es) on {accelerator.device}, {precision}, policy {policy_path}, sampler {rollout_sampler}")
def cached_start_eval():
    """The step-0 evaluation, from eval_cache if these starting weights were already evaluated with these settings
    (the same seed, test mazes, samples, ...): every run of a grid that starts from one policy shares it."""
    if not eval_cache:
        return run_eval(0, curve_samples or eval_samples)
    items = list(test_items["maze"]) if task == "maze" else [task, task_options, *test_items["question"]]
    key = hashlib.sha256(json.dumps([items, template, curve_samples or eval_samples, eval_k, max_new_tokens,
                                     seed, n_processes]).encode())
    for name in sorted(os.listdir(policy_path)):  # the starting weights: every weight file's bytes
        if name.endswith((".safetensors", ".bin")):
            with open(os.path.join(policy_path, name), "rb") as f:
                key.update(f.read())
    path = os.path.join(eval_cache, key.hexdigest()[:16] + ".json")
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
        # JSON made maze sizes str; a reasoning-gym task's key is its name
        result["per_size"] = {int(size) if size.isdigit() else size: value for size, value in result["per_size"].items()}
        log({"step": 0, "eval": result, "eval_time": 0.0, "eval_cached": path})
        return result
    result = run_eval(0, curve_samples or eval_samples)
    if master:  # atomic: a concurrent run of the grid may read it
        os.makedirs(eval_cache, exist_ok=True)
        with open(path + f".tmp{os.getpid()}", "w") as f:
            json.dump(result, f)
        os.replace(path + f".tmp{os.getpid()}", path)
    return result


evals = {}
if eval_every and start_step == 0:
    evals["before"] = cached_start_eval()
elif eval_every and master:  # resumed: the step-0 evaluation is in the metrics kept from before the stop
    evals.update({"before": record["eval"] for record in map(json.loads, open(metrics_path))
                  if record["step"] == 0 and "eval" in record})
progress = tqdm(range(start_step, max_steps), desc="train", disable=not (show_progress and master),
                initial=start_step, total=max_steps)
for step in progress:
    step_start = time.time()
    rows = [train_items[prompt_indices(step)[position]] for position in share]  # this process's prompts
    prompts = [chat_prompt(tokenizer, task_spec.format_prompt(row, template)) for row in rows]

    # 1. rollout: n_rollouts responses per prompt, with the sampling policy's logprobs and entropies
    chunk_size = rollout_batch or len(prompts)
    parts = []
    for start in range(0, len(prompts), chunk_size):
        torch.manual_seed(sampling_seed(step, share[start]))
        with accelerator.autocast():
            parts.append(generate_rollouts(policy, tokenizer, prompts[start:start + chunk_size], n_rollouts,
                                           max_new_tokens, temperature, top_p, sampler=rollout_sampler))
    rollout = concat_rollouts(parts, tokenizer.pad_token_id)
    generation_time = time.time() - step_start

    # 2. reward: 1 if the path reaches E, else 0 (verify.py); gathered: every process sees the global batch
    reward_start = time.time()
    local_rewards = torch.tensor([task_spec.reward(text, rows[i // n_rollouts]) for i, text in enumerate(rollout.texts)])
    rewards = gather_prompts(local_rewards.view(len(prompts), n_rollouts))  # (P, N)
    row_tokens = gather_prompts(rollout.response_mask.sum(-1).view(len(prompts), n_rollouts))  # (P, N)
    row_entropy = gather_prompts((rollout.entropies * rollout.response_mask).sum(-1).view(len(prompts), n_rollouts))
    row_logprob = gather_prompts((rollout.logprobs * rollout.response_mask).sum(-1).view(len(prompts), n_rollouts))
    response_lengths = gather_prompts(rollout.response_lengths.view(len(prompts), n_rollouts))  # (P, N)

    # 3. advantage: the experiment (advantage.py), on the global batch (estimators may rank prompts or sample)
    advantage_start = time.time()
    prompt_entropy = row_entropy.sum(-1) / row_tokens.sum(-1).clamp_min(1)  # (P,)
    bootstrap_generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    step_k = annealed_k(step, k, k_end, k_anneal_steps, k_anneal)  # k unless annealed
    advantages = compute_advantages(advantage, rewards, advantage_options, k=step_k, entropies=prompt_entropy,
                                    sequence_logprobs=row_logprob, generator=bootstrap_generator)  # (P, N)
    flat_advantages = advantages[share].flatten()  # (B,) this process's rows
    reward_time, advantage_time = advantage_start - reward_start, time.time() - advantage_start

    # 4. update: clipped token-level loss over mini-batches of prompts, micro-batches of rows.
    # Token-level over the GLOBAL mini-batch: every process divides its token sum by the token count of the
    # whole mini-batch (all processes), and the gradients are then SUMMED over processes (not averaged as
    # DDP would; so no world-size factor). The sum is computed explicitly, once per mini-batch, by every
    # process whatever its number of backward passes (rows with advantage 0 are skipped, so processes do
    # different numbers), which a DDP wrapper, syncing inside backward, could not do without hanging.
    update_start = time.time()
    policy.train()
    stats_sum, grad_norms = {}, []
    rows_per_mini = local_mini * n_rollouts
    # rows with advantage 0 add nothing to the loss unless an entropy or KL term is on: skip their backward
    trained = (advantages != 0) | (entropy_coef != 0 or kl_coef != 0)  # (P, N)
    trained_rows = trained[share].flatten()  # (B,) this process's rows
    micro_batches = []  # per mini-batch, its trained rows in micro-batches of at most micro_batch rows
    for mini in range(prompt_batch // mini_batch):
        mini_rows = torch.arange(mini * rows_per_mini, (mini + 1) * rows_per_mini)
        mini_rows = mini_rows[trained_rows[mini_rows]]
        micro_batches.append(list(mini_rows.split(micro_batch)) if len(mini_rows) else [])
    # pi_old is the sampling policy. The first mini-batch is trained before any optimizer step of this step, so
    # there pi_old IS the policy being trained: old logprobs = logprobs.detach(), the ratio exactly 1. The rows of
    # later mini-batches are scored now, before the first step, by the same forward the update uses.
    old_logprobs = rollout.logprobs.clone()  # (B, R)
    with torch.no_grad(), accelerator.autocast():
        for micro in (micro for micros in micro_batches[1:] for micro in micros):
            scored = rollout_logprobs(policy, rollout, micro)  # (rows, length)
            old_logprobs[micro, :scored.shape[1]] = scored.float().cpu()
    diagnostics_sum, diagnostic_minis = {}, 0  # ratio / clipping / KL stats: means over the TRAINED tokens
    for mini, micros in enumerate(micro_batches):
        mini_prompts = slice(mini * mini_batch, (mini + 1) * mini_batch)
        n_tokens = row_tokens[mini_prompts].sum().clamp_min(1)  # all processes' tokens
        mini_trained_tokens = float((row_tokens[mini_prompts] * trained[mini_prompts]).sum())  # all processes'
        diagnostic_minis += mini_trained_tokens > 0
        for micro in micros:
            length = int(rollout.response_lengths[micro].max())  # trim padding beyond the longest response
            response_mask = rollout.response_mask[micro, :length].to(accelerator.device)
            with accelerator.autocast():
                out = rollout_logprobs(policy, rollout, micro, with_entropy=entropy_coef != 0)
                logprobs, entropies = out if entropy_coef != 0 else (out, None)
                old = logprobs.detach() if mini == 0 else old_logprobs[micro, :length].to(accelerator.device)
                ref_logprobs = None
                if reference is not None:
                    with torch.no_grad():
                        ref_logprobs = rollout_logprobs(reference, rollout, micro)
                loss, stats = policy_loss(logprobs, old, flat_advantages[micro].to(accelerator.device), response_mask,
                                          eps_low, eps_high, n_tokens=n_tokens.to(accelerator.device),
                                          entropies=entropies, entropy_coef=entropy_coef,
                                          ref_logprobs=ref_logprobs, kl_coef=kl_coef)
            accelerator.backward(loss)
            for name, value in stats.items():
                if name in DIAGNOSTIC_STATS:  # token sum / n_tokens -> token sum / trained tokens
                    diagnostics_sum[name] = diagnostics_sum.get(name, 0.0) + value.detach() * (
                        float(n_tokens) / mini_trained_tokens)
                else:
                    stats_sum[name] = stats_sum.get(name, 0.0) + value.detach()
        if n_processes > 1:  # the global mini-batch's gradient: the sum of every process's (see above)
            all_reduce_sum([param.grad for param in policy.parameters()])
        grad_norms.append(float(torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)))
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
    scheduler.step()  # the learning-rate schedule counts RL steps
    n_updates = len(grad_norms)
    update_time = time.time() - update_start

    # 5. metrics, all of the global batch
    correct = rewards.sum(-1)  # (P,)
    per_process = gather_object([({name: float(value) for name, value in stats_sum.items()},
                                  {name: float(value) for name, value in diagnostics_sum.items()})])
    record = {
        "step": step + 1,
        "k": step_k,
        "reward": float(rewards.mean()),
        "pass@1": float(pass_at_k(n_rollouts, correct, 1).mean()),
        f"pass@{k}": float(pass_at_k(n_rollouts, correct, k).mean()),
        "entropy": float(row_entropy.sum() / row_tokens.sum()),
        "response_length": float(response_lengths.float().mean()),
        "zero_advantage_prompts": float((advantages.abs().sum(-1) == 0).float().mean()),
        "eta": float(advantages.abs().sum(-1).mean()),  # eq. 16 per prompt, averaged
        **process_mean([losses for losses, _ in per_process], n_updates),  # pg_loss (+ entropy, kl_ref)
        **process_mean([diagnostics for _, diagnostics in per_process], diagnostic_minis),
        "grad_norm": sum(grad_norms) / n_updates,
        "lr": scheduler.get_last_lr()[0],
        "generation_time": generation_time,  # the main process's times
        "reward_time": reward_time,
        "advantage_time": advantage_time,
        "update_time": update_time,
        "step_time": time.time() - step_start,
        "generated_tokens": int(response_lengths.sum()),
        "trained_tokens": int(row_tokens[trained].sum()),
        "peak_memory_mb": peak_memory_mb(),  # the main process's
    }
    log(record)
    progress.set_postfix(reward=f"{record['reward']:.3f}", **{f"pass@{k}": f"{record[f'pass@{k}']:.3f}"})

    done = step + 1
    if done % checkpoint_every == 0 or done == max_steps:
        accelerator.wait_for_everyone()
        if master:
            save_checkpoint(ckpt_dir, policy, tokenizer, {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": done, "config": config})
    if eval_every and done % eval_every == 0 and done != max_steps:
        run_eval(done)

# -----------------------------------------------------------------------------
if eval_every:
    evals["after"] = run_eval(max_steps, curve_samples or eval_samples)
accelerator.end_training()
if master and evals:
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(evals, f, indent=1)
    named = {f"step {0 if name == 'before' else max_steps}": result for name, result in evals.items()}
    print(format_table(named))
    print(format_curves(named))
    print(f"metrics: {metrics_path}  checkpoint: {ckpt_dir}")
