"""bench.py's decode-step benchmark runs (on a micro model, in bf16 and fp32); it is never a timed test."""
import pytest
import torch
from conftest import make_micro_model

import bench


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_step_times_reports_every_figure(micro_tokenizer, dtype):
    model = make_micro_model(micro_tokenizer).to(dtype)
    prompt_ids, prompt_mask = bench.bench_prompts(model, None, n_prompts=2, prompt_length=5)
    assert prompt_ids.shape == (2, 5) and int(prompt_ids.max()) < model.config.vocab_size
    times = bench.decode_step_times(model, prompt_ids, prompt_mask, n_rollouts=3, steps=2, repeats=1)
    assert set(times) == {"direct", "hf_forward", "matmul", "linear"} and all(value > 0 for value in times.values())


def test_bad_arguments_are_usage_errors():
    from cli import CommandError

    with pytest.raises(CommandError, match="shapes"):
        bench.main(["--shapes=13b"])
