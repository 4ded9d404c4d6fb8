"""CART (Dream 7B, Ye et al. 2025), a token-weighting baseline of the LIFT paper.

Context-adaptive reweighting: masking is vanilla, and each masked token is weighted by how much
unmasked context lies near it, ``w_i = sum_{j unmasked} 0.5 p (1 - p)^(|i - j| - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checks import check_range
from ..diffusion.masking import apply_mask, mask_positions
from .base import DiffusionBatch, NoisedBatch, NoisePlan, TokenWeightingCallback, register, time_weights

VARIANTS = ("lift_reference", "dream")


def cart_kernel(length: int, *, p: float = 0.1, device=None) -> torch.Tensor:
    """``[L, L]`` float32 kernel ``0.5 * p * (1 - p)^(|i - j| - 1)``, 0 on the diagonal."""
    idx = torch.arange(length, device=device)
    distance = (idx[:, None] - idx[None, :]).abs().double()
    kernel = 0.5 * p * (1.0 - p) ** (distance - 1.0)
    return kernel.masked_fill(distance == 0, 0.0).float()


def cart_weights(masked: torch.Tensor, context: torch.Tensor, *, p: float = 0.1) -> torch.Tensor:
    """CART's context-adaptive weight of each masked token.

    ``w_i = sum_{j in context} 0.5 * p * (1 - p)^(|i - j| - 1)`` for masked ``i``, 0 elsewhere: a
    masked token with clean neighbours is more learnable and weighs more. Costs an ``[L, L]``
    kernel (64 MB at ``L = 4096``).

    Args:
        masked: ``[B, L]`` bool, positions in the loss.
        context: ``[B, L]`` bool, unmasked positions the model sees (prompt included).
        p: parameter of the geometric distribution, in ``(0, 1]``.

    Returns:
        ``[B, L]`` float32.
    """
    check_range("p", p, 0.0, 1.0, low_open=True)
    kernel = cart_kernel(masked.size(1), p=p, device=masked.device)
    return (context.float() @ kernel) * masked  # the kernel is symmetric


@register("cart")
@dataclass(eq=False)
class CARTWeighting(TokenWeightingCallback):
    """CART (``DiffusionSFTConfig(token_weighting="cart")``): Dream's context-adaptive reweighting.

    Masking is vanilla (each answer token with probability ``t``); a masked token is weighted by
    :func:`cart_weights`, whose context is every attended unmasked position, prompt included.

    - ``variant="lift_reference"`` (default, the LIFT reference's CART): the CART weight times the
      time weight ``1 / t``, normalised by the micro-batch's answer tokens (``"micro_batch"``).
    - ``variant="dream"`` (Dream's trainer): the CART weight alone, normalised by the number of
      masked tokens (``"masked"``), which acts as the ``1 / t`` factor.
    """

    p: float = field(default=0.1, metadata={"help": "CART: geometric decay p of the context weights, in (0, 1]."})
    variant: str = field(
        default="lift_reference",
        metadata={"help": "CART: 'lift_reference' (CART weight x 1/t over the micro-batch's answer tokens, the LIFT "
                  "reference) or 'dream' (CART weight over the number of masked tokens, Dream's trainer).",
                  "choices": VARIANTS},
    )

    def __post_init__(self):
        super().__post_init__()
        check_range("p", self.p, 0.0, 1.0, low_open=True)

    def plan(self, batch: DiffusionBatch) -> NoisePlan:
        t = self._times(batch)  # [b]
        masked = mask_positions(batch.answer_mask, t, generator=self._rng(batch))  # [b, l]
        context = batch.attention_mask.bool() & ~masked
        weights = cart_weights(masked, context, p=self.p)
        if self.variant == "lift_reference":
            weights = weights * time_weights(t, self.loss_weighting)[:, None]
        noised = NoisedBatch(
            input_ids=apply_mask(batch.input_ids, masked, batch.mask_token_id),
            loss_weights=weights,
            t=t,
            normalization="micro_batch" if self.variant == "lift_reference" else "masked",
            metrics={
                "mask_ratio": (masked.sum(1) / batch.answer_mask.sum(1).clamp(min=1).float()).mean().item(),
                "cart_weight": weights.sum().item() / masked.sum().clamp(min=1).item(),
            },
        )
        return NoisePlan(noised.input_ids, t, state={"noised": noised})
