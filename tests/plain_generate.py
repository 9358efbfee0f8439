"""HF generate as plain as it gets, the reference the samplers and their speed-ups are tested against: generate's
own prefill of every copy of a prompt, its temperature and top-p warpers, its multinomial, every step's raw logits
kept (output_logits=True) and the logprobs and entropies computed from them afterwards."""
import torch

from rollout import response_mask_from_eos

# HF generate as pure sampling, whatever the model's generation_config says
PURE_SAMPLING = dict(do_sample=True, num_beams=1, top_k=0, typical_p=1.0, repetition_penalty=1.0,
                     no_repeat_ngram_size=0, min_new_tokens=0, epsilon_cutoff=0.0, eta_cutoff=0.0)


def plain_generate(model, prompt_ids, prompt_mask, n_rollouts, max_new_tokens, eos_token_ids, pad_token_id,
                   temperature=1.0, top_p=1.0):
    """The seam's outputs computed the textbook way: response_ids (B, R) of generate on the U prompts repeated
    n_rollouts times, and the logprobs and entropies (B, R) of its logits / temperature, 0 after a row's end."""
    with torch.no_grad():
        output = model.generate(input_ids=prompt_ids.repeat_interleave(n_rollouts, 0),
                                attention_mask=prompt_mask.repeat_interleave(n_rollouts, 0),
                                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                eos_token_id=list(eos_token_ids), pad_token_id=pad_token_id,
                                return_dict_in_generate=True, output_logits=True, **PURE_SAMPLING)
    response_ids = output.sequences[:, prompt_ids.shape[1]:]
    log_probs = torch.log_softmax(torch.stack(output.logits, dim=1).float() / temperature, -1)  # (B, R, V)
    mask = response_mask_from_eos(response_ids, eos_token_ids)[0]
    logprobs = log_probs.gather(-1, response_ids[..., None])[..., 0] * mask
    return response_ids, logprobs, -(log_probs.exp() * log_probs).sum(-1) * mask


def assert_same_samples(samples, reference, atol=1e-5):
    """The same tokens; logprobs and entropies within atol."""
    (ids, logprobs, entropies), (reference_ids, reference_logprobs, reference_entropies) = samples, reference
    assert torch.equal(ids, reference_ids)
    torch.testing.assert_close(logprobs, reference_logprobs, atol=atol, rtol=0)
    torch.testing.assert_close(entropies, reference_entropies, atol=atol, rtol=0)
