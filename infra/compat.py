"""One keyword across the transformers versions we support: 5.24 renamed the KV-cache argument of a model's
forward and of `generate` from `past_key_values=` to `cache=` (the old name warns from 5.24), and vLLM needs a
transformers older than 5.20 (CPU) or 5.21 (GPU), which knows only `past_key_values=`."""
import transformers
from packaging.version import Version

CACHE_KEYWORD = "cache" if Version(transformers.__version__).release >= (5, 24) else "past_key_values"


def kv_cache(cache):
    """{keyword: cache} for a model's forward or generate, under the installed transformers' name for it."""
    return {CACHE_KEYWORD: cache}


def enable_activation_checkpointing(model):
    """Non-reentrant activation checkpointing: `activation_checkpointing_enable` from 5.24 (where the old name,
    `gradient_checkpointing_enable`, is deprecated), `gradient_checkpointing_enable` before it."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": False})
