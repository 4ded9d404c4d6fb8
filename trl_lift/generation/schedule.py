"""The sampler's per-step maths as pure functions: transfer schedule, proposals, confidence, selection.

Masked-diffusion sampling (LLaDA, Nie et al. 2025, "Large Language Diffusion Models") decodes a
canvas of mask tokens over a number of steps. At each step the model proposes a token for every
masked position, each proposal gets a confidence, and the most confident proposals are committed:
either a fixed per-step quota (the reference) or every proposal above a threshold (Fast-dLLM,
Wu et al. 2025). The functions here hold no model and no state; randomness comes in through a
``torch.Generator`` and inputs are never modified.

Tie-breaking (documented once, used everywhere): among positions whose confidences are exactly
equal, the leftmost position is committed first. The reference uses ``torch.topk``, whose order
among equal values is unspecified, so the two can only differ on exact ties.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..diffusion.masking import rank_positions, uniform

REMASKING_STRATEGIES = ("low_confidence", "random", "entropy", "margin")


def transfer_schedule(masked_per_row: torch.Tensor, steps: int) -> torch.Tensor:
    """How many masked positions each row commits at each step of a block (the reference quota).

    The masks are spread over the steps as evenly as possible, the remainder going to the first
    steps: 8 masks over 3 steps -> ``[3, 3, 2]``.

    Args:
        masked_per_row: ``[B]`` integer count of masked positions in each row's block.
        steps: number of steps the block is decoded in (>= 1).

    Returns:
        ``[B, steps]`` int64 quotas; each row sums to its ``masked_per_row`` entry.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    counts = masked_per_row.to(torch.int64).reshape(-1, 1)  # [B, 1]
    base = counts // steps
    remainder = counts % steps
    step_index = torch.arange(steps, device=counts.device).unsqueeze(0)  # [1, S]
    return base + (step_index < remainder).to(torch.int64)  # [B, S]


def propose_tokens(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Candidate token ``x0`` for every position.

    At temperature 0 this is ``argmax`` over the logits as given (first maximum on ties, as
    ``torch.argmax`` documents). At ``temperature > 0`` it is a draw from ``softmax(logits / T)`` by
    the Gumbel-max trick computed in float64 (low-precision Gumbel noise hurts quality,
    arXiv:2409.02908): ``argmax(logits - T * log(-log u))``, ``u ~ U[0, 1)``, which is the reference's
    ``exp(logits) / (-log u) ** T`` in log space (no overflow for large logits).

    Args:
        logits: ``[B, W, V]`` logits.
        temperature: ``>= 0``.
        generator: source of the uniform noise; draws happen on the generator's device and are moved
            to the logits' device, so a CPU generator gives the same samples on any device.

    Returns:
        ``[B, W]`` int64 token ids.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    draws = uniform(logits.shape, generator=generator, device=None if generator is not None else logits.device,
                    dtype=torch.float64)  # on the generator's device
    gumbel_log = torch.log(-torch.log(draws)).to(logits.device)  # [B, W, V]
    return (logits.to(torch.float64) - temperature * gumbel_log).argmax(dim=-1)


def token_confidence(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    remasking: str,
    *,
    excluded_ids: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Confidence of each proposal; higher is committed first.

    Computed in float32, or float64 when the logits are float64 (bf16 confidences create ties
    that change outputs; float32 equals the reference bit for bit on float32 logits).

    - ``low_confidence``: softmax probability of the proposed token (LLaDA).
    - ``margin``: top-1 minus top-2 probability (Dream's ``topk_margin``).
    - ``entropy``: negative entropy ``sum p log p`` of the position's distribution (Dream's ``entropy``).
    - ``random``: a uniform number, ignoring the model (LLaDA's ``random``).

    Args:
        logits: ``[B, W, V]`` logits (untempered).
        tokens: ``[B, W]`` proposed tokens (used by ``low_confidence``).
        remasking: one of ``REMASKING_STRATEGIES``.
        excluded_ids: vocabulary ids removed from the distribution before the softmax (probability
            0). The reference's ``confidence_eos_eot_inf`` flag: a proposal of such a token gets
            confidence 0 and is committed last.
        generator: source of the uniform numbers for ``random``.

    Returns:
        ``[B, W]`` float confidences.
    """
    if remasking == "random":
        return uniform(tokens.shape, generator=generator, device=logits.device)
    if remasking not in REMASKING_STRATEGIES:
        raise ValueError(f"remasking must be one of {REMASKING_STRATEGIES}, got {remasking!r}.")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype)
    if excluded_ids:
        logits = logits.index_fill(-1, torch.tensor(list(excluded_ids), device=logits.device), float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # [B, W, V]
    if remasking == "low_confidence":
        return probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if remasking == "margin":
        top2 = probs.topk(2, dim=-1).values  # [B, W, 2]
        return top2[..., 0] - top2[..., 1]
    return torch.special.xlogy(probs, probs).sum(dim=-1)  # entropy: sum p log p, with 0 log 0 = 0


def select_by_threshold(confidence: torch.Tensor, candidates: torch.Tensor, threshold: float) -> torch.Tensor:
    """Commit every candidate with confidence ``>= threshold``, and always the most confident one.

    Fast-dLLM's confidence-threshold parallel decoding: a row with candidates commits at least one
    position per step, so a block always finishes.

    Args:
        confidence: ``[B, W]`` confidences.
        candidates: ``[B, W]`` bool, positions that may be committed.
        threshold: confidence threshold ``tau``.

    Returns:
        ``[B, W]`` bool, the positions to commit (none in a row without candidates).
    """
    scores = confidence.masked_fill(~candidates, float("-inf"))
    best = rank_positions(scores) == 0
    return ((scores >= threshold) | best) & candidates
