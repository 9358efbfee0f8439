"""The "vllm" sampler: rollouts drawn by vLLM, the engine TRL, verl and OpenRLHF sample with, colocated in this
process (`--sampler=vllm`; docs/real_models.md). Same contract as rollout.py's samplers: prompt-major rows, the
response up to and including its first end token (vLLM's stop_token_ids are all our end tokens), pad after it,
the logprob of each drawn token at the temperature, before top-p, and the entropy of that distribution.

Where the numbers come from:
  - tokens and logprobs: vLLM, with logprobs_mode="processed_logprobs" (after temperature; vLLM's default,
    "raw_logprobs", is before it). With top_p == 1 that is our contract exactly. With top_p < 1 vLLM's are of the
    nucleus renormalised, so the logprobs are then the trainer's score of the tokens (below) instead;
  - entropies: vLLM returns no full-distribution entropy (the top-k logprobs it returns cannot give it, and
    logprobs over the whole vocabulary are 151,936 Python objects a token), so the drawn responses are scored once
    by the trainer's model (infra/fast_scoring.py, as the update scores them), one forward, no grad.
One engine per process, made on the first call from the model's config with dummy weights, then given the
model's weights through vLLM's own reload path (`sync_weights`, `collective_rpc("reload_weights")`), which also
runs after every update: each parameter in turn, gathered whole under FSDP2 (DTensor.full_tensor()). A sampler
call whose model's weights changed since the last sync (the tensors' in-place version counters) syncs first.
"""
import os
import tempfile
import time
import weakref

import torch

from infra.fast_scoring import fast_logprobs

INSTALL = "--sampler=vllm needs vLLM: pip install -r requirements-vllm.txt (CPU; on a GPU: pip install vllm==0.33.0)"
# the engine's memory: set by `configure` before the first call (train.py's vllm_* config keys)
SETTINGS = {"kv_cache_gib": 1, "gpu_memory_utilization": 0.3, "sleep": False}
SCORE_ROWS = 64  # rows per forward of the entropy scoring (the activations of a no-grad forward of this many rows)
_engine = None  # this process's one `Engine`


def configure(kv_cache_gib=None, gpu_memory_utilization=None, sleep=None):
    """The engine's memory, before it is made: KV-cache GiB on the CPU (VLLM_CPU_KVCACHE_SPACE's setting), the share of
    the GPU's memory vLLM may take (gpu_memory_utilization), and sleep mode between rollouts (GPU: weights to
    host memory and KV cache freed while the trainer updates)."""
    for key, value in dict(kv_cache_gib=kv_cache_gib, gpu_memory_utilization=gpu_memory_utilization,
                           sleep=sleep).items():
        if value is not None:
            SETTINGS[key] = value


def import_vllm():
    try:
        import vllm
    except ImportError as error:
        raise ImportError(INSTALL) from error
    return vllm


def weights_version(model):
    """A number that changes when any parameter is written in place (an optimizer step, load_state_dict)."""
    return sum(getattr(param, "_local_tensor", param)._version for param in model.parameters())


def full_weights(model):
    """(name, tensor) of every parameter, one at a time: a DTensor shard (FSDP2) is gathered whole, so only one
    full parameter is held at once. Every process must iterate it in step (the gathers are collectives). A tied
    weight comes under each of its names: vLLM's reload unties lm_head from the embedding and loads each by name."""
    for name, param in model.named_parameters(remove_duplicate=False):
        yield name, (param.full_tensor() if hasattr(param, "full_tensor") else param).detach()


class Engine:
    """A vLLM `LLM` built for `model`'s architecture and shape, in this process, its weights synced from `model`."""

    def __init__(self, model):
        vllm = import_vllm()
        cuda = next(model.parameters()).device.type == "cuda"
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process, beside the model
        dtype = next(model.parameters()).dtype
        dtype = torch.bfloat16 if cuda and dtype == torch.float32 else dtype  # bf16-mixed computes in bf16
        self.folder = tempfile.TemporaryDirectory(prefix="nanopassk-vllm-")
        config = model.config.__class__.from_dict(model.config.to_dict())
        config.architectures = [type(model).__name__]
        config.save_pretrained(self.folder.name)  # the architecture and shape; the weights come by `sync`
        options = dict(gpu_memory_utilization=SETTINGS["gpu_memory_utilization"],
                       enable_sleep_mode=bool(SETTINGS["sleep"])) if cuda else \
            dict(kv_cache_memory_bytes=int(SETTINGS["kv_cache_gib"] * 2 ** 30))  # VLLM_CPU_KVCACHE_SPACE, unset
        if torch.distributed.is_initialized():  # data parallel: each process its own engine (made together)
            options["distributed_executor_backend"] = "external_launcher"
        self.llm = vllm.LLM(model=self.folder.name, skip_tokenizer_init=True, load_format="dummy", dtype=dtype,
                            logprobs_mode="processed_logprobs", generation_config="vllm", enforce_eager=not cuda,
                            max_model_len=config.max_position_embeddings, seed=0, **options)
        self.shape = shape_of(model)
        self.sleep, self.asleep = bool(SETTINGS["sleep"]) and cuda, False
        self.model, self.version = None, None

    def sync(self, model):
        """Load `model`'s weights into the engine (vLLM's reload path); seconds taken."""
        start = time.perf_counter()
        self.wake()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": full_weights(model)})
        self.model, self.version = weakref.ref(model), weights_version(model)
        return time.perf_counter() - start

    def wake(self):
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def rest(self):
        if self.sleep:  # level 1: weights to host memory, KV cache dropped, until the next sync or rollout
            self.llm.sleep(level=1)
            self.asleep = True


def shape_of(model):
    config = model.config.to_dict()
    return type(model).__name__, tuple(sorted((key, str(value)) for key, value in config.items()
                                              if key not in ("transformers_version", "_name_or_path")))


def engine_for(model):
    """This process's engine, made for `model` on first use (or again for a model of another shape), and synced
    with its weights if they changed since the last sync."""
    global _engine
    if _engine is None or _engine.shape != shape_of(model):
        if _engine is not None:  # one engine per process: the old one goes first
            shutdown()
        _engine = Engine(model)
    if _engine.model is None or _engine.model() is not model or _engine.version != weights_version(model):
        _engine.sync(model)
    return _engine


def sync_weights(model):
    """After an update: the engine gets `model`'s weights now (seconds taken; 0.0 if no engine was made yet)."""
    return _engine.sync(model) if _engine is not None else 0.0


def shutdown():
    """Stop this process's engine now (before the process group goes, under data parallel) and free it."""
    global _engine
    if _engine is not None:
        engine, _engine = _engine, None
        engine.llm.llm_engine.engine_core.shutdown()  # the in-process engine core: its distributed state, its memory
        del engine.llm
        engine.folder.cleanup()


def pad(scores, length):
    """(rows, r) -> (rows, length), zeros after column r."""
    return torch.nn.functional.pad(scores, (0, length - scores.shape[1]))


def sample_responses(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
                     temperature=1.0, top_p=1.0, *, attention_positions):
    """rollout.py's sampler contract, drawn by vLLM: response_ids (B, R), pad after a row's first end token, and
    logprobs, entropies (B, R), 0 after it; B = U * n_rollouts, prompt-major. prompt_ids, prompt_mask (U, P)
    left-padded. attention_positions(mask) -> position_ids: rollout.py's, for the scoring of the responses (module
    doc). vLLM's draws are seeded from
    torch's generator, so torch.manual_seed before the call fixes them (not the draws of the other samplers)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    engine = engine_for(model)
    engine.wake()
    seed = int(torch.randint(2 ** 31 - 1, ()))
    prompts = [TokensPrompt(prompt_token_ids=ids[mask.bool()].tolist()) for ids, mask in zip(prompt_ids.cpu(), prompt_mask.cpu())]
    params = [SamplingParams(n=n_rollouts, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                             stop_token_ids=list(eos_token_ids), logprobs=0, seed=seed + i, detokenize=False)
              for i in range(len(prompts))]
    outputs = engine.llm.generate(prompts, params, use_tqdm=False)
    engine.rest()
    completions = [sorted(output.outputs, key=lambda c: c.index) for output in outputs]  # prompt-major
    rows = [completion for group in completions for completion in group]
    length = max(len(row.token_ids) for row in rows)
    response_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    logprobs = torch.zeros(len(rows), length)
    for i, row in enumerate(rows):
        response_ids[i, :len(row.token_ids)] = torch.tensor(row.token_ids)
        logprobs[i, :len(row.token_ids)] = torch.tensor([entry[token].logprob for token, entry in
                                                         zip(row.token_ids, row.logprobs)])
    lengths = torch.tensor([len(row.token_ids) for row in rows])
    response_mask = (torch.arange(length)[None, :] < lengths[:, None])  # vLLM stops at the first end token
    device = prompt_ids.device
    input_ids = torch.cat([prompt_ids.repeat_interleave(n_rollouts, 0), response_ids.to(device)], dim=1)
    attention_mask = torch.cat([prompt_mask.repeat_interleave(n_rollouts, 0), response_mask.to(prompt_mask)], dim=1)
    prompt_index = torch.arange(len(prompts), device=device).repeat_interleave(n_rollouts)
    positions = attention_positions(attention_mask)
    scored = [fast_logprobs(model, input_ids[part], attention_mask[part], positions[part], prompt_ids.shape[1],
                            temperature, with_entropy=True, prompt_index=prompt_index[part],
                            response_lengths=lengths[part.cpu()])  # (rows, longest of them) each
              for part in torch.arange(len(rows), device=device).split(max(n_rollouts, SCORE_ROWS // n_rollouts * n_rollouts))]
    entropies = torch.cat([pad(part[1], length) for part in scored]).float().cpu()
    if top_p < 1:  # vLLM's are of the renormalised nucleus; ours are not truncated (module doc)
        logprobs = torch.cat([pad(part[0], length) for part in scored]).float().cpu()
    return (response_ids.to(device), (logprobs * response_mask).to(device), (entropies * response_mask).to(device))
