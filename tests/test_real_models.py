"""The real-model path on CPU, offline: a small random Qwen2 with Qwen2.5-Instruct's real tokenizer, chat template,
end tokens and 151,936-row vocabulary (conftest's qwen_model_dir), or, where the tokenizer does not matter and
time does, a micro one with a byte-level BPE tokenizer in ChatML (conftest's chat_model_dir); load_policy's
errors, bf16 weights with stochastic rounding, and data parallel (2 processes, gloo) against 1 process."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertModel

from conftest import build_bpe_tokenizer
from test_shapes import SYSTEM
from evaluate import score_items, summarize
from tasks import MazeTask
from mazes import format_prompt, make_mazes
from infra.checkpoint import load_policy
from infra.optim import StochasticRoundingAdamW
from rollout import chat_prompt, concat_rollouts, generate_rollouts
from scoring import sequence_logprobs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--train_sizes=(5,)", "--n_train=40", "--test_sizes=(5,)", "--n_test=6", "--n_rollouts=4", "--k=2",
        "--max_new_tokens=12", "--eval_samples=4", "--eval_k=2", "--eval_every=1000", "--curve_samples=0", "--show_progress=False",
        "--threads=1", "--device=cpu"]
# oneDNN's AMX bf16 kernels die with "Illegal instruction" on some VMs that report AMX; cap the ISA
ENV = {"ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16"),
       # a deprecated API called by our code is a bug, as in pytest.ini (pytest's filters miss a subprocess)
       "PYTHONWARNINGS": "error::FutureWarning,error::DeprecationWarning,error::PendingDeprecationWarning"}


def run(scripts, command, check=True):
    """`python *command` in the repository (conftest's scripts: without paying the imports again)."""
    result = scripts.run(command, cwd=ROOT, env=ENV, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def accelerate_launch(scripts, n_processes, *args, check=True):
    # `--cpu --num_processes 2` would start ONE process (accelerate's simple launcher); --multi_gpu starts
    # torchrun, which on a machine without GPUs gives gloo CPU processes (train.py --device=cpu)
    # through this interpreter, so the tests need no venv on PATH (`.venv/bin/python -m pytest` works)
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n_processes),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return run(scripts, [*launch, "train.py", *args], check=check)


def read_metrics(out_dir):
    return [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]


def params_of(path):
    model, _ = load_policy(path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_real_tokenizer_round_trips_and_wraps_prompts(qwen_model_dir):
    model, tokenizer = load_policy(qwen_model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM" and type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.get_output_embeddings().weight.shape[0] == 151936 > len(tokenizer)  # padded rows, as in Qwen2.5
    maze = make_mazes((7,), {7: 1}, (7,), 1, seed=3)["test"]["maze"][0]
    text = format_prompt(maze, "paper")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text and len(ids) < len(text) / 2  # lossless, and really BPE-merged
    prompt = chat_prompt(tokenizer, text)  # Qwen2.5-Instruct's template: its default system turn, then the user's
    assert prompt == f"{SYSTEM}<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    markers = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert markers == [151644, 151645] and prompt_ids.count(markers[0]) == 3 and prompt_ids.count(markers[1]) == 2


@pytest.mark.parametrize("dtype", ["bf16-mixed", "bfloat16"])
def test_train_through_the_chat_template(scripts, tmp_path, chat_model_dir, dtype):
    out = str(tmp_path / "run")
    result = run(scripts, ["train.py", *FAST, f"--model={chat_model_dir}", f"--out_dir={out}",
                  "--prompt_template=paper", "--max_steps=2", "--prompt_batch=4", "--mini_batch=2",
                  "--rollout_batch=1", "--micro_batch=3", f"--dtype={dtype}", "--learning_rate=1e-3",
                  "--lr_warmup_steps=1"])
    steps = [r for r in read_metrics(out) if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["generated_tokens"] > 0 for r in steps)
    assert f"1 process(es) on cpu, {dtype}" in result.stdout
    model, tokenizer = load_policy(os.path.join(out, "ckpt"))  # the checkpoint keeps the chat template
    assert chat_prompt(tokenizer, "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    saved = load_file(os.path.join(out, "ckpt", "model.safetensors"))
    assert {tensor.dtype for tensor in saved.values()} == {torch.bfloat16 if dtype == "bfloat16" else torch.float32}
    start = params_of(chat_model_dir)
    assert steps[0]["trained_tokens"] > 0  # so the weights moved, bf16 ones too (stochastic rounding)
    weights_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    assert any(not torch.equal(p, start[n].to(weights_dtype).float()) for n, p in model.named_parameters())


def test_train_at_the_real_vocabulary(scripts, tmp_path, qwen_model_dir):
    """train.py on the small Qwen2.5-Instruct folder (float32: bf16 backward through a 151,936-row head is ~8x
    slower on the CPU): the real chat template, end tokens and vocabulary width. A random model's rewards are all
    0, so noise_rewards (half of them flipped to 1) gives the update rows to train."""
    out = str(tmp_path / "run")
    run(scripts, ["train.py", *FAST, f"--model={qwen_model_dir}", f"--out_dir={out}", "--prompt_template=paper",
                  "--max_steps=1", "--prompt_batch=2", "--mini_batch=2", "--max_new_tokens=6", "--n_test=2",
                  "--eval_samples=2", "--learning_rate=1e-3",
                  "--lr_warmup_steps=1", "--advantage=noise_rewards", '--advantage_options={"noise": 0.5}'])
    step = [r for r in read_metrics(out) if "reward" in r][0]
    assert step["trained_tokens"] > 0 and 0 < step["generated_tokens"] <= 2 * 4 * 6
    assert step["entropy"] > 11  # a random policy over ~152k tokens: ln(151,936) = 11.93 nats
    model, tokenizer = load_policy(os.path.join(out, "ckpt"))
    assert chat_prompt(tokenizer, "hi") == f"{SYSTEM}<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert model.generation_config.eos_token_id == [151645, 151643]  # the checkpoint keeps both end tokens
    start, trained = params_of(qwen_model_dir), dict(model.named_parameters())
    assert not torch.equal(trained["model.embed_tokens.weight"], start["model.embed_tokens.weight"])


@pytest.mark.parametrize("args,message", [
    (["--dtype=fp8"], "dtype='fp8' must be auto, float32, bf16-mixed or bfloat16"),
    (["--rollout_batch=-1"], "rollout_batch=-1 must be >= 0"),
    (["--model=/models/Qwen2.5-7B-Instruct"], "weights must be on local disk"),
])
def test_bad_real_model_config_is_a_clear_error(scripts, tmp_path, args, message):
    result = run(scripts, ["train.py", *FAST, f"--out_dir={tmp_path / 'bad'}", *args], check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_load_policy_errors(tmp_path, chat_model_dir):
    with pytest.raises(ValueError, match="not a local folder; weights must be on disk"):
        load_policy(str(tmp_path / "Qwen" / "Qwen2.5-7B-Instruct"))
    tokenizer = build_bpe_tokenizer()
    encoder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    with pytest.raises(ValueError, match="BertModel .* not a causal decoder-only LM"):
        load_policy(str(encoder))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in os.listdir(chat_model_dir):
        (corrupt / name).write_bytes(open(os.path.join(chat_model_dir, name), "rb").read())
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="could not load the weights"):
        load_policy(str(corrupt))
    os.remove(corrupt / "model.safetensors")
    with pytest.raises(ValueError, match="could not load the weights"):
        load_policy(str(corrupt))
    # a checkpoint with a tensor missing: transformers would initialise it randomly and only warn
    weights = load_file(os.path.join(chat_model_dir, "model.safetensors"))
    weights.pop("model.norm.weight")
    save_file(weights, str(corrupt / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lack 1 tensor"):
        load_policy(str(corrupt))


def test_bf16_stochastic_rounding_adamw_keeps_small_updates():
    """At lr=1e-6, plain AdamW on bf16 weights rounds almost every update away; stochastic rounding
    keeps the float32 trajectory in expectation. On float32 weights it is torch's AdamW."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(50_000, generator=generator) * 0.02  # LLM-like weight scale
    grads = [torch.randn(50_000, generator=generator) for _ in range(20)]

    def train(optimizer_class, dtype, **options):
        param = torch.nn.Parameter(start.to(dtype, copy=True))
        optimizer = optimizer_class([param], lr=1e-6, weight_decay=0.1, **options)
        for grad in grads:
            param.grad = grad.to(dtype)
            optimizer.step()
        return param.detach().float() - start.to(dtype).float()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small elementwise ops: 1 thread is faster, and immune to a busy machine
    try:
        exact = train(torch.optim.AdamW, torch.float32)
        # two implementations of one update: they may round a weight differently. A float32 weight of ~0.02-0.09
        # has an ulp of 2e-9-7e-9, so the moved distance (~2e-5) is known to a few ulps after 20 steps: atol 3e-8
        # (0.15% of it), while a wrong term of the update (lr, bias correction, eps) changes it by percents
        torch.testing.assert_close(train(StochasticRoundingAdamW, torch.float32), exact, rtol=1e-5, atol=3e-8)
        drift = lambda moved: float((moved * exact.sign()).mean() / exact.abs().mean())  # noqa: E731
        assert drift(train(torch.optim.AdamW, torch.bfloat16)) < 0.1  # plain bf16: the updates are lost
        assert 0.95 < drift(train(StochasticRoundingAdamW, torch.bfloat16)) < 1.05
        again = train(StochasticRoundingAdamW, torch.bfloat16)  # the rounding noise is seeded, not global
        # exact: the same elementwise computation twice in one process (no reduction whose order could vary)
        assert torch.equal(again, train(StochasticRoundingAdamW, torch.bfloat16))
    finally:
        torch.set_num_threads(threads)


def test_data_parallel_equals_one_process(scripts, tmp_path, chat_model_dir):
    """2 processes (gloo), micro-batches of 3 rows and gradient checkpointing give the parameters of 1
    process with whole mini-batches per backward: the same rollouts (sampling is seeded per chunk of
    rollout_batch prompts), the same advantages and token-level loss over the global mini-batch."""
    common = [*FAST, f"--model={chat_model_dir}", "--prompt_template=paper", "--prompt_batch=8", "--mini_batch=4",
              "--rollout_batch=2", "--max_steps=2", "--learning_rate=1e-3", "--lr_warmup_steps=1",
              "--eval_every=2", "--checkpoint_every=2"]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    # the 1-process run beside the launch (one thread each: it would leave a core idle alone); the same runs
    one_process = scripts.submit(["train.py", *common, f"--out_dir={one}", "--micro_batch=16"], cwd=ROOT, env=ENV)
    accelerate_launch(scripts, 2, *common, f"--out_dir={two}", "--micro_batch=3", "--gradient_checkpointing=True")
    result = scripts.wait(one_process)
    assert result.returncode == 0, f"train.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    start, a, b = params_of(chat_model_dir), params_of(os.path.join(one, "ckpt")), params_of(os.path.join(two, "ckpt"))
    assert max(float((a[name] - start[name]).abs().max()) for name in a) > 1e-3  # it trained, 100x the tolerance
    for name in a:  # float noise only (summation order; AdamW amplifies it where a gradient is ~0)
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0, msg=name)
    steps_a = [r for r in read_metrics(one) if "reward" in r]
    steps_b = [r for r in read_metrics(two) if "reward" in r]
    # Exact: the same tokens, so the same rewards and counts (and eta, a function of the rewards, on one machine).
    # Step 1 samples from the same start weights with the same per-chunk seeds: the same tokens on any machine.
    # Step 2 (and the last evaluation) samples from weights that differ by float noise (~1e-7, below): a token
    # could change only if a uniform draw fell within ~1e-7 of a CDF boundary, ~1e-4 over the ~700 draws here.
    for key in ("reward", "pass@2", "zero_advantage_prompts", "eta", "generated_tokens", "trained_tokens"):
        assert [r[key] for r in steps_a] == [r[key] for r in steps_b], key  # the same global batch
    # float32 means and norms summed in another order (micro-batches of 3 vs 16 rows, 2 processes): ~1e-6
    # relative; 1e-4 leaves room for AdamW's amplification at step 2, far below a real difference (a wrong
    # token count or a missing micro-batch changes them by percents)
    for key in ("entropy", "pg_loss", "grad_norm", "ratio_mean", "approx_kl"):  # ratio_mean: over trained tokens
        assert [r[key] for r in steps_a] == pytest.approx([r[key] for r in steps_b], rel=1e-4, abs=1e-7), key
    # at step 1 one prompt of 8 has a non-zero advantage: the process holding it trains its rows, the other runs
    # as many rows of advantage 0, masked out (loss.update_policy), so both run the same passes and neither waits
    assert steps_a[0]["zero_advantage_prompts"] == 7 / 8 and steps_a[0]["trained_tokens"] > 0
    evals_a = [r["eval"] for r in read_metrics(one) if "eval" in r]
    evals_b = [r["eval"] for r in read_metrics(two) if "eval" in r]  # sharded, then gathered
    # per_group holds pass@k, curves and per-maze correct counts: functions of the sampled tokens only, exact as above
    assert [e["per_group"] for e in evals_a] == [e["per_group"] for e in evals_b] and len(evals_a) == 2


def test_data_parallel_batch_must_divide(scripts, tmp_path, chat_model_dir):
    result = accelerate_launch(scripts, 2, *FAST, f"--model={chat_model_dir}", f"--out_dir={tmp_path / 'bad'}",
                               "--prompt_batch=6", "--mini_batch=3", check=False)
    assert result.returncode != 0
    assert result.stderr.count("must be multiples of the number of processes (2)") == 1  # said once, by rank 0
    assert not os.path.exists(tmp_path / "bad" / "metrics.jsonl")


# the building blocks of the data-parallel path, in process (fast)

def test_chunked_rollouts_concatenate_exactly(micro_model, micro_tokenizer):
    prompts = ["S.E\n>", "**.*\nS..E\n>", ".\n>"]
    torch.manual_seed(0)
    parts = [generate_rollouts(micro_model, micro_tokenizer, prompts[:2], 2, 10),
             generate_rollouts(micro_model, micro_tokenizer, prompts[2:], 2, 6)]
    joined = concat_rollouts(parts, micro_tokenizer.pad_token_id)
    assert joined.input_ids.shape[0] == 6 and joined.texts == parts[0].texts + parts[1].texts
    assert joined.prompt_length == max(p.prompt_length for p in parts)
    # the re-padded rows score as they were sampled: padding is masked, positions come from the mask
    rescored = sequence_logprobs(micro_model, joined.input_ids, joined.attention_mask, joined.prompt_length)
    mask = joined.response_mask
    torch.testing.assert_close(rescored * mask, joined.logprobs * mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(joined.response_mask.sum(-1), joined.response_lengths.float())


def test_sharded_evaluation_equals_unsharded(micro_model, micro_tokenizer):
    task = MazeTask((5,), {5: 1}, (5,), 5, seed=0)
    mazes = task.make_splits()["test"]
    options = dict(task=task, template="compact", n_samples=4, ks=(1, 2), max_new_tokens=8, prompts_per_batch=2, seed=3,
                   show_progress=False)
    whole = score_items(micro_model, micro_tokenizer, mazes, **options)
    shards = [score_items(micro_model, micro_tokenizer, mazes, shard=(i, 2), **options) for i in (1, 0)]
    # exact on any machine: each batch of prompts is sampled and scored by the same computation (same rows, same
    # seed) whichever shard does it, and summarize sorts the records by index before it sums anything
    assert sorted(shards[0] + shards[1], key=lambda r: r["index"]) == whole
    assert summarize(shards[0] + shards[1], 4, 1.0, 0.95) == summarize(whole, 4, 1.0, 0.95)
