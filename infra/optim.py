"""AdamW for bf16 weights: the update in float32, stored back into bf16 with stochastic rounding.

Why (config dtype="bfloat16", used for the 7B): bf16 keeps 8 significant bits, so neighbouring bf16
values near a weight w are |w|/256 .. |w|/128 apart. A plain AdamW step moves a weight by about lr
and rounds to the nearest bf16 value; at the paper's lr = 1e-6 that rounds the step away for every
weight with |w| > ~5e-4, i.e. almost all of a trained LLM (typical |w| ~ 1e-2): the policy barely
trains. Stochastic rounding rounds up with probability equal to the remainder, so the stored weight
is the float32 result in expectation (unbiased, at the price of rounding noise that averages out
over steps). The AdamW moments are kept in bf16 too and rounded the same way (the second moment moves
by (1 - beta2) = 0.1% of itself per step: also below bf16's resolution).

Memory: bf16 weights 2 + grads 2 + two moments 4 = 8 bytes per parameter, against 16 for float32
master weights with torch AdamW (see docs/real_models.md). Parameters that are not bf16 get the
exact float32 update, identical to torch.optim.AdamW up to float rounding.

The rounding noise comes from a generator seeded by (seed, parameter index, step), not from the global
RNG: every data-parallel process rounds identically (the replicas stay equal) and a resumed run
continues exactly.
"""
import math

import torch


def stochastic_round_(target, value, generator):
    """target (bf16) <- value (float32) rounded down or up at random, E[target] = value.

    bf16 is the upper half of a float32: add uniform noise to the 16 bits that bf16 drops, then drop
    them; a carry into the kept bits (probability = the dropped fraction) rounds up."""
    noise = torch.randint(0, 1 << 16, value.shape, dtype=torch.int32, device=value.device, generator=generator)
    rounded = (value.view(torch.int32) + noise) & -65536  # -65536 = 0xFFFF0000: keep the bf16 bits
    target.copy_(rounded.view(torch.float32))  # exact: the low 16 bits are zero


class StochasticRoundingAdamW(torch.optim.Optimizer):
    """torch.optim.AdamW's update (decoupled weight decay, bias correction), computed in float32; bf16
    parameters and moments are stored with stochastic rounding (see the module docstring)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, seed=0):
        if not lr >= 0 or not eps >= 0 or not weight_decay >= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad AdamW settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.seed = seed

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("StochasticRoundingAdamW takes no closure")
        index = 0
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                index += 1
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = int(state["step"])
                weight, grad = param.float(), param.grad.float()
                exp_avg = state["exp_avg"].float().lerp_(grad, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].float().mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                weight.mul_(1 - lr * weight_decay)
                denominator = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(eps)
                weight.addcdiv_(exp_avg, denominator, value=-lr / (1 - beta1 ** step))
                generator = torch.Generator(device=param.device).manual_seed(
                    (self.seed * 1_000_003 + index) * 1_000_003 + step)
                for target, value in ((param, weight), (state["exp_avg"], exp_avg), (state["exp_avg_sq"], exp_avg_sq)):
                    if target.dtype == torch.bfloat16:
                        stochastic_round_(target, value, generator)
                    else:
                        target.copy_(value)
