"""The token-weighting slot of the diffusion trainer, and its default: vanilla masked diffusion.

Each training step the trainer hands the clean micro-batch to a :class:`TokenWeightingCallback`,
which decides, for every answer position, whether it is masked in the input and with what weight
it enters the loss. Vanilla SFT (LLaDA's recipe), LIFT and the baselines (GIFT, CART) are
subclasses; the callback owns the noise generator, whose state is saved in checkpoints so a
resumed run draws the same masks as an uninterrupted one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from .losses import GoldScores
from .masking import apply_mask, mask_positions, sample_times


@dataclass
class DiffusionBatch:
    """A clean micro-batch, as the token-weighting callback sees it.

    Attributes:
        input_ids: ``[B, L]`` clean tokens ``x0`` (trailing padding filled with EOS when supervised).
        attention_mask: ``[B, L]``.
        answer_mask: ``[B, L]`` bool, positions that may be masked and trained (never the prompt).
        mask_token_id: the model's mask token.
        padding_mask: ``[B, L]`` bool, the batch's trailing padding (part of the answer when it is
            supervised, filled with EOS and attended to; methods that exclude padding read it here).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    answer_mask: torch.Tensor
    mask_token_id: int
    padding_mask: torch.Tensor | None = None

    @property
    def targets(self) -> torch.Tensor:
        """``[B, L]`` gold ids on answer positions, ``-100`` elsewhere."""
        return self.input_ids.masked_fill(~self.answer_mask, -100)


@dataclass
class NoisedBatch:
    """What the model is trained on this step.

    Attributes:
        input_ids: ``[B, L]`` model input, mask tokens at the masked positions.
        loss_weights: ``[B, L]`` float, 0 for positions outside the loss.
        t: ``[B]`` masking ratio of each sequence (logged by band).
        normalization: default loss normalisation of the method (the config may override it).
        metrics: extra scalars to log, averaged over logging steps.
        reweight: optional one-pass selection. When set, ``loss_weights`` only marks the candidate
            positions (those scored in the training pass), and the trainer calls
            ``reweight(scores)`` with that pass's detached :class:`GoldScores` to get
            ``(final [B, L] weights, extra metrics)``: a method can select from the very forward
            it trains on, with no separate scoring pass (LIFT's approximate mode).
    """

    input_ids: torch.Tensor
    loss_weights: torch.Tensor
    t: torch.Tensor
    normalization: str = "sequence"
    metrics: dict = field(default_factory=dict)
    reweight: Callable[[GoldScores], tuple[torch.Tensor, dict]] | None = None

    @property
    def sequence_groups(self) -> dict[str, torch.Tensor]:
        """``{name: [B] bool}``: groups of sequences whose loss is logged separately (``loss_<name>``)."""
        return {}


# Scores the gold tokens of a noised input without gradient:
# scorer(noised_ids, targets, *, train_mode=True, rows=None) -> GoldScores; ``rows`` ([B] bool)
# restricts the pass to those sequences (zeros elsewhere).
Scorer = Callable[[torch.Tensor, torch.Tensor], GoldScores]


def time_weights(t: torch.Tensor, weighting: str) -> torch.Tensor:
    """Per-sequence loss weight: ``1 / t`` (the ELBO weight) or ``1`` (``"uniform"``). ``[B] -> [B]``."""
    if weighting == "inverse_t":
        return 1.0 / t
    if weighting == "uniform":
        return torch.ones_like(t)
    raise ValueError(f"loss_weighting must be 'inverse_t' or 'uniform', got {weighting!r}.")


class TokenWeightingCallback(TrainerCallback, ExportableState):
    """Base class: decides the masked positions and loss weights of each training micro-batch.

    Subclasses implement :meth:`noise`. Pass an instance in ``callbacks=[...]`` to
    ``DiffusionSFTTrainer`` to use it; without one the trainer builds the method named by
    ``DiffusionSFTConfig.token_weighting``.

    Args:
        seed: seed of the noise generator; ``None`` takes ``args.seed`` (offset by the process
            index, so data-parallel ranks draw different masks).
    """

    name = "base"

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.generator = torch.Generator()
        self._seeded = False

    # ---- the method ---------------------------------------------------------------------------
    def noise(self, batch: DiffusionBatch, *, scorer: Scorer, args) -> NoisedBatch:
        """Noise ``batch`` for one training step.

        Args:
            batch: the clean micro-batch.
            scorer: scores gold tokens of a noised input (no gradient) — LIFT's scoring pass.
            args: the ``DiffusionSFTConfig`` (``time_epsilon``, ``loss_weighting``, ...).
        """
        raise NotImplementedError

    # ---- generator and checkpoint state ------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if not self._seeded:
            seed = args.seed if self.seed is None else self.seed
            self.generator.manual_seed(int(seed) + 1_000_003 * args.process_index)
            self._seeded = True

    @property
    def generator_state(self) -> str:
        return base64.b64encode(self.generator.get_state().numpy().tobytes()).decode("ascii")

    @generator_state.setter
    def generator_state(self, value: str) -> None:
        raw = torch.frombuffer(bytearray(base64.b64decode(value)), dtype=torch.uint8)
        self.generator.set_state(raw.clone())
        self._seeded = True

    def state(self) -> dict:
        return {"args": self.state_args(), "attributes": {"generator_state": self.generator_state}}

    def state_args(self) -> dict:
        """Constructor arguments that recreate this callback (subclasses add theirs)."""
        return {"seed": self.seed}


class VanillaMasking(TokenWeightingCallback):
    """Vanilla masked-diffusion SFT (LLaDA): mask each answer token with probability ``t``.

    ``t ~ U(eps, 1)`` per sequence; the loss weight of a masked token is ``1 / t`` (or 1).
    """

    name = "vanilla"

    def noise(self, batch: DiffusionBatch, *, scorer: Scorer, args) -> NoisedBatch:
        device = batch.input_ids.device
        t = sample_times(batch.input_ids.size(0), eps=args.time_epsilon, generator=self.generator, device=device)
        return noise_at_times(batch, t, generator=self.generator, weighting=args.loss_weighting)


def noise_at_times(batch: DiffusionBatch, t: torch.Tensor, *, generator, weighting: str) -> NoisedBatch:
    """Vanilla noising at given per-sequence ratios ``t`` (``[B]``): shared by training and evaluation."""
    masked = mask_positions(batch.answer_mask, t, generator=generator)
    weights = masked.float() * time_weights(t, weighting)[:, None]
    ratio = masked.sum(1).float() / batch.answer_mask.sum(1).clamp(min=1)
    return NoisedBatch(
        input_ids=apply_mask(batch.input_ids, masked, batch.mask_token_id),
        loss_weights=weights,
        t=t,
        normalization="sequence",
        metrics={"mask_ratio": ratio.mean().item()},
    )
