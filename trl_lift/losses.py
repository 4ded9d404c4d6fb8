"""Gold-token log-probabilities and the masked-diffusion loss.

:func:`gold_log_probs` scores only the gold token of each requested position, through TRL's fused
LM head (chunked, never ``B x L x V`` logits), with the family's logit shift applied; the trainer,
the LIFT scoring pass and the lm-eval likelihood all call it. :func:`diffusion_loss` is the
weighted cross-entropy with its three normalisations (LLaDA, Nie et al. 2025; LIFT reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from trl.trainer.utils import add_fused_lm_head

from .model_facts import get_diffusion_facts, shift_logits

NORMALIZATIONS = ("sequence", "batch", "masked")
FUSED_OUTPUTS = ("log_probs", "entropy", "is_top1")


@dataclass
class GoldScores:
    """Per-position scores of the gold tokens; zero where no target was given.

    Attributes:
        log_probs: ``[B, L]`` float, ``log p(target_i | input)``.
        entropy: ``[B, L]`` float, entropy of the predictive distribution at ``i``.
        is_top1: ``[B, L]`` bool, the gold token is the argmax.
    """

    log_probs: torch.Tensor
    entropy: torch.Tensor
    is_top1: torch.Tensor


def _unwrap(model):
    """The transformers model under PEFT / accelerate wrappers."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def ensure_fused_head(model) -> None:
    """Give ``model`` TRL's fused LM head once (``model(..., fused_lm_head=True)``)."""
    base = _unwrap(model)
    if not getattr(base, "_trl_lift_fused_head", False):
        add_fused_lm_head(base, outputs=FUSED_OUTPUTS)
        base._trl_lift_fused_head = True


def gold_log_probs(
    model,
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    logit_shift: bool | None = None,
) -> GoldScores:
    """Score ``targets`` at the positions where they are not ``-100``.

    Args:
        model: a diffusion LM (native transformers model, possibly PEFT-wrapped).
        input_ids: ``[B, L]`` model input (with mask tokens).
        targets: ``[B, L]`` gold token ids, ``-100`` where nothing is scored.
        attention_mask: ``[B, L]`` or ``None``.
        position_ids: ``[B, L]`` or ``None`` (left-padded batches pass ``cumsum(mask) - 1``).
        logit_shift: the family's shift (Dream: logits at ``i`` predict ``i + 1``); read from the
            model's facts when ``None``.

    Returns:
        :class:`GoldScores` of shape ``[B, L]``, aligned with ``targets``.
    """
    facts = get_diffusion_facts(model)
    shift = facts.logit_shift if logit_shift is None else logit_shift
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if not facts.fused_head:
        return _scores_from_logits(model(**kwargs).logits, targets, shift)
    ensure_fused_head(model)
    if shift:
        # TRL's causal convention is Dream's: hidden[i - 1] scores labels[i]; position 0 is never scored.
        out = model(**kwargs, labels=targets, fused_lm_head=True)
        pad = lambda x: torch.cat([torch.zeros_like(x[:, :1]), x], dim=1)  # noqa: E731
        return GoldScores(pad(out.log_probs), pad(out.entropy), pad(out.is_top1).bool())
    out = model(**kwargs, shift_labels=targets, fused_lm_head=True)
    return GoldScores(out.log_probs, out.entropy, out.is_top1.bool())


def _scores_from_logits(logits: torch.Tensor, targets: torch.Tensor, shift: bool) -> GoldScores:
    """Reference path from full logits (masked LMs, whose head is more than one linear layer)."""
    logp = F.log_softmax(shift_logits(logits, shift).float(), dim=-1)
    valid = targets != -100
    gold = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    top1 = logp.argmax(-1) == targets
    zero = torch.zeros_like(gold)
    return GoldScores(torch.where(valid, gold, zero), torch.where(valid, entropy, zero), top1 & valid)


def diffusion_loss(
    log_probs: torch.Tensor,
    loss_weights: torch.Tensor,
    answer_mask: torch.Tensor,
    *,
    normalization: str,
    num_items: torch.Tensor | int | None = None,
    num_sequences: int | None = None,
) -> torch.Tensor:
    """Weighted cross-entropy of the masked tokens.

    ``L = sum_{b,i} w_{b,i} * (-log p_{b,i}) / Z``, with ``Z`` by ``normalization``:

    - ``"sequence"``: each sequence's sum over its answer length, then the mean over sequences
      (LLaDA's SFT recipe). ``num_sequences`` replaces the batch size (gradient accumulation).
    - ``"batch"``: the number of answer tokens in the batch (the LIFT reference, d1).
      ``num_items`` replaces it (answer tokens over all accumulated micro-batches and devices).
    - ``"masked"``: the number of tokens in the loss (``w > 0``), as GIFT.

    Args:
        log_probs: ``[B, L]`` gold-token log-probs.
        loss_weights: ``[B, L]`` weights, 0 off the loss (e.g. ``1/t`` on masked tokens).
        answer_mask: ``[B, L]`` bool, answer positions (prompt excluded).

    Returns:
        Scalar loss.
    """
    per_token = -log_probs * loss_weights
    if normalization == "sequence":
        per_sequence = per_token.sum(1) / answer_mask.sum(1).clamp(min=1)
        return per_sequence.sum() / (num_sequences or per_token.size(0))
    if normalization == "batch":
        denominator = answer_mask.sum() if num_items is None else num_items
    elif normalization == "masked":
        denominator = (loss_weights > 0).sum()
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
    return per_token.sum() / torch.as_tensor(denominator, device=per_token.device).clamp(min=1)
