"""The tiny offline default model: a char-level tokenizer, a small random Qwen2 and its warm start.

No model hub and no GPU needed. `build_tokenizer` makes a character-level tokenizer with the
`tokenizers` library (one token per maze character and move, `<answer>`/`</answer>` one token each),
`build_model` a randomly initialised ~1M-parameter `Qwen2ForCausalLM`, and `warm_start` teaches it the
answer format by supervised fine-tuning on BFS solutions, so that RL starts from a pass@1 well above
zero but far from one. `load_or_train_tiny` caches the warm-started model in Hugging Face format.

transformers 5 gotcha: `AutoTokenizer.from_pretrained` on a folder whose config.json says model_type
"qwen2" ignores `tokenizer_class` and builds `Qwen2Tokenizer` (byte-level BPE: newlines, spaces and
unknown characters silently vanish). Only an `auto_map` entry in tokenizer_config.json skips that
override; then the declared class (`TokenizersBackend`, the v5 PreTrainedTokenizerFast) loads our
tokenizer.json as it is. So do not pass trust_remote_code=True for this folder: it would try to
import the auto_map entry as remote code and fail.

    python tiny.py [--out_dir=out]   # train (or reuse) the warm start, print pass@1 / pass@8 on held-out mazes
"""
import hashlib
import json
import math
import os
import shutil
import tempfile
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from mazes import format_prompt, make_mazes

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
ANSWER_TAGS = ["<answer>", "</answer>"]
CHARS = "*.SEUDLR\n> "  # maze cells, moves, row separator, the prompt's '>' marker, space
AUTO_MAP = {"AutoTokenizer": [None, "PreTrainedTokenizerFast"]}  # see the module docstring
SETTINGS_FILE = "warm_start.json"
RECIPE_VERSION = 2  # bump when warm_start changes, so that cached models are retrained


def build_tokenizer():
    """Character-level `PreTrainedTokenizerFast`; unknown characters become `<unk>`, decode is exact."""
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS.values(), *ANSWER_TAGS, *CHARS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # every character is a word
    backend.decoder = decoders.Fuse()  # join the tokens with nothing in between
    backend.add_special_tokens(list(SPECIAL_TOKENS.values()))
    backend.add_tokens(ANSWER_TAGS)  # added tokens are matched before splitting: one token per tag
    return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False,
                                   auto_map=AUTO_MAP, **SPECIAL_TOKENS)


def build_model(tokenizer, hidden_size=128, num_layers=4, num_heads=4, seed=0, max_positions=512):
    """A randomly initialised `Qwen2ForCausalLM` (about 1M parameters by default), deterministic from seed."""
    if hidden_size <= 0 or num_layers <= 0 or num_heads <= 0 or hidden_size % num_heads:
        raise ValueError(f"need positive sizes with hidden_size divisible by num_heads, got hidden_size="
                         f"{hidden_size}, num_layers={num_layers}, num_heads={num_heads}")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,  # a 15x15 prompt is 242 tokens, its answer at most ~115
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.nanopassk_tiny = True  # saved in config.json, kept by every checkpoint: train.py's sampler="auto"
    return model


def is_tiny(model):
    """Whether a loaded policy is (a checkpoint of) the tiny model, which train.py samples with the fast loop."""
    return bool(getattr(model.config, "nanopassk_tiny", False))


def sft_example(tokenizer, maze, solution):
    """(prompt ids, target ids): the compact prompt, then `<answer>solution</answer>` and eos."""
    prompt = tokenizer(format_prompt(maze, "compact"), add_special_tokens=False)["input_ids"]
    target = tokenizer(f"<answer>{solution}</answer>", add_special_tokens=False)["input_ids"]
    return prompt, target + [tokenizer.eos_token_id]


def collate(examples, pad_token_id):
    """Right-padded input_ids, attention_mask and labels (-100 everywhere but the target tokens)."""
    length = max(len(prompt) + len(target) for prompt, target in examples)
    input_ids = torch.full((len(examples), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    for row, (prompt, target) in enumerate(examples):
        ids = prompt + target
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
        labels[row, len(prompt):len(ids)] = torch.tensor(target)
    return input_ids, attention_mask, labels


def warm_start(model, tokenizer, train_dataset, steps=1200, batch_size=32, lr=2e-3, seed=0,
               warmup_steps=50, weight_decay=0.01, progress=True):
    """Supervised fine-tuning on (maze, solution) rows; cross-entropy on the answer tokens only.

    AdamW with linear warmup and cosine decay to lr/10, gradient clipping at 1.0. Right padding keeps
    the default position ids 0..n-1 right for every row. Returns the loss of every step.
    """
    if steps <= 0 or batch_size <= 0 or lr <= 0:
        raise ValueError(f"steps, batch_size and lr must be positive, got {steps}, {batch_size}, {lr}")
    if len(train_dataset) == 0:
        raise ValueError("train_dataset is empty")
    examples = [sft_example(tokenizer, row["maze"], row["solution"]) for row in train_dataset]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))

    def lr_factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress_fraction = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    generator = torch.Generator().manual_seed(seed)
    order, losses = [], []
    model.train()
    for _ in (bar := tqdm(range(steps), desc="warm start", disable=not progress)):
        if len(order) < batch_size:  # next epoch(s): a fresh permutation
            order += torch.randperm(len(examples), generator=generator).tolist()
        batch, order = [examples[i] for i in order[:batch_size]], order[batch_size:]
        input_ids, attention_mask, labels = (t.to(model.device) for t in collate(batch, tokenizer.pad_token_id))
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def default_counts(sizes, small, large):
    """Mazes per size: `small` for 5x5 (only ~224 distinct layouts exist), `large` for the others."""
    return {size: small if size == 5 else large for size in sizes}


def load_or_train_tiny(out_dir="out", train_mazes=None, train_sizes=(5, 7), n_train=None, test_sizes=(5, 7),
                       n_test=None, maze_seed=0, hidden_size=128, num_layers=4, num_heads=4, steps=1200,
                       batch_size=32, lr=2e-3, seed=0, progress=True):
    """Path of the warm-started tiny model, out_dir/tiny-warmstart/, trained only when needed.

    train_mazes: rows with maze/solution to train on (e.g. the RL train split, which is disjoint from
    its test split). Without it, the train split of make_mazes(train_sizes, n_train, test_sizes,
    n_test, maze_seed) is used, so the first n_test test mazes per size (default 50 5x5, 200 of other
    sizes) stay unseen: evaluate on at most that many test mazes per size of the same maze_seed.
    The settings (with a hash of the mazes) are stored in warm_start.json inside the folder and a
    call with other settings retrains. The folder is written to a temporary directory and then
    renamed into place, so an interrupted run never leaves a half-written model behind.
    """
    if train_mazes is None:
        n_train = default_counts(train_sizes, 150, 10_000) if n_train is None else n_train
        n_test = default_counts(test_sizes, 50, 200) if n_test is None else n_test
        train_mazes = make_mazes(train_sizes, n_train, test_sizes, n_test, maze_seed)["train"]
    mazes_hash = hashlib.sha256("\n\n".join(f"{row['maze']}\n{row['solution']}" for row in train_mazes).encode())
    settings = dict(recipe_version=RECIPE_VERSION, mazes_sha256=mazes_hash.hexdigest(), n_mazes=len(train_mazes),
                    hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, steps=steps,
                    batch_size=batch_size, lr=lr, seed=seed)
    path = os.path.join(out_dir, "tiny-warmstart")
    settings_path = os.path.join(path, SETTINGS_FILE)
    if os.path.exists(settings_path):
        with open(settings_path) as f:
            if json.load(f)["settings"] == settings:
                return path

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size, num_layers, num_heads, seed)
    start = time.time()
    losses = warm_start(model, tokenizer, train_mazes, steps, batch_size, lr, seed, progress=progress)
    info = dict(settings=settings, parameters=model.num_parameters(), train_seconds=round(time.time() - start, 1),
                final_loss=sum(losses[-20:]) / len(losses[-20:]))
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out_dir, prefix=".tiny-warmstart-tmp-")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    with open(os.path.join(tmp, SETTINGS_FILE), "w") as f:
        json.dump(info, f, indent=2)
    if os.path.exists(path):  # a directory with files cannot be replaced: move the old one aside first
        old = tempfile.mkdtemp(dir=out_dir, prefix=".tiny-warmstart-old-")
        os.replace(path, os.path.join(old, "model"))
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def load_tiny(path):
    """(model, tokenizer) from a folder written by load_or_train_tiny; the tokenizer pads on the left."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    return AutoModelForCausalLM.from_pretrained(path).eval(), tokenizer


def main(argv=None):
    """python tiny.py [--out_dir=out]: warm-start (or reuse) the default tiny model, measure it on held-out mazes."""
    import argparse

    from cli import add_debug_option, usage_error
    from evaluate import evaluate, format_table

    parser = argparse.ArgumentParser(description="Warm-start (or reuse) the default tiny model and evaluate it.")
    parser.add_argument("--out_dir", default="out", help="the model goes to OUT_DIR/tiny-warmstart/")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        usage_error(f"--out_dir={args.out_dir!r} is a file, not a folder")

    torch.set_num_threads(min(2, os.cpu_count()))
    start = time.time()
    path = load_or_train_tiny(args.out_dir)
    with open(os.path.join(path, SETTINGS_FILE)) as f:
        info = json.load(f)
    print(f"{path}: {info['parameters']:,} parameters, warm start {info['train_seconds']} s "
          f"(this call {time.time() - start:.0f} s), final loss {info['final_loss']:.3f}")
    model, tokenizer = load_tiny(path)
    test = make_mazes((5, 7), 0, (5, 7), {5: 50, 7: 100}, seed=0)["test"]  # a prefix of the held-out mazes
    result = evaluate(model, tokenizer, test, "compact", n_samples=16, ks=(1, 8), max_new_tokens=64)
    print(format_table({"warm start": result}))


if __name__ == "__main__":
    from cli import run

    run(main)
