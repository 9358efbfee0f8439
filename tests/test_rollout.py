"""Tests of rollout.py: batched sampling (our fast loop and HF generate) and the logprobs it records."""
import copy
import os
from types import SimpleNamespace

import pytest
import torch
from conftest import make_micro_model, make_micro_tokenizer
from plain_generate import assert_same_samples, plain_generate

from mazes import format_prompt, make_mazes
from rollout import (SAME_DRAWS, SAMPLERS, chat_prompt, decode_responses, end_token_ids, generate_rollouts,
                     response_mask_from_eos)
from scoring import sequence_logprobs
from infra.tiny import build_model, build_tokenizer

PROMPTS = ["S.E", "**..S\nE>.*", "a"]  # different lengths: left padding


def check_response_mask(rollout, eos_id):
    """1 up to and including the first eos, 0 after; all 1 when there is no eos."""
    for ids, mask, length in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist(),
                                 rollout.response_lengths.tolist()):
        expected_length = ids.index(eos_id) + 1 if eos_id in ids else len(ids)
        assert length == expected_length
        assert mask == [1.0] * expected_length + [0.0] * (len(ids) - expected_length)


def test_shapes_and_prompt_major_ordering(micro_model, micro_tokenizer):
    n_rollouts, max_new_tokens = 3, 12
    torch.manual_seed(0)
    rollout = generate_rollouts(micro_model, micro_tokenizer, PROMPTS, n_rollouts, max_new_tokens,
                                temperature=0.9)
    batch, prompt_len = len(PROMPTS) * n_rollouts, rollout.prompt_length
    response_len = rollout.response_ids.shape[1]
    assert 1 <= response_len <= max_new_tokens
    assert rollout.input_ids.shape == rollout.attention_mask.shape == (batch, prompt_len + response_len)
    for tensor in (rollout.response_ids, rollout.response_mask, rollout.logprobs, rollout.entropies):
        assert tensor.shape == (batch, response_len)
    assert rollout.response_mask.dtype == torch.float32
    assert rollout.response_lengths.shape == (batch,) and len(rollout.texts) == batch
    assert rollout.temperature == 0.9 and rollout.n_rollouts == n_rollouts
    torch.testing.assert_close(rollout.response_ids, rollout.input_ids[:, prompt_len:])
    torch.testing.assert_close(rollout.attention_mask[:, prompt_len:].float(), rollout.response_mask)
    torch.testing.assert_close(rollout.response_mask.sum(-1).long(), rollout.response_lengths)
    assert rollout.response_lengths.max().item() == response_len  # generate stops once every row ended
    for row in range(batch):  # row i * n_rollouts + j holds prompt i, left-padded
        prompt_ids = micro_tokenizer(PROMPTS[row // n_rollouts])["input_ids"]
        n_pad = prompt_len - len(prompt_ids)
        assert rollout.input_ids[row, :prompt_len].tolist() == [micro_tokenizer.pad_token_id] * n_pad + prompt_ids
        assert rollout.attention_mask[row, :prompt_len].tolist() == [0] * n_pad + [1] * len(prompt_ids)
    assert torch.all(rollout.logprobs <= 0) and torch.all(rollout.entropies >= 0)


def test_response_mask_from_eos_positions():
    eos, pad = 1, 0
    response_ids = torch.tensor([[5, 6, eos, pad, pad],
                                 [5, eos, 7, eos, 5],    # only the first eos counts
                                 [eos, eos, eos, eos, eos],  # pad == eos: the eos itself is kept
                                 [5, 6, 7, 8, 9]])       # no eos: truncated at max_new_tokens
    mask, lengths = response_mask_from_eos(response_ids, [eos])
    assert lengths.tolist() == [3, 2, 1, 5]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    _, lengths = response_mask_from_eos(response_ids, [eos, 7])  # several eos ids (e.g. Qwen's two)
    assert lengths.tolist() == [3, 2, 1, 3]


@pytest.mark.parametrize("sampler", SAME_DRAWS)
@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_response_mask_under_left_padding_and_eos(pad_is_eos, sampler):
    tokenizer = make_micro_tokenizer(pad_is_eos=pad_is_eos)
    model = make_micro_model(tokenizer, initializer_range=0.02)  # near uniform: eos ~ 1 token in 19
    assert (tokenizer.pad_token_id == tokenizer.eos_token_id) == pad_is_eos
    torch.manual_seed(1)
    rollout = generate_rollouts(model, tokenizer, PROMPTS, n_rollouts=4, max_new_tokens=16, sampler=sampler)
    check_response_mask(rollout, tokenizer.eos_token_id)
    lengths = rollout.response_lengths
    assert (lengths < rollout.response_ids.shape[1]).any() and (lengths == 16).any()  # both cases seen
    for ids, length in zip(rollout.response_ids.tolist(), lengths.tolist()):
        assert all(token == tokenizer.pad_token_id for token in ids[length:])  # generate pads ended rows


@pytest.mark.parametrize("sampler", SAME_DRAWS)
@pytest.mark.parametrize("temperature, top_p", [(0.7, 1.0), (1.0, 0.8)])
def test_sampling_equals_hf_generate(micro_model, micro_tokenizer, sampler, temperature, top_p):
    """Either sampler, with the same seed, draws the very tokens of a plain HF generate call (its own temperature
    and top-p warpers, its multinomial), to the end: also after rows ended (the fast loop drops them from its
    batch but still draws for the whole batch). The recorded logprobs and entropies are those of generate's
    logits at temperature, untruncated by top_p; 0 after a row's end."""
    torch.manual_seed(2)
    rollout = generate_rollouts(micro_model, micro_tokenizer, PROMPTS, 4, 16, temperature=temperature, top_p=top_p,
                                sampler=sampler)
    encoded = micro_tokenizer(PROMPTS, padding=True, return_tensors="pt")
    torch.manual_seed(2)
    reference = plain_generate(micro_model, encoded["input_ids"], encoded["attention_mask"], 4, 16,
                               [micro_tokenizer.eos_token_id], micro_tokenizer.pad_token_id, temperature, top_p)
    lengths = rollout.response_lengths
    assert (lengths < 16).sum() >= 4 and lengths.min() < lengths.max()  # rows ended at different steps
    assert torch.equal(encoded["input_ids"].repeat_interleave(4, 0), rollout.input_ids[:, :rollout.prompt_length])
    assert_same_samples((rollout.response_ids, rollout.logprobs, rollout.entropies), reference)


def sample_both(model, tokenizer, prompts, n_rollouts, max_new_tokens, seed, **options):
    rollouts = []
    for sampler in SAME_DRAWS:
        torch.manual_seed(seed)
        rollouts.append(generate_rollouts(model, tokenizer, prompts, n_rollouts, max_new_tokens, sampler=sampler,
                                          **options))
    return rollouts


def assert_same_rollouts(fast, generate):
    for name in ("input_ids", "attention_mask", "response_ids", "response_mask", "response_lengths"):
        assert torch.equal(getattr(fast, name), getattr(generate, name)), name
    assert fast.texts == generate.texts and fast.prompt_length == generate.prompt_length
    torch.testing.assert_close(fast.logprobs, generate.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.entropies, generate.entropies, atol=1e-5, rtol=0)


def test_generate_sampler_sharded_equals_one_process(tmp_path, micro_model, micro_tokenizer):
    """The generate sampler on a model sharded by FSDP2 over 2 gloo processes (tests/generate_worker.py), each with
    prompts of its own (one a batch one column wide) and its own number of steps: no process waits on a forward the
    other never runs, and each draws what the unsharded model draws for its rows, logprobs to 1e-5."""
    import subprocess
    import sys

    import generate_worker

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "tests/generate_worker.py", str(tmp_path)], cwd=root, env=env, capture_output=True,
                            text=True, timeout=120)  # ~10 s; a forward one process misses: it hangs
    assert result.returncode == 0, result.stderr[-4000:]
    steps = []
    for rank in (0, 1):
        sharded = torch.load(tmp_path / f"{rank}.pt")
        response_ids, logprobs, entropies = generate_worker.sample(micro_model, micro_tokenizer, rank)
        assert torch.equal(sharded["response_ids"], response_ids)
        torch.testing.assert_close(sharded["logprobs"], logprobs, atol=1e-5, rtol=0)
        torch.testing.assert_close(sharded["entropies"], entropies, atol=1e-5, rtol=0)
        steps.append(response_ids.shape[1])
    assert steps[0] > steps[1]  # process 1 stopped first and kept stepping with process 0


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (1.3, 0.7)])
def test_samplers_agree_on_the_tiny_model(temperature, top_p):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=32, num_layers=2, num_heads=4, seed=1)
    prompts = [format_prompt(maze, "compact") for maze in make_mazes((5,), {5: 3}, (5,), 1, seed=0)["train"]["maze"]]
    fast, generate = sample_both(model, tokenizer, prompts, 5, 30, seed=11, temperature=temperature, top_p=top_p)
    lengths = fast.response_lengths
    assert (lengths < fast.response_ids.shape[1]).sum() >= 3 and lengths.min() < lengths.max()
    assert_same_rollouts(fast, generate)


def test_samplers_agree_on_a_bpe_chat_model():
    """Qwen2.5-Instruct's layout (test_real_models.py): byte-level BPE, ChatML template, eos <|im_end|>."""
    from conftest import build_bpe_tokenizer, build_chat_model

    tokenizer = build_bpe_tokenizer()
    model = build_chat_model(tokenizer).eval()
    with torch.no_grad():  # a random 400-token model rarely says eos: make it likely, so rows end unevenly
        model.model.embed_tokens.weight[tokenizer.eos_token_id] *= 30
    mazes = make_mazes((5, 7), {5: 3, 7: 3}, (5,), 1, seed=1)["train"]["maze"][:3]
    prompts = [chat_prompt(tokenizer, format_prompt(maze, "paper")) for maze in mazes]
    fast, generate = sample_both(model, tokenizer, prompts, 4, 24, seed=2, temperature=1.0, top_p=0.95)
    lengths = fast.response_lengths
    assert (lengths < fast.response_ids.shape[1]).sum() >= 4 and lengths.min() < lengths.max()
    assert_same_rollouts(fast, generate)


@pytest.mark.parametrize("sampler", SAME_DRAWS)
@pytest.mark.parametrize("temperature, top_p", [(0.7, 1.0), (1.3, 0.5)])
def test_recorded_logprobs_equal_a_forward_pass(micro_model, micro_tokenizer, temperature, top_p, sampler):
    """Every recorded logprob and entropy, after rows left the batch too, equals the full forward's
    (`sequence_logprobs`: at temperature, untruncated by top_p); 0 after a row's end."""
    torch.manual_seed(3)
    rollout = generate_rollouts(micro_model, micro_tokenizer, PROMPTS, 6, 16, temperature=temperature, top_p=top_p,
                                sampler=sampler)
    mask = rollout.response_mask
    assert (rollout.response_lengths < rollout.response_ids.shape[1]).sum() >= 3  # rows left the batch early
    logprobs, entropies = sequence_logprobs(micro_model, rollout.input_ids, rollout.attention_mask,
                                            rollout.prompt_length, temperature=temperature, with_entropy=True)
    torch.testing.assert_close(logprobs * mask, rollout.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(entropies * mask, rollout.entropies, atol=1e-5, rtol=0)
    assert torch.all(rollout.logprobs[mask == 0] == 0) and torch.all(rollout.entropies[mask == 0] == 0)


@pytest.mark.parametrize("top_p", [1.0, 0.6])
def test_sampling_distribution(micro_tokenizer, top_p):
    """The first response token's frequencies over many rollouts match softmax(logits / T), renormalised
    over HF's top-p nucleus (tokens outside it are never drawn)."""
    tokenizer = micro_tokenizer
    model = make_micro_model(tokenizer, initializer_range=0.1)
    temperature, n = 0.8, 20000
    torch.manual_seed(4)
    rollout = generate_rollouts(model, tokenizer, ["S.E"], n, 1, temperature=temperature, top_p=top_p)
    prompt = tokenizer(["S.E"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**prompt).logits[0, -1] / temperature  # (V,)
    probs = torch.softmax(logits, -1)
    if top_p < 1:  # HF's nucleus: the smallest set of most likely tokens with mass >= top_p
        order = probs.argsort(descending=True)
        in_nucleus = torch.zeros_like(probs, dtype=torch.bool)
        in_nucleus[order[: int((probs[order].cumsum(0) < top_p).sum()) + 1]] = True
        assert 1 < in_nucleus.sum() < len(probs)
        probs = torch.where(in_nucleus, probs, 0.0) / probs[in_nucleus].sum()
    counts = torch.bincount(rollout.response_ids[:, 0], minlength=len(probs)).float()
    assert torch.all(counts[probs == 0] == 0)
    torch.testing.assert_close(counts / n, probs, atol=4 * (0.25 / n) ** 0.5, rtol=0)  # 4 sigma at most


def test_determinism_with_seed(micro_model, micro_tokenizer):
    def sample(seed):
        torch.manual_seed(seed)
        return generate_rollouts(micro_model, micro_tokenizer, PROMPTS, 2, 10, top_p=0.9)
    first, again, other = sample(5), sample(5), sample(6)
    assert torch.equal(first.input_ids, again.input_ids) and first.texts == again.texts
    assert torch.equal(first.logprobs, again.logprobs)
    assert not torch.equal(first.input_ids, other.input_ids)


@pytest.mark.parametrize("sampler", SAME_DRAWS)
def test_model_generation_config_does_not_change_sampling(micro_model, micro_tokenizer, sampler):
    """A checkpoint's generation_config (top_k, repetition_penalty, min_p, suppressed tokens...) must not
    distort the sampling; generate's is set aside for the call only."""
    model = copy.deepcopy(micro_model)
    settings = dict(top_k=1, repetition_penalty=5.0, temperature=0.1, min_p=0.5, suppress_tokens=[6, 7, 8],
                    max_new_tokens=2, no_repeat_ngram_size=1)
    for name, value in settings.items():
        setattr(model.generation_config, name, value)
    torch.manual_seed(7)
    expected = generate_rollouts(micro_model, micro_tokenizer, PROMPTS, 2, 10, top_p=0.9)
    torch.manual_seed(7)
    rollout = generate_rollouts(model, micro_tokenizer, PROMPTS, 2, 10, top_p=0.9, sampler=sampler)
    assert torch.equal(rollout.input_ids, expected.input_ids)
    torch.testing.assert_close(rollout.logprobs, expected.logprobs, atol=1e-5, rtol=0)
    assert {name: getattr(model.generation_config, name) for name in settings} == settings  # restored


def test_a_response_ends_at_any_of_the_models_end_tokens(qwen_model_dir, qwen_tokenizer):
    """Qwen2.5-Instruct's generation_config.json ends a response at <|im_end|> or <|endoftext|>: a model made to
    emit <|endoftext|> (p ~ 0.28 at each step, a bias on its logits) stops there, with both samplers; its mask
    includes it, its text does not. With the tokenizer's eos alone the same draws run on past it."""
    from transformers import Qwen2ForCausalLM

    tokenizer, endoftext = qwen_tokenizer, 151643  # also the pad token
    model = Qwen2ForCausalLM.from_pretrained(qwen_model_dir).eval()  # reads the folder's generation_config.json
    assert end_token_ids(model, tokenizer) == [151645, endoftext]
    assert end_token_ids(SimpleNamespace(module=model), tokenizer) == [151645, endoftext]  # DDP holds it as .module
    bias = torch.zeros(model.config.vocab_size)
    bias[endoftext] = 11.0  # e^11 / (e^11 + 151,935 * ~e^0) ~ 0.28
    model.lm_head.register_forward_hook(lambda module, inputs, logits: logits + bias)
    prompts = [chat_prompt(tokenizer, "Solve the maze."), chat_prompt(tokenizer, "Hi")]
    rollouts = {}
    for sampler in SAME_DRAWS:
        torch.manual_seed(0)
        rollouts[sampler] = rollout = generate_rollouts(model, tokenizer, prompts, 4, 10, sampler=sampler)
        for ids, mask, length, text in zip(rollout.response_ids.tolist(), rollout.response_mask.tolist(),
                                           rollout.response_lengths.tolist(), rollout.texts):
            expected = ids.index(endoftext) + 1 if endoftext in ids else len(ids)  # pads after it are endoftext too
            assert length == expected and mask == [1.0] * length + [0.0] * (len(ids) - length)
            assert "<|endoftext|>" not in text
            assert text == tokenizer.decode(ids[:length - 1] if endoftext in ids else ids, skip_special_tokens=False)
        ended_late = [length for ids, length in zip(rollout.response_ids.tolist(), rollout.response_lengths.tolist())
                      if endoftext in ids and length > 1]
        assert len(ended_late) >= 3  # rows that ran a few tokens, then ended at <|endoftext|>
    assert torch.equal(rollouts["fast"].response_ids, rollouts["generate"].response_ids)
    model.generation_config.eos_token_id = None  # the tokenizer's eos alone: <|endoftext|> no longer ends
    torch.manual_seed(0)
    longer = generate_rollouts(model, tokenizer, prompts, 4, 10, sampler="fast")
    assert (longer.response_lengths >= rollouts["fast"].response_lengths).all()
    assert (longer.response_lengths > rollouts["fast"].response_lengths).sum() >= 3


def test_texts_keep_answer_tags_and_drop_pad_eos(micro_model, micro_tokenizer):
    tokenizer = micro_tokenizer
    ids = tokenizer("<answer>RRDD</answer>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 6  # the tags are single (special) tokens here
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    response_ids = torch.tensor([ids + [eos, pad, pad], ids[:3] + [pad] + ids[3:] + [pad, pad]])
    _, lengths = response_mask_from_eos(response_ids, [eos])
    assert decode_responses(tokenizer, response_ids, lengths) == ["<answer>RRDD</answer>"] * 2

    torch.manual_seed(8)
    rollout = generate_rollouts(micro_model, tokenizer, PROMPTS, 2, 30)
    for ids, length, text in zip(rollout.response_ids.tolist(), rollout.response_lengths.tolist(), rollout.texts):
        kept = [token for token in ids[:length] if token not in (eos, pad)]
        assert text == tokenizer.decode(kept, skip_special_tokens=False)
        assert "<eos>" not in text and "<pad>" not in text
    assert any("<answer>" in text for text in rollout.texts)


def test_bad_input(micro_model, micro_tokenizer):
    model, tokenizer = micro_model, micro_tokenizer
    for prompts in ([], "S.E", ["S.E", 3]):
        with pytest.raises(ValueError, match="prompts"):
            generate_rollouts(model, tokenizer, prompts, 2, 4)
    with pytest.raises(ValueError, match="at least one token"):
        generate_rollouts(model, tokenizer, ["S.E", ""], 2, 4)
    for n_rollouts in (0, -1, 1.5):
        with pytest.raises(ValueError, match="n_rollouts"):
            generate_rollouts(model, tokenizer, PROMPTS, n_rollouts, 4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_rollouts(model, tokenizer, PROMPTS, 2, 0)
    with pytest.raises(ValueError, match="temperature"):
        generate_rollouts(model, tokenizer, PROMPTS, 2, 4, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        generate_rollouts(model, tokenizer, PROMPTS, 2, 4, top_p=0.0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        generate_rollouts(model, tokenizer, PROMPTS, 2, 4, sampler="auto")


def test_chat_prompt(micro_tokenizer):
    assert chat_prompt(micro_tokenizer, "S.E") == "S.E"  # no chat template: the text as it is
    tokenizer = copy.deepcopy(micro_tokenizer)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert chat_prompt(tokenizer, "S.E") == "<user>S.E\n<assistant>"


def test_with_tiny_builders():
    tiny = pytest.importorskip("infra.tiny")
    tokenizer = tiny.build_tokenizer()
    model = tiny.build_model(tokenizer, hidden_size=32, num_layers=1, num_heads=4)
    torch.manual_seed(9)
    rollout = generate_rollouts(model, tokenizer, ["S.E\n>", "**.\nS.E\n>"], 3, 40)
    check_response_mask(rollout, tokenizer.eos_token_id)
    logprobs = sequence_logprobs(model, rollout.input_ids, rollout.attention_mask, rollout.prompt_length)
    torch.testing.assert_close(logprobs * rollout.response_mask, rollout.logprobs, atol=1e-5, rtol=0)
    assert any("<answer>" in text or "</answer>" in text for text in rollout.texts)  # tags survive decoding
