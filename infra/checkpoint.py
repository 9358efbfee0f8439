"""Loading policies and writing/reading training checkpoints.

A checkpoint is an ordinary Hugging Face folder (config, weights, tokenizer: `from_pretrained` loads it)
plus `trainer_state.pt` (the optimizer's full state, as torch's distributed-checkpoint state dicts give it
for one process, DDP or FSDP shards alike; scheduler, step, config) so a stopped run can resume, with any
number of processes. The main process writes it to a temporary folder first and then renamed into place, so a crash mid-write never leaves a broken
`ckpt/`: the previous checkpoint stays until the new one is complete.

Weights always come from a local folder: no model hub is assumed (HF_HUB_OFFLINE is set here).
"""
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

TRAINER_STATE = "trainer_state.pt"


def load_policy(path, dtype=torch.float32):
    """(model, tokenizer) from a local HF folder, with clear errors (ValueError) for what usually goes
    wrong: no such folder (weights must be local), no config, an unreadable tokenizer, a model that is
    not a causal decoder LM, unreadable or incomplete weights. `dtype` is the weights' dtype."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not path or not os.path.isdir(path):
        raise ValueError(f"model path {path!r} is not a local folder; weights must be on disk (no model hub "
                         "access is assumed): download the model folder elsewhere, copy it here and pass its path")
    if not os.path.exists(os.path.join(path, "config.json")):
        raise ValueError(f"{path!r} has no config.json: not a Hugging Face model folder")
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # a corrupt or foreign folder: say which, not a deep traceback
        raise ValueError(f"could not read the model config/tokenizer in {path!r}: {error}") from error
    # transformers would load e.g. a saved BertModel / BertForMaskedLM as BertLMHeadModel (bidirectional
    # attention, the head randomly initialised) with only a warning: refuse what is not a decoder LM
    architectures = getattr(config, "architectures", None) or []
    causal = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
    if config.is_encoder_decoder or (architectures and not any(name.endswith(causal) for name in architectures)):
        raise ValueError(f"{path!r} holds {', '.join(architectures) or config.model_type} (model_type "
                         f"{config.model_type!r}), not a causal decoder-only LM: the policy must be one, "
                         "e.g. a *ForCausalLM checkpoint")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, output_loading_info=True)
    except ValueError as error:
        raise ValueError(f"{path!r} (model_type {config.model_type!r}) is not a causal LM that "
                         f"AutoModelForCausalLM can load: {error}") from error
    except Exception as error:
        raise ValueError(f"could not load the weights in {path!r} (a missing, truncated or corrupt weights file, "
                         f"e.g. from an interrupted save or copy?): {error}") from error
    if info["missing_keys"]:  # transformers initialises them randomly and goes on
        missing = sorted(info["missing_keys"])
        raise ValueError(f"the weights in {path!r} lack {len(missing)} tensor(s) of {type(model).__name__} "
                         f"(e.g. {missing[:3]}): not a complete checkpoint of this causal LM")
    if tokenizer.pad_token_id is None:  # many causal LMs ship without a pad token; eos serves (masks use positions)
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def save_checkpoint(path, accelerator, policy, optimizer, tokenizer, trainer_state):
    """Write the policy (HF format), tokenizer and trainer_state (+ the optimizer's full state) atomically to the
    folder `path`. Every process calls it: under FSDP the full weights and optimizer state are gathered from the
    shards (get_state_dict, get_optimizer_state_dict: collectives); the main process writes."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    weights = accelerator.get_state_dict(policy)
    optimizer_state = get_optimizer_state_dict(accelerator.unwrap_model(policy), optimizer,
                                               options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if accelerator.is_main_process:
        tmp, old = path + ".tmp", path + ".old"
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(policy).save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        torch.save({**trainer_state, "optimizer": optimizer_state}, os.path.join(tmp, TRAINER_STATE))
        if os.path.exists(path):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_optimizer_state(policy, optimizer, trainer_state):
    """Restore the optimizer state that save_checkpoint wrote (full; sharded again under FSDP) into `optimizer`
    of the unwrapped `policy`."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    grads = [param.grad for param in policy.parameters()]
    for param in policy.parameters():  # torch initialises a fresh optimizer's state only for parameters without grads
        param.grad = None
    set_optimizer_state_dict(policy, optimizer, trainer_state["optimizer"], options=StateDictOptions(full_state_dict=True))
    for param, grad in zip(policy.parameters(), grads):
        param.grad = grad


def latest_checkpoint(path):
    """`path` if complete, else the `.old` copy a crash between the two renames may have left, else None."""
    for candidate in (path, path + ".old"):
        if os.path.exists(os.path.join(candidate, TRAINER_STATE)):
            return candidate
    return None


def load_trainer_state(path):
    """The trainer state of the checkpoint folder `path`, with a clear error if it cannot be read."""
    try:
        return torch.load(os.path.join(path, TRAINER_STATE), weights_only=False)
    except Exception as error:
        raise ValueError(f"unreadable checkpoint {path!r}: {error}") from error


def load_checkpoint(path):
    """(folder, trainer state) of the latest complete checkpoint at `path`, or (None, None) if there is none;
    ValueError if it cannot be read."""
    folder = latest_checkpoint(path)
    return (folder, load_trainer_state(folder)) if folder else (None, None)
