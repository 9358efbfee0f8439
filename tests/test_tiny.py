"""Tests of tiny.py: char-level tokenizer, HF save/load round trip, warm start, cache, determinism."""
import os
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from infra import tiny
from mazes import format_prompt, generate_maze, solve_maze

MICRO = dict(hidden_size=32, num_layers=1, num_heads=2)  # a micro model: tests stay fast


def some_mazes(count, seed=0):
    rng = random.Random(seed)
    mazes = [generate_maze(rng.choice((5, 7)), rng) for _ in range(count)]
    return [{"maze": maze, "size": len(maze.split("\n")), "solution": solve_maze(maze)} for maze in mazes]


def examples(rows):
    """(compact prompt, solution) pairs of maze rows: what train.py warm-starts the tiny model on."""
    return [(format_prompt(row["maze"], "compact"), row["solution"]) for row in rows]


def test_tokenizer_is_character_level_and_decodes_exactly():
    tokenizer = tiny.build_tokenizer()
    maze = generate_maze(7, random.Random(1))
    text = format_prompt(maze, "compact") + "<answer>UDLR</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(format_prompt(maze, "compact")) + 4 + 2  # one per character, one per tag
    assert ids.count(tokenizer.convert_tokens_to_ids("\n")) == 7  # 6 row breaks and the one before '>'
    assert tokenizer.convert_tokens_to_ids("<answer>") in ids and tokenizer.convert_tokens_to_ids("</answer>") in ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == text
    assert tokenizer.decode(tokenizer("a b  c")["input_ids"]) == "<unk> <unk>  <unk>"  # spaces kept
    assert tokenizer.unk_token_id not in ids
    assert len({tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}) == 4


def test_unknown_characters_become_unk():
    tokenizer = tiny.build_tokenizer()
    ids = tokenizer("S\tx€😀E", add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    assert ids == [tokenizer.convert_tokens_to_ids("S"), unk, unk, unk, unk, tokenizer.convert_tokens_to_ids("E")]


def test_left_padding():
    tokenizer = tiny.build_tokenizer()
    tokenizer.padding_side = "left"
    batch = tokenizer(["SE", "S..E"], padding=True, return_tensors="pt", add_special_tokens=False)
    assert batch["input_ids"][0, :2].tolist() == [tokenizer.pad_token_id] * 2
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]


def test_build_model_defaults_and_bad_sizes():
    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(tokenizer)
    assert 1_000_000 <= model.num_parameters() <= 5_000_000
    assert model.config.vocab_size == len(tokenizer) and model.config.max_position_embeddings >= 512
    assert model.config.pad_token_id == tokenizer.pad_token_id != model.config.eos_token_id
    with pytest.raises(ValueError, match="divisible"):
        tiny.build_model(tokenizer, hidden_size=30, num_heads=4)


def test_save_load_round_trip_through_auto_classes(tmp_path):
    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(tokenizer, **MICRO).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)  # not Qwen2Tokenizer despite model_type qwen2
    loaded_model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert "Qwen2" not in type(loaded_tokenizer).__name__

    text = generate_maze(9, random.Random(2)) + "\n><answer>UD</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded_tokenizer(text, add_special_tokens=False)["input_ids"] == ids
    assert loaded_tokenizer.decode(ids, skip_special_tokens=False) == text
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    for name in ("pad_token_id", "eos_token_id", "bos_token_id", "unk_token_id"):
        assert getattr(loaded_tokenizer, name) == getattr(tokenizer, name)
    with torch.no_grad():  # exact: bitwise the same weights through the same kernels, in one process
        assert torch.equal(model(torch.tensor([ids])).logits, loaded_model(torch.tensor([ids])).logits)

    resaved = tmp_path / "resaved"  # a checkpoint of a loaded tokenizer must load the same way
    loaded_tokenizer.save_pretrained(resaved)
    loaded_model.save_pretrained(resaved)
    assert AutoTokenizer.from_pretrained(resaved).decode(ids, skip_special_tokens=False) == text


def test_sft_labels_cover_only_the_answer():
    tokenizer = tiny.build_tokenizer()
    rows = some_mazes(3)
    pairs = [tiny.sft_example(tokenizer, prompt, answer) for prompt, answer in examples(rows)]
    input_ids, attention_mask, labels = tiny.collate(pairs, tokenizer.pad_token_id)
    for row, ids, mask, label in zip(rows, input_ids, attention_mask, labels):
        assert tokenizer.decode(ids[mask.bool()], skip_special_tokens=False) == (
            format_prompt(row["maze"], "compact") + f"<answer>{row['solution']}</answer><eos>")
        assert tokenizer.decode(label[label != -100], skip_special_tokens=False) == (
            f"<answer>{row['solution']}</answer><eos>")
        assert (ids[~mask.bool()] == tokenizer.pad_token_id).all()


def test_warm_start_decreases_loss_and_is_deterministic():
    tokenizer = tiny.build_tokenizer()
    rows = examples(some_mazes(32))
    weights = []
    for seed in (0, 0, 1):
        model = tiny.build_model(tokenizer, **MICRO, seed=seed)
        losses = tiny.warm_start(model, tokenizer, rows, steps=30, batch_size=8, lr=3e-3, seed=seed,
                                 warmup_steps=5, progress=False)
        weights.append(model.state_dict())
        assert len(losses) == 30
        assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])  # same seed, process, kernels
    assert not all(torch.equal(weights[0][name], weights[2][name]) for name in weights[0])


def test_warm_start_rejects_bad_input():
    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(tokenizer, **MICRO)
    with pytest.raises(ValueError, match="positive"):
        tiny.warm_start(model, tokenizer, examples(some_mazes(2)), steps=0, progress=False)
    with pytest.raises(ValueError, match="empty"):
        tiny.warm_start(model, tokenizer, [], steps=1, progress=False)


def test_cache_is_reused_and_retrained_when_settings_change(tmp_path, monkeypatch):
    calls = []
    real_warm_start = tiny.warm_start
    monkeypatch.setattr(tiny, "warm_start", lambda *args, **kwargs: calls.append(1) or real_warm_start(*args, **kwargs))
    settings = dict(**MICRO, steps=2, batch_size=4, progress=False)
    rows = examples(some_mazes(8))

    path = tiny.load_or_train_tiny(tmp_path, rows, **settings)
    assert path == os.path.join(tmp_path, "tiny-warmstart") and len(calls) == 1
    assert tiny.load_or_train_tiny(tmp_path, rows, **settings) == path and len(calls) == 1
    tiny.load_or_train_tiny(tmp_path, rows, **{**settings, "lr": 1e-3})
    assert len(calls) == 2
    tiny.load_or_train_tiny(tmp_path, rows[:6], **{**settings, "lr": 1e-3})  # other mazes
    assert len(calls) == 3
    assert sorted(os.listdir(tmp_path)) == ["tiny-warmstart"]  # no temporary folders left behind

    model, tokenizer = tiny.load_tiny(path)
    assert tokenizer.padding_side == "left" and model.config.hidden_size == 32


def test_the_tiny_model_is_recognised_after_a_save(tmp_path, micro_model):
    """train.py's sampler="auto" picks the fast loop for the tiny model and its checkpoints, wherever they lie."""
    from infra.checkpoint import load_policy
    from infra.tiny import build_model, build_tokenizer, is_tiny

    tokenizer = build_tokenizer()
    build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert is_tiny(load_policy(str(tmp_path))[0])
    assert not is_tiny(micro_model)  # any other Qwen2 gets HF generate


@pytest.fixture(scope="module")
def default_train_split():
    """The examples of train.py's default maze train split (5x5 and 7x7, n_train {5: 150, 7: 10000}, 30 test mazes
    per size), as train.py makes them: the task's compact prompt and reference answer of each train row."""
    from tasks import make_task

    task = make_task("maze", train_sizes=(5, 7), n_train={5: 150, 7: 10_000}, test_sizes=(5, 7, 9, 11), n_test=30)
    return [(task.format_prompt(row, "compact"), row["answer"]) for row in task.make_splits()["train"]]


def test_the_shipped_warm_start_loads_with_its_character_tokenizer():
    from infra.tiny import SHIPPED, build_tokenizer, is_tiny, load_tiny

    model, tokenizer = load_tiny(SHIPPED)
    assert is_tiny(model) and model.config.hidden_size == 128 and 1_000_000 <= model.num_parameters() <= 1_100_000
    assert "Qwen2" not in type(tokenizer).__name__  # AutoTokenizer must not swap in the byte-level BPE one
    assert tokenizer.get_vocab() == build_tokenizer().get_vocab()
    text = format_prompt(generate_maze(9, random.Random(3)), "compact") + "<answer>UD LR</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == build_tokenizer()(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=False) == text and tokenizer.unk_token_id not in ids
    assert tokenizer.padding_side == "left"


def test_the_default_settings_copy_the_shipped_warm_start(tmp_path, monkeypatch, default_train_split):
    monkeypatch.setattr(tiny, "warm_start", lambda *args, **kwargs: pytest.fail("trained instead of copying"))
    path = tiny.load_or_train_tiny(tmp_path, default_train_split, steps=1200, seed=0, progress=False)
    assert path == os.path.join(tmp_path, "tiny-warmstart")
    for name in os.listdir(tiny.SHIPPED):
        if name != tiny.SETTINGS_FILE:
            assert (tmp_path / "tiny-warmstart" / name).read_bytes() == open(os.path.join(tiny.SHIPPED, name), "rb").read()
    assert tiny._read_info(path)["settings"] == tiny._read_info(tiny.SHIPPED)["settings"]
    assert sorted(os.listdir(tmp_path)) == ["tiny-warmstart"]  # no temporary folders left behind


def test_the_shipped_settings_are_train_py_defaults():
    """The shipped folder is used only while train.py's defaults ask for it; read them without running train.py."""
    import ast

    source = open(os.path.join(os.path.dirname(os.path.dirname(tiny.__file__)), "train.py")).read()
    values = {target.id: node.value for node in ast.parse(source).body if isinstance(node, ast.Assign)
              for target in node.targets if isinstance(target, ast.Name)}
    names = ("train_sizes", "n_train", "test_sizes", "n_test", "split_seed", "seed", "warmup_sft_steps")
    missing = [name for name in names if values.get(name) is None]
    assert not missing, f"train.py no longer sets {missing}: update this test to its names"
    config = {name: ast.literal_eval(values[name]) for name in names}
    assert config == dict(train_sizes=(5, 7), n_train={5: 150, 7: 10_000}, test_sizes=(5, 7, 9, 11), n_test=30,
                          split_seed=0, seed=0, warmup_sft_steps=tiny._read_info(tiny.SHIPPED)["settings"]["steps"])


def test_other_settings_or_retrain_train_here(tmp_path, monkeypatch, default_train_split):
    calls = []
    real_warm_start = tiny.warm_start
    # whether training happens is what is tested: a micro model, 8 of the rows, 2 steps
    monkeypatch.setattr(tiny, "warm_start", lambda model, tokenizer, rows, *args, **kwargs: calls.append("train") or
                        real_warm_start(model, tokenizer, rows[:8], 2, 4, progress=False))
    path = tiny.load_or_train_tiny(tmp_path / "a", default_train_split, **MICRO, steps=2, progress=False)
    assert calls == ["train"] and tiny._read_info(path)["settings"]["steps"] == 2  # the shipped mazes, other settings

    shipped = dict(steps=1200, seed=0, progress=False)
    monkeypatch.setattr(tiny, "warm_start", lambda *args, **kwargs: calls.append("train") or [0.0])  # no real training
    path = tiny.load_or_train_tiny(tmp_path / "b", default_train_split, **shipped)  # a copy
    assert len(calls) == 1 and tiny._read_info(path)["shipped"]
    path = tiny.load_or_train_tiny(tmp_path / "b", default_train_split, **shipped, retrain=True)  # the copy is replaced
    info = tiny._read_info(path)
    assert len(calls) == 2 and "shipped" not in info and info["settings"] == tiny._read_info(tiny.SHIPPED)["settings"]
    tiny.load_or_train_tiny(tmp_path / "b", default_train_split, **shipped, retrain=True)  # trained here: reused
    tiny.load_or_train_tiny(tmp_path / "b", default_train_split, **shipped)
    assert len(calls) == 2
