"""Independent, deliberately plain re-implementations of the samplers the tests compare against.

Written from ../shared/docs/models.md ("The reference sampler (LLaDA's `generate`), in words" and
"Fast-dLLM's speed-ups, in words"), not from trl_lift: full canvas, one full pass per step, no
position ids (as the original code), Python loops, confidences read one by one. Exact ties go to the
leftmost position (the documented rule of trl_lift; the original's ``topk`` leaves it unspecified);
``ties`` counts the commits where that rule decided, so a test can show that it exercised ties.
"""

from __future__ import annotations

import math

import torch

from trl_lift.testing import sharpen_weights

_sharpen_init = sharpen_weights  # the library helper, under the name these tests use


def _favour_token(model, token_id: int, alpha: float, *, mask_id: int, seed: int = 0, jitter: float = 0.0):
    """Point ``lm_head`` row ``token_id`` along the model's mean final hidden state, scaled by ``alpha``.

    The token then wins at a fraction of the masked positions that grows with ``alpha`` (about a third
    at 7 for the sharpened tiny LLaDA): a model that likes EOS, or that proposes the mask token.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 300, (8, 26), generator=g)
    x[:, 18:] = mask_id
    with torch.no_grad():
        hidden = model.model(x).last_hidden_state[:, 10:].reshape(-1, model.config.hidden_size)
        direction = hidden.mean(0)
        direction = direction / direction.norm()
        if jitter:
            noise = torch.randn(direction.shape, generator=g)
            direction = direction + jitter * noise / noise.norm()
            direction = direction / direction.norm()
        model.lm_head.weight[token_id] = alpha * direction
    return model


def _logits(model, x, attention_mask, cfg_scale, prompt_index, mask_id, shift):
    if cfg_scale > 0:
        un_x = x.clone()
        un_x[prompt_index] = mask_id
        mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
        both = model(torch.cat([x, un_x]), attention_mask=mask).logits
        cond, uncond = both[: x.shape[0]], both[x.shape[0] :]
        logits = uncond + (cfg_scale + 1) * (cond - uncond)
    else:
        logits = model(x, attention_mask=attention_mask).logits
    if shift:  # logits at i predict i + 1
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    return logits.clone()


def _ordered(conf_row, length):
    """Positions sorted by confidence, highest first, ties to the leftmost, and the confidences as floats."""
    values = [conf_row[k].item() for k in range(length)]
    return sorted(range(length), key=lambda k: (-values[k], k)), values


@torch.no_grad()
def reference_generate(
    model,
    prompt,
    attention_mask=None,
    *,
    steps,
    gen_length,
    block_length,
    mask_id,
    cfg_scale=0.0,
    logits_eos_inf=False,
    confidence_eos_eot_inf=False,
    eos_id=None,
    eot_id=None,
    shift=False,
    threshold=None,
):
    """LLaDA's reference sampler at temperature 0 (``threshold`` set: Fast-dLLM's threshold rule, mask token banned).

    Returns:
        ``(x, ties, nfe)``: the ``[B, P + gen_length]`` canvas, the number of commits decided by the
        tie rule, and the number of forward passes.
    """
    batch, prompt_length = prompt.shape
    length = prompt_length + gen_length
    x = torch.full((batch, length), mask_id, dtype=torch.long)
    x[:, :prompt_length] = prompt
    if attention_mask is not None:
        attention_mask = torch.cat([attention_mask, torch.ones(batch, gen_length, dtype=attention_mask.dtype)], dim=1)
    prompt_index = x != mask_id
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    ties = nfe = 0
    for b in range(num_blocks):
        end = prompt_length + (b + 1) * block_length
        n_masked = [(x[j, end - block_length : end] == mask_id).sum().item() for j in range(batch)]
        quotas = [[n // steps_per_block + (1 if i < n % steps_per_block else 0) for i in range(steps_per_block)] for n in n_masked]
        step = 0
        while True:
            if threshold is None and step == steps_per_block:
                break
            if threshold is not None and not (x[:, end - block_length : end] == mask_id).any():
                break
            mask_index = x == mask_id
            logits = _logits(model, x, attention_mask, cfg_scale, prompt_index, mask_id, shift)
            nfe += 2 if cfg_scale > 0 else 1
            if logits_eos_inf:
                logits[:, :, eos_id] = -math.inf
            if threshold is not None:  # trl_lift's fast paths never propose the mask token
                logits[:, :, mask_id] = -math.inf
            x0 = logits.argmax(dim=-1)
            if confidence_eos_eot_inf:
                for banned in (eos_id, eot_id):
                    if banned is not None:
                        logits[:, :, banned] = -math.inf
            probs = torch.softmax(logits.float(), dim=-1)
            conf = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            conf[:, end:] = -math.inf
            conf = torch.where(mask_index, conf, torch.full_like(conf, -math.inf))
            for j in range(batch):
                order, values = _ordered(conf[j], length)
                candidates = [k for k in order if values[k] > -math.inf]
                if threshold is None:
                    chosen = order[: quotas[j][step]]
                else:
                    chosen = candidates[:1] + [k for k in candidates[1:] if values[k] >= threshold]
                if chosen and len(candidates) > len(chosen):
                    last, nxt = values[chosen[-1]], values[candidates[len(chosen)]]
                    ties += int(last == nxt)
                for k in chosen:
                    x[j, k] = x0[j, k]
            step += 1
    return x, ties, nfe
