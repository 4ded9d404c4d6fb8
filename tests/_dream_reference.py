"""An independent, deliberately plain re-implementation of Dream's ``diffusion_generate`` for the tests.

Written from the description of Dream-org/Dream's ``DreamGenerationMixin._sample`` and
``sample_tokens`` (issue 15), not from trl_lift: the whole canvas every step, Dream's attention
convention (a 4-D mask ``mask_i AND mask_j`` and position ids ``cumsum - 1`` with pads at 1 when
the prompt mask has zeros, nothing otherwise), the logit shift ``cat([l[:, :1], l[:, :-1]])``, and
torch's global random generator, drawn by the calls Dream makes (``torch.rand``,
``torch.distributions.Categorical(...).sample()``, ``torch.multinomial``). Seed it with
``torch.manual_seed(seed)``; a ``torch.Generator().manual_seed(seed)`` given to trl_lift then makes
the same draws.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.distributions import Categorical


def _nucleus(logits, top_p):
    values, order = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(values, dim=-1), dim=-1)
    drop = cumulative > top_p
    drop[..., 1:] = drop[..., :-1].clone()  # shift right: the first token past top_p stays
    drop[..., 0] = False
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, drop)
    return logits.masked_fill(mask, torch.finfo(logits.dtype).min)


def _top_k(logits, top_k):
    top_k = min(top_k, logits.size(-1))
    kth = torch.topk(logits, top_k)[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def sample_tokens(logits, temperature=0.0, top_p=None, top_k=None, margin_confidence=False, neg_entropy=False):
    """Dream's ``sample_tokens``: ``(confidence [N], x0 [N])`` from ``[N, V]`` logits."""
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = _nucleus(logits, top_p)
    if top_k is not None:
        logits = _top_k(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        x0 = Categorical(probs=probs).sample()
        confidence = torch.gather(probs, -1, x0.unsqueeze(-1)).squeeze(-1)
    else:
        confidence, x0 = probs.max(dim=-1)
    if margin_confidence:
        ranked, _ = torch.sort(probs, dim=-1, descending=True)
        confidence = ranked[:, 0] - ranked[:, 1]
    if neg_entropy:
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, x0


def _forward(model, x, attention_mask, tok_idx):
    if attention_mask == "full":
        logits = model(x).logits
    else:
        logits = model(x, attention_mask=attention_mask, position_ids=tok_idx).logits
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)  # position i read from row i - 1


@torch.no_grad()
def dream_reference_generate(model, input_ids, attention_mask=None, *, max_new_tokens, mask_token_id, steps=512,
                             eps=1e-3, alg="origin", alg_temp=None, temperature=0.0, top_p=None, top_k=None,
                             threshold=None, ban_ids=(), prefix_cache=False):
    """Dream's sampler; with ``threshold``: each step commits, per row, the most confident masked position and
    every masked one at least ``threshold`` confident (Fast-dLLM's rule, no time grid).

    ``ban_ids``: logits set to -inf before sampling (trl_lift's ``logits_eos_inf`` / mask suppression).
    ``prefix_cache`` (unpadded prompts): Fast-dLLM's prefix cache with one block, the generated span: the
    first pass keeps the keys and values of the prompt but its last token (whose row predicts the first
    new token), and every later pass feeds only the rest, reusing them.

    Returns:
        ``(x [B, P + max_new_tokens], forward passes)``.
    """
    max_length = input_ids.shape[1] + max_new_tokens
    x = F.pad(input_ids, (0, max_length - input_ids.shape[1]), value=mask_token_id)
    if attention_mask is not None and torch.any(attention_mask == 0.0):
        attention_mask = F.pad(attention_mask, (0, max_length - attention_mask.shape[1]), value=1.0)
        tok_idx = attention_mask.long().cumsum(-1) - 1
        tok_idx.masked_fill_(attention_mask == 0, 1)
        attention_mask = torch.logical_and(
            attention_mask.bool().unsqueeze(1).unsqueeze(-2), attention_mask.bool().unsqueeze(1).unsqueeze(-1)
        )  # [B, 1, N, N]
    else:
        tok_idx, attention_mask = None, "full"
    passes, cache, keep = 0, None, input_ids.shape[1] - 1

    def logits_of(x):
        nonlocal passes, cache
        passes += 1
        if not prefix_cache:
            logits = _forward(model, x, attention_mask, tok_idx)
        elif cache is None:
            out = model(x, use_cache=True)
            cache = out.cache
            cache.crop(-(x.shape[1] - keep))  # keep the first `keep` positions (crop takes a negative count)
            logits = torch.cat([out.logits[:, :1], out.logits[:, :-1]], dim=1)
        else:
            suffix = model(x[:, keep:], cache=copy.deepcopy(cache), use_cache=True).logits
            logits = torch.full((x.shape[0], x.shape[1], suffix.shape[-1]), torch.nan)
            logits[:, keep + 1:] = suffix[:, :-1]  # position i read from row i - 1
        for banned in ban_ids:
            logits[:, :, banned] = -torch.inf
        return logits

    flags = {"margin_confidence": alg == "topk_margin", "neg_entropy": alg == "entropy"}
    if threshold is not None:
        while (x == mask_token_id).any():
            mask_index = x == mask_token_id
            confidence, x0 = sample_tokens(logits_of(x)[mask_index], temperature, top_p, top_k, **flags)
            full_confidence = torch.full(x.shape, -torch.inf)
            full_confidence[mask_index] = confidence
            proposal = torch.full_like(x, mask_token_id)
            proposal[mask_index] = x0
            for row in range(x.shape[0]):
                if not mask_index[row].any():
                    continue
                best = int(torch.argmax(full_confidence[row]))
                chosen = (full_confidence[row] >= threshold) & mask_index[row]
                chosen[best] = True
                x[row, chosen] = proposal[row, chosen]
        return x, passes

    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_token_id
        logits = logits_of(x)
        mask_logits = logits[mask_index]
        t, s = timesteps[i], timesteps[i + 1]
        if alg == "origin":
            p_transfer = 1 - s / t if i < steps - 1 else 1
            x0 = torch.zeros_like(x[mask_index]) + mask_token_id
            transfer = torch.rand(*x0.shape) < p_transfer
            if transfer.any():  # Dream calls sample_tokens on the (possibly empty) subset; empty draws nothing
                _, x0[transfer] = sample_tokens(mask_logits[transfer], temperature, top_p, top_k)
            x[mask_index] = x0.clone()
            continue
        confidence, x0 = sample_tokens(mask_logits, temperature, top_p, top_k, **flags)
        num_mask_token = mask_index.sum() / mask_index.shape[0]  # averaged over the batch (Dream's quirk)
        number_transfer_tokens = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
        full_confidence = torch.full_like(x, -torch.inf, dtype=logits.dtype)
        full_confidence[mask_index] = confidence
        if number_transfer_tokens > 0:
            if alg_temp is None or alg_temp == 0:
                _, transfer_index = torch.topk(full_confidence, number_transfer_tokens)
            else:
                weights = F.softmax(full_confidence / alg_temp, dim=-1)
                transfer_index = torch.multinomial(weights, num_samples=number_transfer_tokens)
            x_ = torch.zeros_like(x) + mask_token_id  # unmasked positions chosen receive the mask token
            x_[mask_index] = x0.clone()
            rows = torch.arange(x.size(0)).unsqueeze(1).expand_as(transfer_index)
            x[rows, transfer_index] = x_[rows, transfer_index]
    return x, passes
