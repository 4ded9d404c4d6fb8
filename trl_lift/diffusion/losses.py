"""The masked-diffusion loss: weighted cross-entropy of the masked tokens, and its normalisations.

Each normalisation reproduces one paper's code, gradient accumulation included:

- ``"sequence"``: LLaDA (Nie et al. 2025) SFT: a sequence's sum over its answer length, then
  the mean over the sequences of the optimizer batch.
- ``"micro_batch"``: the LIFT reference (Parashar et al. 2026): a micro-batch's sum over its
  answer tokens (padding included, prompt excluded), then the mean over micro-batches
  (accumulation steps) and devices.
- ``"batch"``: the sum over the answer tokens of the whole optimizer batch (all accumulation
  steps and devices): TRL's token-level convention (``num_items_in_batch``).
- ``"masked"``: GIFT (arXiv 2509.20863): a micro-batch's sum over the tokens in its loss, then
  the mean over micro-batches.

The last three agree when every micro-batch has the same token counts; with one sequence per
device ``"sequence"`` and ``"micro_batch"`` agree.
"""

from __future__ import annotations

import torch

NORMALIZATIONS = ("sequence", "micro_batch", "batch", "masked")


def diffusion_loss(
    log_probs: torch.Tensor,
    loss_weights: torch.Tensor,
    answer_mask: torch.Tensor,
    *,
    normalization: str,
    num_items: torch.Tensor | int | None = None,
    num_sequences: int | None = None,
    num_micro_batches: int = 1,
) -> torch.Tensor:
    """``sum_{b,i} w_{b,i} * (-log p_{b,i}) / Z``, with ``Z`` by ``normalization`` (module docstring).

    Args:
        log_probs: ``[B, L]`` gold-token log-probs.
        loss_weights: ``[B, L]`` weights, 0 off the loss (e.g. ``1/t`` on masked tokens).
        answer_mask: ``[B, L]`` bool, answer positions (prompt excluded).
        normalization: one of ``NORMALIZATIONS``.
        num_items: ``"batch"``: answer tokens of the whole optimizer batch (default: this micro-batch's
            times ``num_micro_batches``).
        num_sequences: ``"sequence"``: sequences of the whole optimizer batch (default: this micro-batch's).
        num_micro_batches: ``"micro_batch"`` / ``"masked"``: micro-batches averaged over.

    Returns:
        Scalar loss: this micro-batch's share of the optimizer batch's loss.
    """
    per_token = -log_probs * loss_weights  # [b, l]
    if normalization == "sequence":
        per_sequence = per_token.sum(1) / answer_mask.sum(1).clamp(min=1)
        return per_sequence.sum() / (num_sequences or per_token.size(0))
    if normalization == "batch":
        denominator = answer_mask.sum() * num_micro_batches if num_items is None else num_items
        return per_token.sum() / torch.as_tensor(denominator, device=per_token.device).clamp(min=1)
    if normalization == "micro_batch":
        denominator = answer_mask.sum()
    elif normalization == "masked":
        denominator = (loss_weights > 0).sum()
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
    return per_token.sum() / denominator.clamp(min=1) / num_micro_batches
