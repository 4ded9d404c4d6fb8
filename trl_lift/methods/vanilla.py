"""Vanilla masked-diffusion SFT (LLaDA, Nie et al. 2025): each answer token masked with probability t."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion.masking import apply_mask, mask_positions
from .base import DiffusionBatch, NoisedBatch, NoisePlan, TokenWeightingCallback, register, time_weights


def noise_at_times(batch: DiffusionBatch, t: torch.Tensor, *, generator, weighting: str) -> NoisedBatch:
    """Vanilla noising at given per-sequence ratios ``t`` (``[B]``): shared by training and evaluation."""
    masked = mask_positions(batch.answer_mask, t, generator=generator)  # [b, l]
    weights = masked.float() * time_weights(t, weighting)[:, None]
    ratio = masked.sum(1).float() / batch.answer_mask.sum(1).clamp(min=1)
    return NoisedBatch(
        input_ids=apply_mask(batch.input_ids, masked, batch.mask_token_id),
        loss_weights=weights,
        t=t,
        normalization="sequence",
        metrics={"mask_ratio": ratio.mean().item()},
    )


@register("vanilla")
@dataclass(eq=False)
class VanillaMasking(TokenWeightingCallback):
    """Vanilla masked-diffusion SFT: ``t ~ U(eps, 1)`` per sequence, each answer token masked with
    probability ``t``, weight ``1 / t`` (or 1); the loss is normalised per sequence (LLaDA)."""

    def plan(self, batch: DiffusionBatch) -> NoisePlan:
        t = self._times(batch)
        noised = noise_at_times(batch, t, generator=self._rng(batch), weighting=self.loss_weighting)
        return NoisePlan(input_ids=noised.input_ids, t=noised.t, state={"noised": noised})
