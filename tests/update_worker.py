"""loss.update_policy on a 2-layer micro Qwen2, alone or sharded by FSDP2 over torchrun's processes (run by
tests/test_loss.py::test_update_policy_over_two_processes_equals_one_process).

    python tests/update_worker.py OUT.pt                                # one process, the whole batch
    torchrun --nproc_per_node=2 tests/update_worker.py OUT.pt --shard   # 2 processes (gloo), fully_shard
    torchrun --nproc_per_node=2 tests/update_worker.py OUT.pt           # 2 processes, DDP (accelerator.prepare)

Every process builds the same model and samples the same rollout (same seeds), then takes its share of each
mini-batch's prompts, as train.py does; 3 RL steps of 2 mini-batches each, with fixed advantages in which one
process's share of a mini-batch has no gradient row (so it runs padding rows). The full weights go to OUT.pt.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accelerate import Accelerator  # noqa: E402
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from conftest import make_micro_tokenizer  # noqa: E402
from loss import update_policy  # noqa: E402
from rollout import concat_rollouts, generate_rollouts  # noqa: E402

N_PROMPTS, N_ROLLOUTS, MINI_BATCH = 4, 4, 2  # prompts per step, rollouts per prompt, prompts per mini-batch
PROMPTS = ["S.E\n>", "**.*\nS..E\n>", ".\n>", "S*\n.E\n>"]


def main(out_path, shard):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    n_processes, rank = accelerator.num_processes, accelerator.process_index
    tokenizer = make_micro_tokenizer()
    policy = Qwen2ForCausalLM(model_config(tokenizer))
    n_minis, local_mini = N_PROMPTS // MINI_BATCH, MINI_BATCH // n_processes
    share = torch.arange(N_PROMPTS).view(n_minis, n_processes, local_mini)[:, rank].flatten()
    # rewards (P, N): prompt 1 (mini-batch 0, process 1's share when sharded) has no gradient; prompt 3 neither
    advantages = torch.tensor([[1.0, -1.0, 0.5, -0.5], [0.0] * 4, [-0.3, 0.3, 0.9, -0.9], [0.0] * 4])
    if shard:
        from torch.distributed.fsdp import fully_shard

        for layer in policy.model.layers:
            fully_shard(layer)
        fully_shard(policy)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    for param in policy.parameters():
        param.grad = torch.zeros_like(param)
    if not shard:  # DDP when launched with several processes, else the model itself
        policy, optimizer = accelerator.prepare(policy, optimizer)
    for step in range(3):
        policy.eval()
        torch.manual_seed(100 + step)  # every process samples the whole batch alike, then keeps its share
        with torch.no_grad():
            whole = generate_rollouts(accelerator.unwrap_model(policy), tokenizer, PROMPTS, N_ROLLOUTS, 6, sampler="generate")
        rows = torch.cat([torch.arange(p * N_ROLLOUTS, (p + 1) * N_ROLLOUTS) for p in share.tolist()])
        rollout = concat_rollouts([select(whole, rows)], tokenizer.pad_token_id)
        tokens = whole.response_mask.sum(-1).view(N_PROMPTS, N_ROLLOUTS)  # (P, N)
        trained = advantages != 0
        stats = update_policy(policy, optimizer, rollout, advantages[share].flatten(),
                              mini_tokens=tokens.view(n_minis, -1).sum(-1),
                              mini_rows=trained.view(n_minis, n_processes, -1).sum(-1).amax(-1),
                              accelerator=accelerator, micro_batch=3, sharded=shard)
        assert stats["grad_norm"] > 0, stats
    if shard:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        weights = accelerator.unwrap_model(policy).state_dict()
    if accelerator.is_main_process:
        torch.save({"weights": weights, "stats": stats}, out_path)
    accelerator.wait_for_everyone()


def model_config(tokenizer):
    return Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2,
                       tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def select(rollout, rows):
    """The rows `rows` of a Rollout (every per-row field indexed, the rest kept)."""
    import dataclasses

    fields = {}
    for field in dataclasses.fields(rollout):
        value = getattr(rollout, field.name)
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rollout.input_ids.shape[0]:
            value = value[rows]
        elif isinstance(value, list) and len(value) == rollout.input_ids.shape[0]:
            value = [value[i] for i in rows.tolist()]
        fields[field.name] = value
    return type(rollout)(**fields)


if __name__ == "__main__":
    main(sys.argv[1], "--shard" in sys.argv[2:])
