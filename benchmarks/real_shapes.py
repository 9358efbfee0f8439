"""train.py's RL step at real Qwen2.5 shapes: each phase's time and peak memory, measured, beside a memory model.

    python benchmarks/real_shapes.py                                    # CPU: tiny, wide, 0.5b (~15 min)
    python benchmarks/real_shapes.py --shapes=1.5b --dtype=bfloat16 --steps=1     # CPU, 1.5B in bf16 (~20 min)
    python benchmarks/real_shapes.py --predict                          # the configs on one 80 GB GPU: no run
    python benchmarks/real_shapes.py --device=cuda --shapes=tiny,0.5b,1.5b,7b     # on a GPU

(from the repository root). Shapes: `tiny`, the shipped char-level model (4 layers of width 128, 17 tokens);
`wide`, the tests' fixture (Qwen2.5-0.5B's layout, 2 layers of width 64, the real 151,936-row vocabulary);
`0.5b`, `1.5b`, `7b`: random weights at the exact configs (benchmarks/shapes.py), written once to --work.

The work, reduced and the same at every shape: 2 prompts a step (the shape's config, its train split, through
the chat template), 8 rollouts each in one generate call, at most --max_new_tokens (64; a random model never ends
early), mini_batch=1, so two optimizer updates a step and the second prompt's rows are scored under the old
policy first (the scoring phase), micro_batch=8 rows, advantage noise_rewards (noise 0.5: every row trains),
--steps steps (step 1 creates the gradients and AdamW's states; step 2 is the steady state).

Measured: train.py's metrics.jsonl (infra/memory.py): each phase's seconds and peak, on CPU the process's
resident set (VmHWM, reset at each phase's start: everything the process holds, Python and libraries included),
on CUDA torch.cuda.max_memory_allocated. Predicted: `predict_peaks`, from the config and the model's shape:
    peak = baseline + weights + gradients + AdamW + (autocast's bf16 weights) + the phase's own memory
  - generation: the KV cache of the generate call's rows, plus the larger of the prefill's transients (one layer
    at a time) and one decode step's (rows, V) float32 copies;
  - scoring (no grad): the micro-batch's KV cache (prompt and responses), plus the larger of one layer's
    transients and the output layer's chunk (infra/chunked_head.py, CHUNK_POSITIONS positions);
  - update: the micro-batch's saved activations (all layers; under gradient checkpointing each layer's input and
    one layer recomputed), plus the output layer's backward: its chunk's logits and probabilities and the float32
    gradient of its weight (V, H).
The baseline (Python, torch, transformers, the task's splits, the tokenizer) is measured in a fresh process; on
CUDA it is 0 (the allocator's count holds tensors only).

On CPU the resident set counts memory torch has freed but glibc's malloc still holds: by default glibc serves
allocations up to 32 MiB from its heap once a freed one has raised its (dynamic) mmap threshold, and a fragmented
heap is not returned. So the children run with MALLOC_MMAP_THRESHOLD_=131072 (glibc's initial threshold, fixed):
every allocation of 128 KiB or more is its own mapping, returned when freed, and the resident set follows the live
tensors, as CUDA's max_memory_allocated does. --malloc_mmap_threshold=0 sets none: train.py then fixes it at 1
MiB itself (infra/memory.py; at 0.5B, step 2, the update 0.2 GiB higher; under glibc's dynamic default it held
1.6 GiB more: freed activations its heaps keep, BENCHMARKS.md). Bytes per
saved activation are counted from HF's Qwen2 decoder layer (`ACTIVATIONS_PER_TOKEN`). It prints one row per
shape, step and phase, then one JSON line.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import alternate_shape  # noqa: E402

MIB = 2 ** 20
PHASES = ("generation", "scoring", "update")
CHUNK_POSITIONS = 1024  # infra.chunked_head.CHUNK_POSITIONS (not imported: that would import torch into the driver)
# bytes per value: weights, their gradients, AdamW's two states together, activations and KV cache, and the bf16
# copy of every weight that autocast keeps while a forward runs under it
PRECISIONS = {
    "float32": dict(weight=4, grad=4, optimizer=8, activation=4, autocast_copy=0),
    "bf16-mixed": dict(weight=4, grad=4, optimizer=8, activation=2, autocast_copy=2),
    "bfloat16": dict(weight=2, grad=2, optimizer=4, activation=2, autocast_copy=0),  # optim.py: bf16 moments
}
CONFIGS = {"tiny": "", "wide": "config/maze_qwen2.5_0.5b.py", "0.5b": "config/maze_qwen2.5_0.5b.py",
           "1.5b": "config/maze_qwen2.5_1.5b.py", "7b": "config/maze_qwen2.5_7b.py"}
TRAIN_PROMPT_TOKENS = 298  # the longest maze prompt of the paper's train sizes 9-15, through Qwen2.5's chat template
GPU_BYTES, GPU_SHARE = 80e9, 0.9  # an 80 GB GPU; the share the model may fill (the rest: CUDA context, fragments)
MODEL_MARGIN = 1.15  # what a config may assume of the model's transient terms: its error at the measured shapes


def model_shape(config):
    """The sizes the memory model needs, from a HF config (a dict of config.json)."""
    hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim  # width of the keys (and of the values)
    inter = config["intermediate_size"]
    per_layer = hidden * (hidden + 2 * kv) + hidden + 2 * kv + hidden * hidden + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return dict(hidden=hidden, intermediate=inter, layers=layers, kv_width=kv, vocab=vocab,
                parameters=embeddings + layers * per_layer + hidden)


def activations_per_token(shape):
    """Values one decoder layer of HF's Qwen2 saves for the backward, per token: the two RMSNorms' input and
    output (4 H), the query, its rotated half, the attention output and o_proj's input (4 H), the keys and values
    before and after rotation (4 KV), the MLP's gate, up, silu(gate) and their product (4 I). Checked against
    torch's saved-tensor hooks on one layer at the 0.5B and 1.5B widths (within 2%)."""
    return 4 * shape["intermediate"] + 8 * shape["hidden"] + 4 * shape["kv_width"]


def predict_peaks(shape, work):
    """{phase: predicted peak MiB} and {term: MiB} of train.py's phases (the module docstring's model).

    work: precision, prompt_length (P, padded), response_length (R, padded), prompts (per generate call, U),
    n_rollouts, micro_batch (m rows), mini_batches (per step), gradient_checkpointing, sampler ("fast" keeps each
    prompt's cache once; "vllm" adds its engine: vllm_kv_cache_gib, vllm_sleep), step (1: the first, before AdamW's
    states exist), baseline_mib."""
    b = PRECISIONS[work["precision"]]
    H, I, L, KV, V = shape["hidden"], shape["intermediate"], shape["layers"], shape["kv_width"], shape["vocab"]
    P, R, n, m = work["prompt_length"], work["response_length"], work["n_rollouts"], work["micro_batch"]
    act = b["activation"]
    rows = work["prompts"] * n  # rows of one generate call
    first = work["step"] == 1
    # train.py zero-fills every gradient before the loop; AdamW's states appear at the first optimizer step
    weights = shape["parameters"] * (b["weight"] + b["grad"] + b["autocast_copy"])
    adamw = shape["parameters"] * b["optimizer"]
    state = weights + (0 if first else adamw)
    terms = {"baseline": work["baseline_mib"] * MIB, "weights+grads": weights, "adamw": adamw}

    # generation: the cache of every row (the fast sampler keeps each prompt's part once), then the transients
    cached = work["prompts"] * P + rows * R if work["sampler"] == "fast" else rows * (P + R)
    kv_cache = L * 2 * KV * act * cached
    prefill = work["prompts"] * P * (3 * I + 2 * H) * act  # each prompt once, both samplers: MLP, K/V repeated
    decode_logits = rows * V * 4 * 6  # (rows, V) float32: logits, log-softmax, scores, softmax, entropy terms
    generation = state + kv_cache + max(prefill, decode_logits)
    terms["generation kv cache"] = kv_cache

    # scoring, no grad (mini-batches after the first): the micro-batch's cache, one layer's transients, the head
    prompts_per_micro = math.ceil(m / n)
    positions = m * R  # response positions scored
    chunk = min(positions, CHUNK_POSITIONS) * V * 4  # one chunk's float32 logits
    score_cache = L * 2 * KV * act * m * (P + R)
    layer = m * R * 3 * I * act + m * (P + R) * 2 * H * act  # MLP; K/V repeated to every head for sdpa
    scoring = state + score_cache + max(layer, 2 * chunk) + positions * H * act
    terms["scoring head chunk"] = 2 * chunk
    vllm = 0
    if work["sampler"] == "vllm":  # infra/vllm_sampler.py: a second copy of the weights (the compute dtype) and
        # vLLM's KV cache (vllm_kv_cache_gib; on a GPU its gpu_memory_utilization share is the cap), resident in every
        # phase but the update under vllm_sleep; generation then holds them and the entropy forward of 64 rows
        vllm = shape["parameters"] * act + work.get("vllm_kv_cache_gib", 1.0) * 2 ** 30
        score_rows = min(rows, 64)
        generation = state + vllm + L * 2 * KV * act * score_rows * (P + R) + max(score_rows * R * 3 * I * act, 2 * chunk)
        scoring += vllm
        terms["vllm engine"] = vllm

    # update: saved activations, then the head's backward on top of them
    if work["gradient_checkpointing"]:  # every row runs prompt and response; each layer's input is kept
        tokens = m * (P + R - 1)
        saved = L * tokens * H * act + tokens * (activations_per_token(shape) + 2 * H) * act * 2  # one recomputed
    else:  # each distinct prompt runs once; the rows' attention keeps K/V over prompt and response per head
        tokens = prompts_per_micro * P + m * (R - 1)
        saved = L * (tokens * activations_per_token(shape) + m * (P + R) * 2 * H) * act
    saved += positions * 2 * H * act  # the final norm
    head_backward = V * H * 4 + 2 * chunk + positions * H * 4  # grad of the weight, logits + probs, grad of hidden
    update = terms["baseline"] + weights + adamw + saved + head_backward
    if first and work["mini_batches"] == 1:  # no AdamW state until the step's only optimizer step, after the backward
        update = terms["baseline"] + weights + max(saved + head_backward, adamw)
    update += 0 if work.get("vllm_sleep") else vllm
    terms.update({"update activations": saved, "update head backward": head_backward})
    peaks = {"generation": terms["baseline"] + generation, "update": update}
    if work["mini_batches"] > 1:
        peaks["scoring"] = terms["baseline"] + scoring
    return {k: v / MIB for k, v in peaks.items()}, {k: v / MIB for k, v in terms.items()}


# -----------------------------------------------------------------------------
# the runs
BASELINE_CODE = """
import sys; sys.path.insert(0, {root!r})
import torch, transformers, accelerate  # what train.py holds before it loads a model: its imports,
import advantage, evaluate, loss, rollout, scoring, tasks, infra.checkpoint, infra.memory, infra.optim, infra.tiny
import infra.chunked_head
from accelerate import Accelerator
from transformers import AutoTokenizer
from benchmarks import alternate_shape
accelerator = Accelerator(cpu=True)
config = alternate_shape.read_config({config!r}) if {config!r} else dict(alternate_shape.TRAIN_DEFAULTS)
task, items = alternate_shape.train_items(config)  # the task's splits
tokenizer = AutoTokenizer.from_pretrained({folder!r})  # and the tokenizer,
# and the code every phase runs, paged in by a 1-layer model of width 16 (its own memory: a few hundred KiB)
micro = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32,
    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, bos_token_id=0, eos_token_id=1))
ids = torch.randint(2, 64, (2, 6))
micro.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=True, pad_token_id=0)
optimizer = torch.optim.AdamW(micro.parameters(), fused=True)
with infra.chunked_head.scoring_head(micro, ids[:, 1:]):
    micro(input_ids=ids[:, :-1]).logits[0].sum().backward()
optimizer.step()
print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmRSS:')) / 1024)
"""


def model_folder(args, shape):
    """The model train.py loads for `shape`: written once to --work (random weights), or tiny's shipped one."""
    if shape == "tiny":
        return os.path.join(ROOT, "assets", "tiny-maze")
    if shape == "wide":
        folder = os.path.join(args.work, "qwen2.5-wide")
        if not os.path.isfile(os.path.join(folder, "config.json")):
            code = (f"import sys, torch; sys.path.insert(0, {ROOT!r}); from benchmarks.shapes import SMALL, "
                    f"write_model_folder; write_model_folder({folder!r}, '0.5b', torch.float32, **SMALL)")
            subprocess.run([sys.executable, "-c", code], check=True)
        return folder
    return alternate_shape.write_model(alternate_shape.model_folder(args.work, shape, 0, args.device), shape, 0,
                                       args.device, args.lock)


def baseline_mib(args, shape, folder):
    """The resident set of a fresh process after train.py's imports, its task's splits and the tokenizer (CPU);
    0 on CUDA."""
    if args.device == "cuda":
        return 0.0
    code = BASELINE_CODE.format(root=ROOT, folder=folder, config=CONFIGS[shape] and os.path.join(ROOT, CONFIGS[shape]))
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env=child_env(args)).stdout.split()[-1])


def child_env(args):
    """The children's environment: --threads, and glibc's mmap threshold fixed (module docstring)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if args.malloc_mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    return env


def precision_of(args, shape):
    if args.dtype:
        return args.dtype
    if args.device == "cpu":
        return "float32"
    return alternate_shape.read_config(os.path.join(ROOT, CONFIGS[shape]))["dtype"] if CONFIGS[shape] else "bf16-mixed"


def train_command(args, shape, folder, out_dir):
    overrides = dict(model="tiny" if shape == "tiny" else folder, out_dir=out_dir, prompt_batch=2, mini_batch=1,
                     n_rollouts=args.rollouts, k=min(4, args.rollouts), max_new_tokens=args.max_new_tokens,
                     micro_batch=args.micro_batch, rollout_batch=0, advantage="noise_rewards",
                     advantage_options={"noise": 0.5}, max_steps=args.steps, eval_every=0,
                     checkpoint_every=1_000_000, show_progress=False, device=args.device,
                     dtype=precision_of(args, shape), threads=args.threads)
    config = [CONFIGS[shape]] if CONFIGS[shape] else []
    return [sys.executable, "train.py", *config, *(f"--{key}={value}" for key, value in overrides.items())]


def run_shape(args, shape):
    """Run train.py at `shape`; returns its rows: measured and predicted peak per step and phase."""
    folder = model_folder(args, shape)
    with open(os.path.join(folder, "config.json")) as f:
        sizes = model_shape(json.load(f))
    baseline = baseline_mib(args, shape, folder)
    out_dir = os.path.join(args.work, f"run-{shape}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    log_path = out_dir + ".log"
    code, peak_rss_mb, wall = alternate_shape.run_child(train_command(args, shape, folder, out_dir), log_path,
                                                        child_env(args),
                                                        args.lock if shape not in ("tiny", "wide") else "")
    status = alternate_shape.outcome(code, log_path)
    rows = []
    if status == "ok":
        steps = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
        config = alternate_shape.read_config(os.path.join(ROOT, CONFIGS[shape])) if CONFIGS[shape] else {}
        for record in (r for r in steps if "step_time" in r):
            work = dict(precision=precision_of(args, shape), prompt_length=record["prompt_length"],
                        response_length=args.max_new_tokens, prompts=2, n_rollouts=args.rollouts,
                        micro_batch=args.micro_batch, mini_batches=2, step=record["step"], baseline_mib=baseline,
                        gradient_checkpointing=config.get("gradient_checkpointing", False),
                        sampler="fast" if shape == "tiny" else "generate")
            predicted, terms = predict_peaks(sizes, work)
            for phase in PHASES:
                measured = record[f"{phase}_peak_mb"]
                rows.append(dict(shape=shape, step=record["step"], phase=phase, seconds=round(record[f"{phase}_time"], 2),
                                 measured_mib=round(measured), predicted_mib=round(predicted[phase]),
                                 error=round(predicted[phase] / measured - 1, 3), prompt_length=record["prompt_length"],
                                 precision=work["precision"], step_time=round(record["step_time"], 1),
                                 parameters=sizes["parameters"], baseline_mib=round(baseline), terms=terms))
    shutil.rmtree(out_dir, ignore_errors=True)  # its checkpoint: up to 16 bytes a parameter
    if not rows:
        rows.append(dict(shape=shape, status=status, exit_code=code, peak_rss_mb=peak_rss_mb, wall_s=wall, log=log_path))
    return rows


def print_header(device):
    unit = "peak RSS" if device == "cpu" else "max allocated"
    print(f"| shape | step | phase | seconds | {unit}, measured | predicted | error |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)


def print_rows(rows):
    for r in rows:
        if "phase" not in r:
            print(f"| {r['shape']} | | | | {r['status']} (peak RSS {r['peak_rss_mb']:.0f} MB) | | |")
            continue
        print(f"| {r['shape']} | {r['step']} | {r['phase']} | {r['seconds']:.1f} | {r['measured_mib']:,} MiB | "
              f"{r['predicted_mib']:,} MiB | {100 * r['error']:+.0f}% |", flush=True)


# -----------------------------------------------------------------------------
# the configs on one 80 GB GPU, predicted
def predict_configs(shapes):
    """For each config: the phases' predicted peaks at its own work (paper_maze.py's batches, its max_new_tokens,
    the longest train prompt), and the largest rollout_batch (prompts per generate call) and micro_batch (rows per
    forward and backward), powers of 2 within the mini-batch, that fit: weights, gradients and AdamW (exact) plus
    MODEL_MARGIN x the rest of the predicted peak within GPU_SHARE of an 80 GB GPU."""
    from benchmarks.shapes import CONFIGS as QWEN

    budget_mib, table = GPU_BYTES * GPU_SHARE / MIB, []
    for shape in shapes:
        config = alternate_shape.read_config(os.path.join(ROOT, CONFIGS[shape]))
        sizes = model_shape(QWEN[shape])
        base = dict(precision=config["dtype"], prompt_length=TRAIN_PROMPT_TOKENS,
                    response_length=config["max_new_tokens"], n_rollouts=config["n_rollouts"],
                    mini_batches=config["prompt_batch"] // config["mini_batch"], step=2, baseline_mib=0.0,
                    gradient_checkpointing=config["gradient_checkpointing"], sampler="generate")

        def fits(prompts, micro, phases):
            peaks, terms = predict_peaks(sizes, dict(base, prompts=prompts, micro_batch=micro))
            state = terms["weights+grads"] + terms["adamw"]
            return all(state + MODEL_MARGIN * (peaks[phase] - state) <= budget_mib for phase in phases)

        rows = config["mini_batch"] * config["n_rollouts"]
        powers = [2 ** i for i in range(12)]
        rollout_batches = [u for u in powers if config["mini_batch"] % u == 0 and fits(u, 1, ["generation"])]
        micro_batches = [m for m in powers if m <= rows and fits(1, m, ["update", "scoring"])]
        predicted, terms = predict_peaks(sizes, dict(base, prompts=config["rollout_batch"],
                                                     micro_batch=config["micro_batch"]))
        table.append(dict(shape=shape, precision=config["dtype"], rollout_batch=config["rollout_batch"],
                          micro_batch=config["micro_batch"], gradient_checkpointing=config["gradient_checkpointing"],
                          predicted_gb={k: round(v * MIB / 1e9, 1) for k, v in predicted.items()},
                          terms_gb={k: round(v * MIB / 1e9, 1) for k, v in terms.items()},
                          largest_rollout_batch=max(rollout_batches, default=0),
                          largest_micro_batch=max(micro_batches, default=0)))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,wide,0.5b", help=f"comma-separated, of {list(CONFIGS)}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="", choices=("", *PRECISIONS),
                        help="train.py's dtype (default: float32 on CPU, the config's on CUDA)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--micro_batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--malloc_mmap_threshold", type=int, default=131072,
                        help="CPU: glibc's MALLOC_MMAP_THRESHOLD_ in the runs (0: none set: train.py's 1 MiB)")
    parser.add_argument("--work", default="/tmp/real_shapes", help="model folders (kept) and runs (removed)")
    parser.add_argument("--lock", default=alternate_shape.LOCK, help="flock file around each big run ('': none)")
    parser.add_argument("--predict", action="store_true", help="only the configs' predicted peaks on an 80 GB GPU")
    args = parser.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    if not shapes or any(s not in CONFIGS for s in shapes):
        parser.error(f"--shapes={args.shapes!r}: each must be one of {list(CONFIGS)}")
    if min(args.steps, args.rollouts, args.max_new_tokens, args.micro_batch, args.threads) < 1:
        parser.error("--steps, --rollouts, --max_new_tokens, --micro_batch and --threads must be >= 1")
    if args.predict:
        table = predict_configs([s for s in shapes if s in ("0.5b", "1.5b", "7b")] if args.shapes != "tiny,wide,0.5b"
                                else ["0.5b", "1.5b", "7b"])
        for row in table:
            print(json.dumps(row))
        return table
    os.makedirs(args.work, exist_ok=True)
    rows = []
    print_header(args.device)
    for shape in shapes:
        rows += run_shape(args, shape)
        print_rows(rows[-3 * args.steps:] if "phase" in rows[-1] else rows[-1:])
    print(json.dumps({"device": args.device, "rows": rows}))
    return rows


if __name__ == "__main__":
    main()
