"""Tests of the "vllm" sampler (infra/vllm_sampler.py): vLLM in this process, against the trainer's scoring.

Marked `vllm` and skipped where vLLM is absent (the main suite's venv); .ci/run runs them in a second venv with
requirements-vllm.txt: python -m pytest -m vllm tests. One engine serves the module (its start costs ~40 s on
2 shared cores): the micro Qwen2 below first, then the small real-vocabulary folder (a second shape: the engine
is made again), then train.py in a subprocess (its own engine).

The tolerance, 2e-5 on a logprob: vLLM and HF run the same float32 model with other kernels (vLLM's CPU
attention, its fused RMSNorm and SiLU-and-mul), so the logits differ in their last bits, about 1e-6 relative;
through a log-softmax that is a few 1e-6 in a logprob (measured 2.4e-6 here). A weight update moves them by
~1e-1 (checked below), four orders above it.
"""
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from conftest import ROOT, make_micro_tokenizer
from rollout import decode_responses, generate_rollouts
from scoring import rollout_logprobs

pytestmark = pytest.mark.vllm
TOLERANCE = 2e-5
PROMPTS = ["S.E\n", "S..\n.*E\n>"]
HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def sampler():
    """infra.vllm_sampler, its engine shut down after the module (skipped without vLLM)."""
    pytest.importorskip("vllm", reason="vLLM is not installed: pip install -r requirements-vllm.txt")
    from infra import vllm_sampler

    yield vllm_sampler
    vllm_sampler.shutdown()


@pytest.fixture(scope="module")
def tokenizer():
    return make_micro_tokenizer()


@pytest.fixture
def model(tokenizer):
    """A random 2-layer Qwen2 over the micro tokenizer, head_dim 32 (vLLM's CPU attention has no head_dim 8, the
    conftest micro model's); a large init, so that weights and positions matter. The same weights every test."""
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         initializer_range=0.2, tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return Qwen2ForCausalLM(config).eval()


def scored(model, rollout):
    """The trainer's (logprobs, entropies) of the rollout's responses, masked like the rollout's."""
    with torch.no_grad():
        logprobs, entropies = rollout_logprobs(model, rollout, torch.arange(len(rollout.texts)), with_entropy=True)
    mask = rollout.response_mask[:, :logprobs.shape[1]]
    return logprobs * mask, entropies * mask


def check_contract(rollout, tokenizer, end_ids, n_prompts, n_rollouts, max_new_tokens):
    """The Rollout contract every sampler keeps (rollout.py): prompt-major rows, each response up to and
    including its first end token (else max_new_tokens long), pad, mask 0 and logprob/entropy 0 after it, texts
    decoded without end and pad tokens."""
    assert rollout.response_ids.shape[0] == n_prompts * n_rollouts and rollout.response_ids.shape[1] <= max_new_tokens
    for ids, mask, length in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist(),
                                 rollout.response_lengths.tolist()):
        ends = [i for i, token in enumerate(ids) if token in end_ids]
        assert length == (ends[0] + 1 if ends else max_new_tokens)
        assert mask == [1.0] * length + [0.0] * (len(ids) - length)
        assert all(token == tokenizer.pad_token_id for token in ids[length:])
    after = rollout.response_mask == 0
    assert (rollout.logprobs[after] == 0).all() and (rollout.entropies[after] == 0).all()
    assert (rollout.logprobs[~after] < 0).all() and (rollout.entropies[~after] > 0).all()
    assert rollout.texts == decode_responses(tokenizer, rollout.response_ids, rollout.response_lengths, end_ids)
    assert torch.equal(rollout.input_ids[:, rollout.prompt_length:], rollout.response_ids)


@pytest.mark.parametrize("temperature, top_p", [(0.7, 1.0), (1.0, 0.8)])
def test_logprobs_equal_scoring_and_contract(sampler, model, tokenizer, temperature, top_p):
    """vLLM's recorded logprobs (after temperature, top_p 1) are the trainer's to float noise; with top_p < 1 they
    are the trainer's score (vLLM's are of the renormalised nucleus); entropies are the trainer's. All the end
    tokens stop a response (here <eos> and </answer>, as Qwen2.5-Instruct lists two), and the contract holds."""
    end = tokenizer.convert_tokens_to_ids("</answer>")
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end]
    torch.manual_seed(0)
    rollout = generate_rollouts(model, tokenizer, PROMPTS, 8, 16, temperature, top_p, sampler="vllm")
    check_contract(rollout, tokenizer, {tokenizer.eos_token_id, end}, len(PROMPTS), 8, 16)
    ends = rollout.response_ids.gather(1, rollout.response_lengths[:, None] - 1)[:, 0]
    assert {tokenizer.eos_token_id, end} <= set(ends.tolist())  # either end token ended some responses
    logprobs, entropies = scored(model, rollout)
    torch.testing.assert_close(rollout.logprobs, logprobs, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(rollout.entropies, entropies, atol=TOLERANCE, rtol=0)
    torch.manual_seed(0)  # vLLM's draws are seeded from torch's generator
    again = generate_rollouts(model, tokenizer, PROMPTS, 8, 16, temperature, top_p, sampler="vllm")
    assert torch.equal(again.response_ids, rollout.response_ids)


def test_samples_the_updated_policy(sampler, model, tokenizer):
    """After the weights change and `sync_weights`, vLLM's logprobs are the new policy's, not the old one's; a
    change without an explicit sync is picked up by the next call (the weights' version counters)."""
    old = copy.deepcopy(model)
    torch.manual_seed(1)
    generate_rollouts(model, tokenizer, PROMPTS, 4, 12, sampler="vllm")  # the engine holds these weights
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    seconds = sampler.sync_weights(model)
    assert 0 < seconds < 10
    torch.manual_seed(2)
    rollout = generate_rollouts(model, tokenizer, PROMPTS, 4, 12, sampler="vllm")
    new_logprobs, _ = scored(model, rollout)
    old_logprobs, _ = scored(old, rollout)
    torch.testing.assert_close(rollout.logprobs, new_logprobs, atol=TOLERANCE, rtol=0)
    assert (rollout.logprobs - old_logprobs).abs().max() > 1000 * TOLERANCE  # the update moved them

    with torch.no_grad():  # an in-place change, no sync: the sampler syncs before it samples
        model.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    torch.manual_seed(3)
    rollout = generate_rollouts(model, tokenizer, PROMPTS, 4, 12, sampler="vllm")
    torch.testing.assert_close(rollout.logprobs, scored(model, rollout)[0], atol=TOLERANCE, rtol=0)


def test_full_weights_are_the_named_parameters(sampler, model):
    """What a sync streams: every named parameter, one at a time, a tied one under each name (FSDP2's DTensors
    gathered whole by full_tensor(), which a single process without a process group cannot show)."""
    named = list(model.named_parameters(remove_duplicate=False))
    streamed = dict(sampler.full_weights(model))
    assert list(streamed) == [name for name, _ in named] and "lm_head.weight" in streamed
    assert all(torch.equal(streamed[name], param) for name, param in named)


def test_real_vocabulary_folder(sampler, qwen_tokenizer, tmp_path):
    """Qwen2.5-0.5B's layout at a small width (benchmarks/shapes.py SMALL: the 151,936-row tied vocabulary, its
    tokenizer and its two end tokens; with 2 heads, as vLLM's CPU attention has no head_dim 16, SMALL's): vLLM's
    logprobs are the trainer's to the tolerance, and the contract holds."""
    from benchmarks.shapes import SMALL, write_model_folder
    from infra.checkpoint import load_policy
    from rollout import chat_prompt, end_token_ids

    small = {**SMALL, "num_attention_heads": 2, "num_key_value_heads": 1}  # head_dim 32
    model, tokenizer = load_policy(write_model_folder(str(tmp_path), "0.5b", torch.float32, tokenizer=qwen_tokenizer,
                                                      **small))
    prompts = [chat_prompt(tokenizer, text) for text in ("Solve the maze.", "Say hello to the world, twice.")]
    torch.manual_seed(0)
    rollout = generate_rollouts(model.eval(), tokenizer, prompts, 4, 12, sampler="vllm")
    check_contract(rollout, tokenizer, set(end_token_ids(model, tokenizer)), 2, 4, 12)
    logprobs, entropies = scored(model, rollout)
    torch.testing.assert_close(rollout.logprobs, logprobs, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(rollout.entropies, entropies, atol=TOLERANCE, rtol=0)


def test_train_and_evaluate_with_vllm(sampler, model, tokenizer, tmp_path):
    """Two train.py steps with --sampler=vllm on the micro model, with the evaluation before and after (it samples
    with vLLM too) and truncated importance sampling on: each step logs its weight sync and the sampler-trainer
    mismatch, which on the CPU in float32 is float noise."""
    sampler.shutdown()  # the subprocess makes its own engine: free this one's memory first
    folder, out = str(tmp_path / "model"), tmp_path / "run"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "train.py", f"--model={folder}", f"--out_dir={out}", "--sampler=vllm", "--max_steps=2",
         "--prompt_template=compact", "--train_sizes=(5,)", "--n_train=40", "--test_sizes=(5,)", "--n_test=2",
         "--prompt_batch=2", "--mini_batch=1", "--n_rollouts=4", "--k=2", "--max_new_tokens=24", "--eval_every=2",
         "--eval_samples=2", "--eval_k=2", "--curve_samples=0", "--tis_cap=2.0", "--vllm_kv_cache_gib=1",
         "--advantage=noise_rewards", "--advantage_options={'noise': 0.5}", "--show_progress=False",
         "--checkpoint_every=100", "--threads=1"],  # noise_rewards: a random model solves nothing; rows to train
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    steps = [record for record in records if "weight_sync_time" in record]
    assert [record["step"] for record in steps] == [1, 2]
    for record in steps:
        assert record["weight_sync_time"] > 0 and record["generated_tokens"] > 0
        assert 0 <= record["sampler_mismatch_mean"] <= record["sampler_mismatch_max"] < 1e-4
    evals = [record for record in records if "eval" in record]
    assert [record["step"] for record in evals] == [0, 2]
    assert 0 < evals[-1]["eval"]["response_length"] <= 24


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed: this checks the message where it is not")
@pytest.mark.parametrize("argv", [["train.py", "--sampler=vllm", "--max_steps=0"],
                                  ["evaluate.py", "assets/tiny-maze", "--sampler=vllm"]])
def test_missing_vllm_says_what_to_install(scripts, argv):
    result = scripts.run(argv)
    assert result.returncode != 0
    assert "pip install -r requirements-vllm.txt" in result.stderr.strip().splitlines()[-1]


def test_data_parallel_two_processes(sampler, model, tokenizer, tmp_path):
    """accelerate's data parallel (2 gloo processes): each process makes its engine at set-up (together: vLLM's
    external launcher joins the process group) and samples its own prompts; the evaluation, where only one process
    has a batch, runs; the run ends cleanly (the engines shut down before the process group)."""
    sampler.shutdown()
    folder, out = str(tmp_path / "model"), tmp_path / "run"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]
    result = subprocess.run(
        [sys.executable, *launch, "train.py", "--device=cpu", f"--model={folder}", f"--out_dir={out}",
         "--sampler=vllm", "--max_steps=2", "--prompt_template=compact", "--train_sizes=(5,)", "--n_train=40",
         "--test_sizes=(5,)", "--n_test=2", "--prompt_batch=2", "--mini_batch=2", "--n_rollouts=4", "--k=2",
         "--max_new_tokens=16", "--eval_every=2", "--eval_samples=2", "--eval_k=2", "--curve_samples=0",
         "--advantage=noise_rewards", "--advantage_options={'noise': 0.5}", "--show_progress=False", "--threads=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not re.search(r"\[rank\d\]: Traceback", result.stderr)  # no process's traceback, at exit included
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [record["step"] for record in records] == [0, 1, 2, 2]
    assert all(record["sampler_mismatch_max"] < 1e-4 for record in records if "weight_sync_time" in record)
