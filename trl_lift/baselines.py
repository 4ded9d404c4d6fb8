"""Token-weighting baselines of the LIFT paper: GIFT and CART.

- GIFT (arXiv 2509.20863): entropy-driven per-token masking probabilities with the matching
  importance weight ``1 / t_i``.
- CART (Dream 7B, Ye et al. 2025): context-adaptive reweighting of each masked token by how much
  unmasked context lies near it.

The maths are pure tensor functions; :class:`GIFTMasking` and :class:`CARTWeighting` are thin
token-weighting callbacks (``DiffusionSFTConfig(token_weighting="gift" | "cart")``).
"""

from __future__ import annotations

import torch

from .masking import apply_mask, mask_positions, sample_times
from .token_weighting import DiffusionBatch, NoisedBatch, Scorer, TokenWeightingCallback, time_weights


def _padding_of(batch: DiffusionBatch) -> torch.Tensor:
    """``[B, L]`` bool: trailing padding counted in the answer.

    Read from ``batch.padding_mask`` when the trainer provides it; otherwise the positions the
    attention mask hides (exact when padding is not supervised, empty when the trainer has filled
    supervised padding with EOS and opened the attention mask).
    """
    padding = getattr(batch, "padding_mask", None)
    if padding is not None:
        return padding.bool()
    return batch.attention_mask == 0


# ---- GIFT ------------------------------------------------------------------------------------------
def gift_masking_probs(
    entropy: torch.Tensor, t: torch.Tensor, content: torch.Tensor, *, eps: float = 1e-3
) -> torch.Tensor:
    """GIFT's per-token masking probabilities.

    ``beta_i = sqrt(H_i)``, ``r_i = beta_i / mean_{j in answer} beta_j`` (per sequence; ``r = 1``
    when every entropy is zero), ``t_i = 1 - (1 - t)^(r_i)``, clamped to ``[eps, 1]`` so the
    ``1 / t_i`` weight stays finite (a zero-entropy token is masked with probability ``eps``).

    Args:
        entropy: ``[B, L]`` predictive entropies ``H_i`` with the whole answer masked.
        t: ``[B]`` masking ratios.
        content: ``[B, L]`` bool, answer positions that count (padding excluded).
        eps: lower clamp of ``t_i``.

    Returns:
        ``[B, L]`` float probabilities, 0 outside ``content``.
    """
    beta = entropy.float().clamp(min=0.0).sqrt() * content
    mean_beta = beta.sum(1) / content.sum(1).clamp(min=1)  # [b]
    ratio = torch.where(mean_beta[:, None] > 0, beta / mean_beta.clamp(min=1e-12)[:, None], torch.ones_like(beta))
    probs = 1.0 - (1.0 - t.float()[:, None]) ** ratio
    return probs.clamp(eps, 1.0) * content


class GIFTMasking(TokenWeightingCallback):
    """GIFT (``DiffusionSFTConfig(token_weighting="gift")``): entropy-driven masking.

    One pass without gradient with the whole answer masked gives each token's entropy; token ``i``
    is then masked with probability ``t_i`` (:func:`gift_masking_probs`) and weighted ``1 / t_i``
    (1 with ``loss_weighting="uniform"``). Padding is never masked nor trained. The loss is
    normalised by the number of masked tokens (``"masked"``).

    Args:
        scoring_mode: ``"train"`` (default, dropout on, as LIFT's scoring pass, so the two methods
            differ only in what they do with the scores) or ``"eval"``.
        seed: seed of the noise generator; ``None`` takes ``args.seed``.
    """

    name = "gift"

    def __init__(self, scoring_mode: str = "train", seed: int | None = None):
        super().__init__(seed=seed)
        if scoring_mode not in ("train", "eval"):
            raise ValueError(f"scoring_mode must be 'train' or 'eval', got {scoring_mode!r}.")
        self.scoring_mode = scoring_mode

    def state_args(self) -> dict:
        return {**super().state_args(), "scoring_mode": self.scoring_mode}

    def noise(self, batch: DiffusionBatch, *, scorer: Scorer, args) -> NoisedBatch:
        x0, answer = batch.input_ids, batch.answer_mask
        content = answer & ~_padding_of(batch)  # [b, l]
        t = sample_times(x0.size(0), eps=args.time_epsilon, generator=self.generator, device=x0.device)  # [b]
        # 1. Entropies with the whole answer masked (no gradient); padding stays as in training.
        all_masked = apply_mask(x0, content, batch.mask_token_id)
        entropy = scorer(all_masked, x0.masked_fill(~content, -100), train_mode=self.scoring_mode == "train").entropy
        # 2. Per-token probabilities, the mask, the importance weights.
        probs = gift_masking_probs(entropy.detach(), t, content, eps=args.time_epsilon)  # [b, l]
        masked = mask_positions(content, probs, generator=self.generator)
        if args.loss_weighting == "inverse_t":
            weights = masked.float() / probs.clamp(min=args.time_epsilon)
        else:
            weights = masked.float() * time_weights(t, args.loss_weighting)[:, None]
        length = content.sum(1).clamp(min=1).float()
        n_content = content.sum().clamp(min=1)
        return NoisedBatch(
            input_ids=apply_mask(x0, masked, batch.mask_token_id),
            loss_weights=weights,
            t=t,
            normalization="masked",
            metrics={
                "mask_ratio": (masked.sum(1) / length).mean().item(),
                "gift_entropy": (entropy.float() * content).sum().item() / n_content.item(),
                "gift_mask_prob": (probs * content).sum().item() / n_content.item(),
            },
        )


# ---- CART ------------------------------------------------------------------------------------------
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
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}.")
    kernel = cart_kernel(masked.size(1), p=p, device=masked.device)
    return (context.float() @ kernel) * masked  # the kernel is symmetric


class CARTWeighting(TokenWeightingCallback):
    """CART (``DiffusionSFTConfig(token_weighting="cart")``): Dream's context-adaptive reweighting.

    Masking is vanilla (each answer token with probability ``t``); a masked token is weighted by
    :func:`cart_weights`, whose context is every attended unmasked position, prompt included. As
    in Dream, the CART weight *replaces* ``1 / t`` (it already falls with ``t``: with a fraction
    ``1 - t`` of clean tokens around, its mean is about ``1 - t``). The loss is normalised per
    sequence by its answer length (``"sequence"``, LLaDA/Dream SFT).

    Args:
        p: geometric parameter, in ``(0, 1]``. Default 0.1.
        inverse_t: also multiply by the time weight (``args.loss_weighting``). Default ``False``.
        seed: seed of the noise generator; ``None`` takes ``args.seed``.
    """

    name = "cart"

    def __init__(self, p: float = 0.1, inverse_t: bool = False, seed: int | None = None):
        super().__init__(seed=seed)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}.")
        self.p = float(p)
        self.inverse_t = bool(inverse_t)

    def state_args(self) -> dict:
        return {**super().state_args(), "p": self.p, "inverse_t": self.inverse_t}

    def noise(self, batch: DiffusionBatch, *, scorer: Scorer, args) -> NoisedBatch:
        x0, answer = batch.input_ids, batch.answer_mask
        t = sample_times(x0.size(0), eps=args.time_epsilon, generator=self.generator, device=x0.device)  # [b]
        masked = mask_positions(answer, t, generator=self.generator)  # [b, l]
        context = batch.attention_mask.bool() & ~masked
        weights = cart_weights(masked, context, p=self.p)
        if self.inverse_t:
            weights = weights * time_weights(t, args.loss_weighting)[:, None]
        length = answer.sum(1).clamp(min=1).float()
        in_loss = masked.sum().clamp(min=1).item()
        return NoisedBatch(
            input_ids=apply_mask(x0, masked, batch.mask_token_id),
            loss_weights=weights,
            t=t,
            normalization="sequence",
            metrics={
                "mask_ratio": (masked.sum(1) / length).mean().item(),
                "cart_weight": weights.sum().item() / in_loss,
            },
        )
