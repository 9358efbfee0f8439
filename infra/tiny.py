"""The tiny offline default model: a char-level tokenizer, a small random Qwen2 and its warm start.

No model hub and no GPU needed. `build_tokenizer` makes a character-level tokenizer with the
`tokenizers` library (one token per character of the task, `<answer>`/`</answer>` one token each),
`build_model` a randomly initialised ~1M-parameter `Qwen2ForCausalLM`, and `warm_start` teaches it the
answer format by supervised fine-tuning on (prompt, reference answer) examples that the caller makes from
its task (train.py: the compact prompts and answers of the train split), so that RL starts from a pass@1 well
above zero but far from one. `load_or_train_tiny` caches the warm-started model in Hugging Face format.

The default maze warm start is shipped, not trained: assets/tiny-maze/ (4 MB) is the HF folder that
`load_or_train_tiny` writes for train.py's default settings. When a call asks for exactly those settings (the
"settings" of its warm_start.json, which holds a hash of the examples) the folder is copied into place instead
of trained; any other setting, or `retrain=True`, trains. Shipped rather than trained: the supervised steps
take minutes on 2 cores, and float rounding differs between machines and thread counts, so a start policy
trained here is never quite the same twice; the shipped one is the same on every machine, as a base model is.

transformers 5 gotcha: `AutoTokenizer.from_pretrained` on a folder whose config.json says model_type
"qwen2" ignores `tokenizer_class` and builds `Qwen2Tokenizer` (byte-level BPE: newlines, spaces and
unknown characters silently vanish). Only an `auto_map` entry in tokenizer_config.json skips that
override; then the declared class (`TokenizersBackend`, the v5 PreTrainedTokenizerFast) loads our
tokenizer.json as it is. So do not pass trust_remote_code=True for this folder: it would try to
import the auto_map entry as remote code and fail.

    python train.py --max_steps=0 --eval_every=0   # copy (or train) the default warm start into out/tiny-warmstart
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

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
ANSWER_TAGS = ["<answer>", "</answer>"]
CHARS = "*.SEUDLR\n> "  # the default task's (the maze's) cells, moves, row separator, the prompt's '>' marker, space
AUTO_MAP = {"AutoTokenizer": [None, "PreTrainedTokenizerFast"]}  # see the module docstring
SETTINGS_FILE = "warm_start.json"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: infra/'s parent
SHIPPED = os.path.join(ROOT, "assets", "tiny-maze")  # the default warm start
RECIPE_VERSION = 2  # bump when warm_start changes, so that cached models are retrained


def build_tokenizer(chars=CHARS):
    """Character-level `PreTrainedTokenizerFast` over `chars` (default: the maze's; `task_chars` for any
    other task); unknown characters become `<unk>`, decode is exact."""
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS.values(), *ANSWER_TAGS, *dict.fromkeys(chars)])}
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


def task_chars(texts):
    """The character vocabulary of a task: every character of its texts (prompts and answers), in order of
    first appearance; the answer tags are tokens of their own, never split into characters."""
    return "".join(dict.fromkeys("".join(text.replace(ANSWER_TAGS[0], "").replace(ANSWER_TAGS[1], "")
                                         for text in texts)))


def sft_example(tokenizer, prompt, answer):
    """(prompt ids, target ids): the prompt text, then `<answer>answer</answer>` and eos."""
    prompt = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target = tokenizer(f"<answer>{answer}</answer>", add_special_tokens=False)["input_ids"]
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


def warm_start(model, tokenizer, examples, steps=1200, batch_size=32, lr=2e-3, seed=0,
               warmup_steps=50, weight_decay=0.01, progress=True):
    """Supervised fine-tuning on (prompt, answer) text pairs; cross-entropy on the answer tokens only.

    AdamW with linear warmup and cosine decay to lr/10, gradient clipping at 1.0. Right padding keeps
    the default position ids 0..n-1 right for every row. Returns the loss of every step.
    """
    if steps <= 0 or batch_size <= 0 or lr <= 0:
        raise ValueError(f"steps, batch_size and lr must be positive, got {steps}, {batch_size}, {lr}")
    if len(examples) == 0:
        raise ValueError("examples is empty: nothing to warm-start on")
    examples = [sft_example(tokenizer, prompt, answer) for prompt, answer in examples]
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


def load_or_train_tiny(out_dir, examples, hidden_size=128, num_layers=4, num_heads=4, steps=1200, batch_size=32,
                       lr=2e-3, seed=0, progress=True, chars=CHARS, name="tiny-warmstart", max_positions=512,
                       retrain=False):
    """Path of the model warm-started on `examples`, out_dir/<name>/ (default tiny-warmstart), trained only when
    needed.

    examples: (prompt, answer) text pairs to imitate, e.g. the compact prompts and reference answers of the RL
    train split (which is disjoint from its test split). The settings (with a hash of the examples) are stored in
    warm_start.json inside the folder and a call with other settings retrains. Another task than the maze: `chars`
    its vocabulary (`task_chars`), `name` a folder of its own and `max_positions` its longest text
    (`load_or_train_task_tiny`). The folder is written to a temporary directory and then renamed into place, so an
    interrupted run never leaves a half-written model behind.

    When the settings equal those of the shipped warm start (`SHIPPED`, train.py's default), that folder is
    copied to out_dir/<name> instead of training (module docstring); retrain=True trains here anyway (a
    folder trained here earlier with the same settings is still reused; a copy of the shipped one is not).
    """
    examples = [(prompt, answer) for prompt, answer in examples]
    digest = hashlib.sha256("\n\n".join(f"{prompt}\n{answer}" for prompt, answer in examples).encode())
    settings = dict(recipe_version=RECIPE_VERSION, examples_sha256=digest.hexdigest(), n_examples=len(examples),
                    hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, steps=steps,
                    batch_size=batch_size, lr=lr, seed=seed)
    if chars != CHARS or max_positions != 512:  # another task's (the maze's settings stay as they were)
        settings.update(chars=chars, max_positions=max_positions)
    path = os.path.join(out_dir, name)
    cached = _read_info(path)
    if cached and cached["settings"] == settings and not (retrain and cached.get("shipped")):
        return path
    shipped = _read_info(SHIPPED)
    if not retrain and shipped and shipped["settings"] == settings:
        _replace_folder(path, lambda tmp: _copy_shipped(tmp, shipped))
        return path

    tokenizer = build_tokenizer(chars)
    model = build_model(tokenizer, hidden_size, num_layers, num_heads, seed, max_positions)
    start = time.time()
    losses = warm_start(model, tokenizer, examples, steps, batch_size, lr, seed, progress=progress)
    info = dict(settings=settings, parameters=model.num_parameters(), train_seconds=round(time.time() - start, 1),
                final_loss=sum(losses[-20:]) / len(losses[-20:]))

    def write(tmp):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, SETTINGS_FILE), "w") as f:
            json.dump(info, f, indent=2)
    _replace_folder(path, write)
    return path


def _read_info(path):
    """The warm_start.json of a model folder, or None if there is none."""
    settings_path = os.path.join(path, SETTINGS_FILE)
    if not os.path.exists(settings_path):
        return None
    with open(settings_path) as f:
        return json.load(f)


def _copy_shipped(tmp, info):
    """The shipped warm start's files into `tmp`, its warm_start.json marked as a copy."""
    for file in os.listdir(SHIPPED):
        if file != SETTINGS_FILE:
            shutil.copy(os.path.join(SHIPPED, file), tmp)
    with open(os.path.join(tmp, SETTINGS_FILE), "w") as f:
        json.dump({**info, "shipped": os.path.join("assets", "tiny-maze")}, f, indent=2)


def _replace_folder(path, write):
    """Write a folder with write(tmp) into a temporary directory beside `path`, then rename it into place,
    so that an interrupted run never leaves a half-written model behind."""
    out_dir, name = os.path.split(os.path.normpath(path))
    os.makedirs(out_dir or ".", exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out_dir or ".", prefix=f".{name}-tmp-")
    write(tmp)
    if os.path.exists(path):  # a directory with files cannot be replaced: move the old one aside first
        old = tempfile.mkdtemp(dir=out_dir or ".", prefix=f".{name}-old-")
        os.replace(path, os.path.join(old, "model"))
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def load_or_train_task_tiny(out_dir, task, splits, max_new_tokens, steps=1200, seed=0, progress=True, retrain=False):
    """The tiny model of any other task (tasks.py): `load_or_train_tiny` on the (compact prompt, reference
    answer) rows of splits["train"], with the task's own vocabulary (`task_chars` of its train texts and
    test prompts), positions for its longest text and a folder of its own, out_dir/tiny-warmstart-<task>/.
    A task without a reference answer for every item cannot be imitated: ValueError."""
    if not all(splits["train"]["answer"]):
        raise ValueError(f"task {task.name!r} has no single reference answer per item, which the tiny model's warm "
                         "start needs (it imitates one answer): use a local HF model, --model=/path/to/model")
    examples = [(task.format_prompt(row, "compact"), row["answer"]) for row in splits["train"]]
    texts = ([prompt + answer for prompt, answer in examples]
             + [task.format_prompt(row, "compact") for row in splits["test"]])
    longest = max(len(text) for text in texts) + len(ANSWER_TAGS) + max_new_tokens
    return load_or_train_tiny(out_dir, examples, steps=steps, seed=seed, progress=progress, chars=task_chars(texts),
                              name="tiny-warmstart-" + task.name.replace(":", "-"),
                              max_positions=max(512, 64 * math.ceil(longest / 64)), retrain=retrain)


def load_tiny(path):
    """(model, tokenizer) from a folder written by load_or_train_tiny; the tokenizer pads on the left."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    return AutoModelForCausalLM.from_pretrained(path).eval(), tokenizer
