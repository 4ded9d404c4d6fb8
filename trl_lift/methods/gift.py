"""GIFT (arXiv 2509.20863), a token-weighting baseline of the LIFT paper: entropy-driven masking.

One pass without gradient with the whole answer masked gives each token's predictive entropy;
token ``i`` is then masked with probability ``t_i = 1 - (1 - t)^(beta_i / mean beta)``,
``beta_i = sqrt(H_i)``, and weighted by the matching importance weight ``1 / t_i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..diffusion.masking import apply_mask, mask_positions
from .base import DiffusionBatch, NoisedBatch, NoisePlan, TokenWeightingCallback, register, time_weights

SCORING_MODES = ("train", "eval")


def gift_masking_probs(
    entropy: torch.Tensor, t: torch.Tensor, content: torch.Tensor, *, eps: float = 1e-3
) -> torch.Tensor:
    """GIFT's per-token masking probabilities.

    ``beta_i = sqrt(H_i)``, ``r_i = beta_i / mean_{j in answer} beta_j`` (per sequence; ``r = 1``
    when every entropy is zero), ``t_i = 1 - (1 - t)^(r_i)``, clamped to ``[eps, 1]`` so the
    ``1 / t_i`` weight stays finite (a zero-entropy token is masked with probability ``eps``).
    The paper leaves both the normalisation set and the clamp open; these are our choices.

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


@register("gift")
@dataclass(eq=False)
class GIFTMasking(TokenWeightingCallback):
    """GIFT (``DiffusionSFTConfig(token_weighting="gift")``): entropy-driven masking.

    Plan: ``t`` and the whole answer masked (padding excluded), scored for entropies. Finish:
    per-token probabilities (:func:`gift_masking_probs`, ``beta`` normalised per sequence,
    ``t_i >= eps``), the mask, weights ``1 / t_i`` (1 with ``loss_weighting="uniform"``). Padding
    is never masked nor trained. The loss is normalised by the number of masked tokens (``"masked"``).
    """

    scoring_mode: str = field(
        default="train",
        metadata={"help": "GIFT: mode of the entropy pass: 'train' (dropout on, as LIFT's scoring pass, so the two "
                  "methods differ only in what they do with the scores) or 'eval'.", "choices": SCORING_MODES},
    )
    trains_padding = False  # the published recipe: padding is excluded

    def plan(self, batch: DiffusionBatch) -> NoisePlan:
        content = batch.answer_mask & ~batch.padding  # [b, l]
        t = self._times(batch)  # [b]
        # 1. Entropies with the whole answer masked (no gradient); padding stays as in training.
        all_masked = apply_mask(batch.input_ids, content, batch.mask_token_id)
        return NoisePlan(all_masked, t, batch.targets_at(content), train_mode=self.scoring_mode == "train",
                         state={"x0": batch.input_ids, "mask_token_id": batch.mask_token_id, "content": content,
                                "rng": self._rng(batch)})

    def finish(self, plan: NoisePlan, scores) -> NoisedBatch:
        content, t = plan.state["content"], plan.t
        entropy = scores.entropy.detach()
        # 2. Per-token probabilities, the mask, the importance weights.
        probs = gift_masking_probs(entropy, t, content, eps=self.time_epsilon)  # [b, l]
        masked = mask_positions(content, probs, generator=plan.state["rng"])
        if self.loss_weighting == "inverse_t":
            weights = masked.float() / probs.clamp(min=self.time_epsilon)
        else:
            weights = masked.float() * time_weights(t, self.loss_weighting)[:, None]
        length = content.sum(1).clamp(min=1).float()
        n_content = content.sum().clamp(min=1).item()
        return NoisedBatch(
            input_ids=apply_mask(plan.state["x0"], masked, plan.state["mask_token_id"]),
            loss_weights=weights,
            t=t,
            normalization="masked",
            metrics={
                "mask_ratio": (masked.sum(1) / length).mean().item(),
                "gift_entropy": (entropy.float() * content).sum().item() / n_content,
                "gift_mask_prob": (probs * content).sum().item() / n_content,
            },
        )
