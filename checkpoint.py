"""Loading policies and writing/reading training checkpoints.

A checkpoint is an ordinary Hugging Face folder (config, weights, tokenizer: `from_pretrained` loads it)
plus `trainer_state.pt` (optimizer, scheduler, step, config) so a stopped run can resume. It is written
to a temporary folder first and then renamed into place, so a crash mid-write never leaves a broken
`ckpt/`: the previous checkpoint stays until the new one is complete.

Weights always come from a local folder: no model hub is assumed (HF_HUB_OFFLINE is set here).
"""
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

TRAINER_STATE = "trainer_state.pt"


def load_policy(path, dtype=torch.float32):
    """(model, tokenizer) from a local HF folder, with clear errors for what usually goes wrong."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not path or not os.path.isdir(path):
        raise ValueError(f"model path {path!r} is not a local folder; weights must be on disk (no model hub "
                         "access is assumed): download them elsewhere and pass --model=/path/to/folder")
    if not os.path.exists(os.path.join(path, "config.json")):
        raise ValueError(f"{path!r} has no config.json: not a Hugging Face model folder")
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # a corrupt or foreign folder: say which, not a deep traceback
        raise ValueError(f"could not read the model config/tokenizer in {path!r}: {error}") from error
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except ValueError as error:
        raise ValueError(f"{path!r} (model_type {config.model_type!r}) is not a causal LM that "
                         f"AutoModelForCausalLM can load: {error}") from error
    except Exception as error:
        raise ValueError(f"could not load the weights in {path!r} (unreadable or incomplete checkpoint?): "
                         f"{error}") from error
    if tokenizer.pad_token_id is None:  # many causal LMs ship without a pad token; eos serves (masks use positions)
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def save_checkpoint(path, model, tokenizer, trainer_state):
    """Write model + tokenizer (HF format) + trainer_state atomically to the folder `path`."""
    tmp, old = path + ".tmp", path + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, os.path.join(tmp, TRAINER_STATE))
    if os.path.exists(path):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


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
