"""benchmarks/real_shapes.py's memory model (its counts against the real configs and torch's saved tensors, the
configs' batches against its predictions), its run of train.py on the tiny model, and benchmarks/cuda_all.py's
plan; none is a timed test."""
import json

import pytest
import torch
from transformers import Qwen2ForCausalLM

from benchmarks import cuda_all, real_shapes
from benchmarks.shapes import CONFIGS, SMALL, qwen_config


@pytest.mark.parametrize("name,parameters", [("0.5b", 494_032_768), ("1.5b", 1_543_714_304), ("7b", 7_615_616_512)])
def test_model_shape_counts_the_real_parameters(name, parameters):
    assert real_shapes.model_shape(CONFIGS[name])["parameters"] == parameters


def test_activations_per_token_are_what_a_decoder_layer_saves():
    """The bytes one layer saves for its backward, per token: counted by torch's saved-tensor hooks (storages,
    weights excluded), the difference of two sequence lengths, against `activations_per_token` (+ the final norm)."""
    config = qwen_config("0.5b", **{**SMALL, "hidden_size": 96, "intermediate_size": 288, "num_attention_heads": 6,
                                    "num_hidden_layers": 1}, vocab_size=64, tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def saved_bytes(tokens):
        storages = {}

        def pack(tensor):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in weights:
                storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model.model(input_ids=torch.randint(2, 64, (1, tokens)))
        return sum(storages.values())

    per_token = (saved_bytes(96) - saved_bytes(32)) / 64 / 4  # float32 values
    shape = real_shapes.model_shape(config.to_dict())
    predicted = real_shapes.activations_per_token(shape) + 2 * shape["hidden"]  # one layer + the final norm
    assert per_token == pytest.approx(predicted, rel=0.1)


def test_the_configs_batches_are_the_largest_the_model_fits():
    """config/maze_qwen2.5_*.py take rollout_batch and micro_batch from `--predict`: a config edited without the
    model (or a model changed without the configs) fails here."""
    table = real_shapes.predict_configs(["0.5b", "1.5b", "7b"])
    for row in table:
        assert (row["rollout_batch"], row["micro_batch"]) == (row["largest_rollout_batch"], row["largest_micro_batch"]), row
        assert all(0 < gb <= 80 for gb in row["predicted_gb"].values()), row
    peaks = {row["shape"]: row["predicted_gb"] for row in table}
    assert peaks["0.5b"]["generation"] < peaks["1.5b"]["generation"] < peaks["7b"]["generation"]


def test_a_longer_response_costs_the_update_more_and_checkpointing_less():
    shape = real_shapes.model_shape(CONFIGS["0.5b"])
    work = dict(precision="bf16-mixed", prompt_length=298, response_length=256, prompts=4, n_rollouts=32,
                micro_batch=8, mini_batches=4, gradient_checkpointing=False, sampler="generate", step=2,
                baseline_mib=0.0)
    short, _ = real_shapes.predict_peaks(shape, work)
    long, terms = real_shapes.predict_peaks(shape, dict(work, response_length=1024))
    checkpointed, _ = real_shapes.predict_peaks(shape, dict(work, response_length=1024, gradient_checkpointing=True))
    assert short["update"] < long["update"] and checkpointed["update"] < long["update"]
    assert long["generation"] - short["generation"] == pytest.approx(
        terms["generation kv cache"] * (1 - (298 + 256) / (298 + 1024)), rel=1e-6)  # only the cache grew


def test_vllm_engine_term():
    """--sampler=vllm adds its engine (a copy of the weights in the compute dtype and its KV cache) to the scoring
    and update peaks, and to the update only without vllm_sleep."""
    shape = real_shapes.model_shape(CONFIGS["0.5b"])
    work = dict(precision="bf16-mixed", prompt_length=298, response_length=256, prompts=4, n_rollouts=32,
                micro_batch=8, mini_batches=4, gradient_checkpointing=False, sampler="generate", step=2,
                baseline_mib=0.0)
    plain, _ = real_shapes.predict_peaks(shape, work)
    vllm, terms = real_shapes.predict_peaks(shape, dict(work, sampler="vllm", vllm_kv_cache_gib=4.0))
    asleep, _ = real_shapes.predict_peaks(shape, dict(work, sampler="vllm", vllm_kv_cache_gib=4.0, vllm_sleep=True))
    engine = terms["vllm engine"]
    assert engine == pytest.approx((shape["parameters"] * 2 + 4 * 2 ** 30) / 2 ** 20)
    assert vllm["update"] - plain["update"] == pytest.approx(engine) and asleep["update"] == pytest.approx(plain["update"])
    assert vllm["scoring"] - plain["scoring"] == pytest.approx(engine) and vllm["generation"] > engine


def test_tiny_run_measures_every_phase_and_the_model_predicts_it(tmp_path, capsys):
    rows = real_shapes.main(["--shapes=tiny", "--steps=1", "--max_new_tokens=16", f"--work={tmp_path}", "--lock="])
    assert [(r["step"], r["phase"]) for r in rows] == [(1, "generation"), (1, "scoring"), (1, "update")]
    for row in rows:  # the tiny model is mostly the process's baseline, measured in a fresh process
        assert row["measured_mib"] > 100 and abs(row["error"]) < 0.2, row
    output = capsys.readouterr().out
    assert "| tiny | 1 | update |" in output and json.loads(output.strip().splitlines()[-1])["rows"] == rows


def test_cuda_all_plans_every_benchmark_within_its_budget(capsys):
    commands = cuda_all.main(["--dry_run", "--budget=600"])
    names = [name for name, _, _ in commands]
    assert names == ["head", "update", "real_shapes", "prefill", "trl", "vllm"]
    assert sum(seconds for _, _, seconds in commands) <= 600
    assert all("--device=cuda" in command for _, command, _ in commands)
    assert "real_shapes.py --device=cuda --shapes=tiny,0.5b,1.5b,7b" in capsys.readouterr().out
