"""Shared test fixtures: a micro char-level tokenizer and a micro Qwen2ForCausalLM (no hub access).

The tokenizer has the special tokens the project uses (`<pad>`, `<eos>`, `<bos>`) and also makes
`<answer>` / `</answer>` special tokens, so tests can check that decoding keeps them.
"""
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

# colleagues share the 2 cores. torch's default follows OMP_NUM_THREADS, so OMP_NUM_THREADS=1 (.ci/run's second
# pass, which checks that no test depends on one reduction order) gives 1 thread here.
torch.set_num_threads(min(2, torch.get_num_threads()))

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<answer>", "</answer>"]
CHARS = list("*.SE\n>UDLR abc")


def make_micro_tokenizer(pad_is_eos=False):
    """Char-level PreTrainedTokenizerFast over CHARS (one token per character); pads on the left."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
        pad_token="<eos>" if pad_is_eos else "<pad>",
        additional_special_tokens=["<answer>", "</answer>"], padding_side="left")
    return tokenizer


def make_micro_model(tokenizer, seed=0, initializer_range=0.2):
    """1-layer Qwen2 with hidden size 32. A large init makes attention (and so positions) matter."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        initializer_range=initializer_range, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    return Qwen2ForCausalLM(config).eval()


@pytest.fixture(scope="session")
def micro_tokenizer():
    return make_micro_tokenizer()


@pytest.fixture(scope="session")
def micro_model(micro_tokenizer):
    return make_micro_model(micro_tokenizer)
