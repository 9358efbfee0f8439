"""Tests of loss.py: DAPO's token-level clipped policy loss (clip-higher, no KL by default)."""
import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loss import k3_kl, policy_loss, tis_weights


def lengths_to_mask(lengths, response_len):
    return (torch.arange(response_len)[None, :] < torch.tensor(lengths)[:, None]).float()  # (B, R)


def random_batch(seed, batch=6, response_len=7):
    generator = torch.Generator().manual_seed(seed)
    old_logprobs = -torch.rand(batch, response_len, generator=generator) * 3
    logprobs = (old_logprobs + 0.4 * torch.randn(batch, response_len, generator=generator)).requires_grad_()
    advantages = torch.randn(batch, generator=generator)
    lengths = torch.randint(1, response_len + 1, (batch,), generator=generator).tolist()
    return logprobs, old_logprobs, advantages, lengths_to_mask(lengths, response_len)


def test_ratio_one_is_token_weighted_mean_of_advantages():
    old_logprobs = -torch.rand(3, 5)
    logprobs = old_logprobs.clone().requires_grad_()
    advantages = torch.tensor([1.0, -2.0, 0.5])
    mask = lengths_to_mask([5, 1, 3], 5)
    loss, stats = policy_loss(logprobs, old_logprobs, advantages, mask)
    token_weighted = -(1.0 * 5 - 2.0 * 1 + 0.5 * 3) / 9  # each response weighs by its token count
    assert loss.item() == pytest.approx(token_weighted, abs=1e-6)
    assert loss.item() != pytest.approx(-advantages.mean().item(), abs=1e-3)  # not a per-response mean
    assert stats["clip_fraction"].item() == 0.0
    assert stats["approx_kl"].item() == pytest.approx(0.0, abs=1e-7)
    assert stats["ratio_mean"].item() == pytest.approx(1.0)
    loss.backward()  # d loss / d logprob = -A * mask / n_tokens at ratio 1
    torch.testing.assert_close(logprobs.grad, -advantages[:, None] * mask / 9)


@pytest.mark.parametrize("advantage, clipped_ratios, free_ratios", [
    (1.0, [1.29, 1.5, 3.0], [0.3, 0.79, 1.0, 1.27]),    # A > 0: clipped above 1 + eps_high only
    (-1.0, [0.1, 0.5, 0.79], [0.81, 1.0, 1.29, 3.0]),   # A < 0: clipped below 1 - eps_low only
])
def test_clip_higher(advantage, clipped_ratios, free_ratios):
    ratios = torch.tensor(clipped_ratios + free_ratios)
    old_logprobs = torch.full((1, len(ratios)), -1.0)
    logprobs = (old_logprobs + ratios.log()).requires_grad_()
    mask = torch.ones_like(old_logprobs)
    loss, stats = policy_loss(logprobs, old_logprobs, torch.tensor([advantage]), mask)
    expected = -torch.minimum(ratios * advantage, ratios.clamp(0.8, 1.28) * advantage).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    n_clipped = len(clipped_ratios)
    assert torch.all(logprobs.grad[0, :n_clipped] == 0)  # clipped region: no gradient
    assert torch.all(logprobs.grad[0, n_clipped:] != 0)  # inside: gradient
    assert stats["clip_fraction"].item() == pytest.approx(n_clipped / len(ratios))
    side = "clip_fraction_high" if advantage > 0 else "clip_fraction_low"
    assert stats[side].item() == pytest.approx(n_clipped / len(ratios))


def test_gradient_accumulation_matches_full_batch():
    logprobs, old_logprobs, advantages, mask = random_batch(seed=0)
    full_loss, full_stats = policy_loss(logprobs, old_logprobs, advantages, mask)
    full_loss.backward()
    full_grad = logprobs.grad.clone()
    logprobs.grad = None

    n_tokens = mask.sum()  # the token count of the whole mini-batch
    micro_losses, micro_stats = [], []
    for rows in (slice(0, 2), slice(2, 6)):
        loss, stats = policy_loss(logprobs[rows], old_logprobs[rows], advantages[rows], mask[rows],
                                  n_tokens=n_tokens)
        loss.backward()
        micro_losses.append(loss.item())
        micro_stats.append(stats)
    assert sum(micro_losses) == pytest.approx(full_loss.item(), abs=1e-6)
    torch.testing.assert_close(logprobs.grad, full_grad)
    for key in full_stats:
        assert sum(s[key].item() for s in micro_stats) == pytest.approx(full_stats[key].item(), abs=1e-6)

    # the default divisor (each micro-batch's own count) would give a mean of means instead
    mean_of_means = sum(policy_loss(logprobs[rows], old_logprobs[rows], advantages[rows], mask[rows])[0].item()
                        for rows in (slice(0, 2), slice(2, 6))) / 2
    assert mean_of_means != pytest.approx(full_loss.item(), abs=1e-4)


def test_masked_tokens_do_not_contribute():
    logprobs, old_logprobs, advantages, mask = random_batch(seed=1)
    loss, _ = policy_loss(logprobs, old_logprobs, advantages, mask)
    loss.backward()
    grad = logprobs.grad.clone()
    assert torch.all(grad[mask == 0] == 0)

    garbage = logprobs.detach().masked_fill(mask == 0, 50.0).requires_grad_()
    garbage_old = old_logprobs.masked_fill(mask == 0, -math.inf)
    garbage_loss, _ = policy_loss(garbage, garbage_old, advantages, mask)
    garbage_loss.backward()
    assert garbage_loss.item() == pytest.approx(loss.item(), abs=1e-6)
    torch.testing.assert_close(garbage.grad, grad)


def test_all_padding_gives_zero_loss_not_nan():
    loss, _ = policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3))
    assert loss.item() == 0.0


def test_entropy_bonus_and_kl_penalty():
    logprobs, old_logprobs, advantages, mask = random_batch(seed=2)
    base, stats = policy_loss(logprobs, old_logprobs, advantages, mask)
    assert "entropy" not in stats and "kl_ref" not in stats  # off by default

    entropies = torch.rand_like(old_logprobs).requires_grad_()
    with_entropy, stats = policy_loss(logprobs, old_logprobs, advantages, mask, entropies=entropies,
                                      entropy_coef=0.01)
    mean_entropy = (entropies * mask).sum() / mask.sum()
    assert with_entropy.item() == pytest.approx((base - 0.01 * mean_entropy).item(), abs=1e-6)
    assert stats["loss_entropy"].item() == pytest.approx(mean_entropy.item())
    with_entropy.backward()
    assert torch.all(entropies.grad[mask > 0] < 0)  # minimising the loss raises the entropy

    assert torch.all(k3_kl(old_logprobs, old_logprobs) == 0)
    ref_logprobs = old_logprobs + 0.3 * torch.randn_like(old_logprobs)
    assert torch.all(k3_kl(logprobs.detach(), ref_logprobs) >= 0)
    with_kl, stats = policy_loss(logprobs, old_logprobs, advantages, mask, ref_logprobs=ref_logprobs, kl_coef=0.1)
    assert stats["kl_ref"].item() > 0
    assert with_kl.item() == pytest.approx(base.item() + 0.1 * stats["kl_ref"].item(), abs=1e-6)


def test_truncated_importance_sampling():
    """tis_cap's weights min(pi_old / pi_sampler, cap): all 1 when the sampler's logprobs are the trainer's, and
    then the loss and its gradient are exactly those without them; otherwise each token's objective is scaled."""
    logprobs, old_logprobs, advantages, mask = random_batch(seed=4)
    base, base_stats = policy_loss(logprobs, old_logprobs, advantages, mask)
    (base_grad,) = torch.autograd.grad(base, logprobs)
    agree = tis_weights(old_logprobs, old_logprobs.clone(), cap=2.0)
    assert torch.equal(agree, torch.ones_like(agree))
    weighted, stats = policy_loss(logprobs, old_logprobs, advantages, mask, token_weights=agree)
    (grad,) = torch.autograd.grad(weighted, logprobs)
    assert weighted.item() == base.item() and torch.equal(grad, base_grad)
    assert all(stats[name].item() == base_stats[name].item() for name in base_stats)

    sampler = old_logprobs + torch.tensor([[-1.0, -0.1, 0.0, 0.1, 1.0, 0.0, 0.0]])  # sampler below/above pi_old
    weights = tis_weights(old_logprobs, sampler, cap=2.0)
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 0.1, 0.0, -0.1, -1.0, 0.0, 0.0]).exp().clamp(max=2.0))
    weighted, _ = policy_loss(logprobs, old_logprobs, advantages, mask, token_weights=weights)
    ratio = (logprobs - old_logprobs).exp()
    objective = torch.minimum(ratio * advantages[:, None], ratio.clamp(0.8, 1.28) * advantages[:, None])
    assert weighted.item() == pytest.approx(-((objective * weights * mask).sum() / mask.sum()).item(), abs=1e-6)


def test_bad_input():
    logprobs, old_logprobs, advantages, mask = random_batch(seed=3, batch=2, response_len=4)
    with pytest.raises(ValueError, match="old_logprobs"):
        policy_loss(logprobs, old_logprobs[:, :3], advantages, mask)
    with pytest.raises(ValueError, match="response_mask"):
        policy_loss(logprobs, old_logprobs, advantages, mask[:1])
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logprobs, old_logprobs, advantages[:1], mask)
    with pytest.raises(ValueError, match="2-D"):
        policy_loss(logprobs[0], old_logprobs[0], advantages, mask[0])
    for eps_low in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match="eps_low"):
            policy_loss(logprobs, old_logprobs, advantages, mask, eps_low=eps_low)
    for eps_high in (-0.1, math.inf):
        with pytest.raises(ValueError, match="eps_high"):
            policy_loss(logprobs, old_logprobs, advantages, mask, eps_high=eps_high)
    for n_tokens in (0, -3, torch.tensor(0.0)):
        with pytest.raises(ValueError, match="n_tokens"):
            policy_loss(logprobs, old_logprobs, advantages, mask, n_tokens=n_tokens)
    with pytest.raises(ValueError, match="entropies"):
        policy_loss(logprobs, old_logprobs, advantages, mask, entropy_coef=0.01)
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(logprobs, old_logprobs, advantages, mask, kl_coef=0.01)


def reference_loss(logprobs, old_logprobs, advantages, mask, eps_low, eps_high):
    """A plain python loop over tokens: the definition, written the slow way."""
    total, count = 0.0, 0
    for i in range(len(logprobs)):
        for t in range(len(logprobs[i])):
            if mask[i][t]:
                ratio = math.exp(logprobs[i][t] - old_logprobs[i][t])
                clipped = min(max(ratio, 1 - eps_low), 1 + eps_high)
                total += min(ratio * advantages[i], clipped * advantages[i])
                count += 1
    return -total / max(count, 1)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 6), response_len=st.integers(1, 8),
       eps_low=st.floats(0.0, 0.9), eps_high=st.floats(0.0, 2.0), split=st.integers(0, 6))
def test_property_matches_reference_and_accumulates(seed, batch, response_len, eps_low, eps_high, split):
    logprobs, old_logprobs, advantages, mask = random_batch(seed, batch, response_len)
    loss, _ = policy_loss(logprobs, old_logprobs, advantages, mask, eps_low=eps_low, eps_high=eps_high)
    expected = reference_loss(logprobs.tolist(), old_logprobs.tolist(), advantages.tolist(), mask.tolist(),
                              eps_low, eps_high)
    assert loss.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)

    split = min(split, batch)  # micro-batches [0, split) and [split, batch), either may be empty
    n_tokens = mask.sum()
    parts = [policy_loss(logprobs[rows], old_logprobs[rows], advantages[rows], mask[rows], eps_low=eps_low,
                         eps_high=eps_high, n_tokens=n_tokens)[0] for rows in (slice(0, split), slice(split, batch))]
    assert sum(part.item() for part in parts) == pytest.approx(loss.item(), rel=1e-4, abs=1e-5)


@pytest.fixture(scope="module")
def one_process_update(scripts, tmp_path_factory):
    """tests/update_worker.py in one process: the reference both launches below are compared with (run once)."""
    one = str(tmp_path_factory.mktemp("update") / "one.pt")
    result = scripts.run(["tests/update_worker.py", one], timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return one


@pytest.mark.parametrize("launch", ["ddp", "fsdp2"])
def test_update_policy_over_two_processes_equals_one_process(tmp_path, launch, scripts, one_process_update):
    """update_policy in 2 gloo processes, DDP (accelerator.prepare) or sharded by FSDP2's fully_shard (what
    accelerate's FSDP plugin applies on a GPU node), equals 1 process: the same gradient norm and weights after 3
    steps of 2 mini-batches, one of which gives one process only padding rows (tests/update_worker.py). The
    launcher runs through conftest's scripts; its 2 workers are real interpreters."""
    one, two = one_process_update, str(tmp_path / "two.pt")
    result = scripts.run(["-m", "torch.distributed.run", "--nproc_per_node=2", "tests/update_worker.py", two,
                          *(["--shard"] if launch == "fsdp2" else [])], timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    a, b = torch.load(one), torch.load(two)
    # Adam divides out a gradient's scale, so the weights alone would miss a wrong factor of 2: the norm checks it
    assert b["stats"]["grad_norm"] == pytest.approx(a["stats"]["grad_norm"], rel=1e-4)
    for name in ("pg_loss", "ratio_mean", "clip_fraction"):  # the diagnostics are over the trained tokens only
        assert b["stats"][name] == pytest.approx(a["stats"][name], rel=1e-4, abs=1e-6), name
    start = make_start_weights()
    assert max(float((a["weights"][n] - start[n]).abs().max()) for n in start) > 5e-3  # it trained, 100x below
    for name, weight in a["weights"].items():  # measured 8.5e-6: float32 summation order, amplified by Adam
        torch.testing.assert_close(b["weights"][name], weight, atol=5e-5, rtol=0, msg=name)


def make_start_weights():
    """The worker's initial weights (its seed and config), for the 'it trained' check."""
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import update_worker
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tokenizer = update_worker.make_micro_tokenizer()
    return Qwen2ForCausalLM(update_worker.model_config(tokenizer)).state_dict()
