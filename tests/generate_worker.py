"""rollout.generate_responses on the micro Qwen2 sharded by FSDP2 over torchrun's processes (gloo), each process with
prompts of its own (run by tests/test_rollout.py::test_generate_sampler_sharded_equals_one_process).

    torchrun --nproc_per_node=2 tests/generate_worker.py OUT_FOLDER

Process 0 samples SHARES[0] (3 left-padded prompts, 16 new tokens), process 1 SHARES[1] (one-token prompts, which
prefill_prompts pads by a column, 5 new tokens), with seeds of their own: they stop after different numbers of
steps, and every forward of one (the prefill, each step) must be run by the other too. Each process writes its
response ids, logprobs and entropies to OUT_FOLDER/RANK.pt.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import make_micro_model, make_micro_tokenizer  # noqa: E402
from rollout import generate_responses  # noqa: E402

SHARES = [(["S.E", "**..S\nE>.*", "a"], 4, 16, 10), (["a", "b"], 3, 5, 11)]  # prompts, rollouts, new tokens, seed


def sample(model, tokenizer, rank):
    """The rows process `rank` samples, sharded or not."""
    prompts, n_rollouts, max_new_tokens, seed = SHARES[rank]
    encoded = tokenizer(prompts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
    torch.manual_seed(seed)
    with torch.no_grad():
        return generate_responses(model, encoded["input_ids"], encoded["attention_mask"], n_rollouts, max_new_tokens,
                                  [tokenizer.eos_token_id], tokenizer.pad_token_id, temperature=1.1, top_p=0.9)


def main(out_folder):
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    tokenizer = make_micro_tokenizer()
    model = make_micro_model(tokenizer)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    response_ids, logprobs, entropies = sample(model, tokenizer, rank)
    torch.save(dict(response_ids=response_ids, logprobs=logprobs, entropies=entropies),
               os.path.join(out_folder, f"{rank}.pt"))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
