"""Gold-token scores of a masked diffusion LM, and the one place the logit shift is applied.

:func:`gold_log_probs` scores only the gold token of each requested position, through TRL's fused
LM head (chunked, never ``B x L x V`` logits); the trainer's training and scoring passes and the
lm-eval likelihood all call it. Dream-style models, initialised from an autoregressive model,
predict position ``i`` from the logits at ``i - 1``: :func:`predicting_rows` is that rule, and
every consumer (this module, the sampler's cached forward) aligns logits through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from trl.trainer.utils import add_fused_lm_head

from ..models.facts import get_diffusion_facts, unwrap_model

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

    def detached(self) -> "GoldScores":
        """The same scores, cut from the autograd graph (for selection from a training pass)."""
        return GoldScores(self.log_probs.detach(), self.entropy.detach(), self.is_top1)

    def rows(self, rows: torch.Tensor, size: int) -> "GoldScores":
        """Scores of a subset of rows spread back to ``size`` rows (zeros in the rows not scored).

        Args:
            rows: ``[size]`` bool, the rows these scores belong to (``rows.sum()`` of them).
            size: batch size of the result.
        """
        spread = lambda x: x.new_zeros((size, *x.shape[1:])).index_put((rows,), x)  # noqa: E731
        return GoldScores(spread(self.log_probs), spread(self.entropy), spread(self.is_top1))


# ---- the logit shift -------------------------------------------------------------------------------
def predicting_rows(positions, logit_shift: bool):
    """Index of the logits row that predicts each position (a tensor or an int): ``i``, or ``i - 1`` with a shift."""
    return positions - int(logit_shift)


def logits_at_positions(logits: torch.Tensor, logit_shift: bool) -> torch.Tensor:
    """Align ``[B, L, ...]`` logits with the positions they predict.

    With a shift, row ``i`` of the result is the model's row ``i - 1`` and row 0 repeats row 0
    (position 0 is a prompt token, never predicted).
    """
    if not logit_shift:
        return logits
    index = predicting_rows(torch.arange(logits.shape[1], device=logits.device), logit_shift).clamp(min=0)
    return logits.index_select(1, index)


def _targets_by_row(targets: torch.Tensor, logit_shift: bool) -> torch.Tensor:
    """``[B, L]`` targets moved to the rows that predict them (``-100`` where a row predicts nothing)."""
    if not logit_shift:
        return targets
    length = targets.shape[1]
    positions = torch.arange(length, device=targets.device)
    # Row r predicts the position p with predicting_rows(p) == r.
    source = positions + int(logit_shift)
    moved = targets.index_select(1, source.clamp(max=length - 1))
    return moved.masked_fill((source >= length)[None, :], -100)


def _by_position(scores: torch.Tensor, logit_shift: bool) -> torch.Tensor:
    """``[B, L]`` per-row scores moved back to the positions they predict (0 where nothing predicts)."""
    if not logit_shift:
        return scores
    positions = torch.arange(scores.shape[1], device=scores.device)
    rows = predicting_rows(positions, logit_shift)
    return scores.index_select(1, rows.clamp(min=0)).masked_fill((rows < 0)[None, :], 0)


# ---- scoring -----------------------------------------------------------------------------------------
def ensure_fused_head(model) -> None:
    """Give ``model`` TRL's fused LM head once (``model(..., fused_lm_head=True)``)."""
    base = unwrap_model(model)
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
    **model_kwargs,
) -> GoldScores:
    """Score ``targets`` at the positions where they are not ``-100``.

    Args:
        model: a diffusion LM (native transformers model, possibly wrapped by PEFT, DDP, FSDP, ...).
        input_ids: ``[B, L]`` model input (with mask tokens).
        targets: ``[B, L]`` gold token ids, ``-100`` where nothing is scored.
        attention_mask: ``[B, L]`` or ``None``.
        position_ids: ``[B, L]`` or ``None`` (left-padded batches pass ``cumsum(mask) - 1``).
        logit_shift: the family's shift (Dream: logits at ``i`` predict ``i + 1``); read from the
            model's facts when ``None``.
        **model_kwargs: passed to the model (a packed batch's attention arguments,
            :meth:`trl_lift.training.packing.PackedLayout.attention_kwargs`).

    Returns:
        :class:`GoldScores` of shape ``[B, L]``, aligned with ``targets``.
    """
    facts = get_diffusion_facts(model)
    shift = facts.logit_shift if logit_shift is None else logit_shift
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, **model_kwargs}
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if not facts.fused_head:
        return _scores_from_logits(model(**kwargs).logits, targets, shift)
    ensure_fused_head(model)
    out = model(**kwargs, shift_labels=_targets_by_row(targets, shift), fused_lm_head=True)
    return GoldScores(_by_position(out.log_probs, shift), _by_position(out.entropy, shift),
                      _by_position(out.is_top1, shift).bool())


def _scores_from_logits(logits: torch.Tensor, targets: torch.Tensor, shift: bool) -> GoldScores:
    """Reference path from full logits (masked LMs, whose head is more than one linear layer)."""
    logp = F.log_softmax(logits_at_positions(logits, shift).float(), dim=-1)
    valid = targets != -100
    gold = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    top1 = logp.argmax(-1) == targets
    zero = torch.zeros_like(gold)
    return GoldScores(torch.where(valid, gold, zero), torch.where(valid, entropy, zero), top1 & valid)
