"""The token-weighting protocol of the diffusion trainer, and the registry of its methods.

A method decides, for every answer position of a micro-batch, whether it is masked in the input
and with what weight it enters the loss. It does so in two pure stages, and never calls the model:

1. ``plan(batch) -> NoisePlan``: draw the noise; say which input to score, which targets and
   rows need scores, and whether they come from a separate scoring pass or from the training
   pass itself (``one_pass``).
2. ``finish(plan, scores) -> NoisedBatch``: turn the scores (``None`` when none were asked for)
   into the training input and the loss weights.

The trainer runs every forward pass in between. Methods are dataclasses registered by name
(``@register("lift")``), configured at construction (the time epsilon and the loss weighting
included) and validated once; each is also a ``TrainerCallback`` that owns a noise generator, saved in checkpoints,
for use outside the trainer. In training the trainer hands each batch per-example seeds
(:mod:`trl_lift.diffusion.example_noise`, keyed by the seed, the step and each sequence's tokens), so
noise does not depend on batch position, rank or packing, and a resumed run draws what an
uninterrupted one would.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..checks import check_field_choices, check_range
from ..diffusion.example_noise import RowSeeds
from ..diffusion.masking import sample_times
from ..diffusion.scoring import GoldScores

LOSS_WEIGHTINGS = ("inverse_t", "uniform")


@dataclass
class DiffusionBatch:
    """A clean micro-batch, as a token-weighting method sees it.

    Attributes:
        input_ids: ``[B, L]`` clean tokens ``x0`` (trailing padding filled with EOS when supervised).
        attention_mask: ``[B, L]``.
        answer_mask: ``[B, L]`` bool, positions that may be masked and trained (never the prompt).
        mask_token_id: the model's mask token.
        padding_mask: ``[B, L]`` bool, the batch's trailing padding (part of the answer when it is
            supervised, filled with EOS and attended to; methods that exclude padding read it here).
        noise: per-example seeds (the trainer's): when set, every draw of the method comes from them
            instead of the method's generator, so a sequence's noise does not depend on its batch.
        layout: the trainer's :class:`~trl_lift.training.packing.PackedLayout` when the rows are the
            documents of a packed batch (the methods ignore it; the forward passes run packed).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    answer_mask: torch.Tensor
    mask_token_id: int
    padding_mask: torch.Tensor | None = None
    noise: RowSeeds | None = None
    layout: object | None = None

    @property
    def padding(self) -> torch.Tensor:
        """``[B, L]`` bool trailing padding (the attention mask's zeros when the trainer gave none)."""
        return self.padding_mask.bool() if self.padding_mask is not None else self.attention_mask == 0

    def targets_at(self, positions: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` gold ids at ``positions`` (``[B, L]`` bool), ``-100`` elsewhere."""
        return self.input_ids.masked_fill(~positions, -100)


@dataclass
class NoisePlan:
    """A method's noise for one micro-batch, before the model has been asked anything.

    Attributes:
        input_ids: ``[B, L]`` noised input: the one to score, and with ``one_pass`` the one trained on.
        t: ``[B]`` masking ratio of each sequence.
        score_targets: ``[B, L]`` gold ids to score (``-100`` elsewhere); ``None`` when the method
            needs no scores (``finish`` then gets ``None``).
        score_rows: ``[B]`` bool, the rows whose scores are used (others may be left unscored and
            read as zeros); ``None`` = every row.
        train_mode: run the scoring pass in training mode (dropout on), as the LIFT reference does.
        one_pass: no separate scoring pass: the trainer trains on ``input_ids`` with ``score_targets``
            and calls ``finish`` with that pass's detached scores (the loss then uses the same pass).
        state: the method's own tensors, carried to ``finish``.
    """

    input_ids: torch.Tensor
    t: torch.Tensor
    score_targets: torch.Tensor | None = None
    score_rows: torch.Tensor | None = None
    train_mode: bool = True
    one_pass: bool = False
    state: dict = field(default_factory=dict)


@dataclass
class NoisedBatch:
    """What the model is trained on this step.

    Attributes:
        input_ids: ``[B, L]`` model input, mask tokens at the masked positions.
        loss_weights: ``[B, L]`` float, 0 for positions outside the loss.
        t: ``[B]`` masking ratio of each sequence (logged by band).
        normalization: default loss normalisation of the method (the config may override it).
        metrics: extra scalars to log, averaged over logging steps.
        groups: ``{name: [B] bool}``, groups of sequences whose loss is logged separately (``loss_<name>``).
    """

    input_ids: torch.Tensor
    loss_weights: torch.Tensor
    t: torch.Tensor
    normalization: str = "sequence"
    metrics: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)


def time_weights(t: torch.Tensor, weighting: str) -> torch.Tensor:
    """Per-sequence loss weight: ``1 / t`` (the ELBO weight) or ``1`` (``"uniform"``). ``[B] -> [B]``."""
    if weighting == "inverse_t":
        return 1.0 / t
    if weighting == "uniform":
        return torch.ones_like(t)
    raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}.")


# ---- the registry -------------------------------------------------------------------------------------
METHODS: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a token-weighting method selectable as ``token_weighting=name``."""

    def decorator(cls):
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorator


@dataclass(eq=False)
class TokenWeightingCallback(TrainerCallback, ExportableState):
    """Base of the token-weighting methods (vanilla, LIFT, GIFT, CART): the protocol and the generator.

    Pass an instance in ``callbacks=[...]`` to ``DiffusionSFTTrainer`` to use it; without one the
    trainer builds the method named by ``DiffusionSFTConfig.token_weighting``. Subclasses add their
    settings as dataclass fields (with ``metadata={"help": ..., "choices": ...}``; the trainer's
    config exposes each as ``<name>_<field>``) and implement :meth:`plan` and :meth:`finish`.
    """

    time_epsilon: float = field(
        default=1e-3, metadata={"help": "Lower bound eps of the masking ratio t = (1 - eps) u + eps. Range [0, 1)."}
    )
    loss_weighting: str = field(
        default="inverse_t",
        metadata={"help": "Weight of a masked token: 'inverse_t' (1/t, the ELBO weight) or 'uniform' (1).",
                  "choices": LOSS_WEIGHTINGS},
    )
    seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the noise: in the trainer, of the per-example seeds (None = args.seed, the "
                  "same on every process); outside it, of the method's generator."},
    )

    name = "base"
    trains_padding = True  # supervised trailing padding (EOS) is masked and trained like the answer

    def __post_init__(self):
        check_range("time_epsilon", self.time_epsilon, 0.0, 1.0, high_open=True)
        check_field_choices(self)
        self.generator = torch.Generator()
        self._seeded = False

    @classmethod
    def setting_fields(cls):
        """The method's own settings: its dataclass fields beyond the shared ones."""
        shared = {f.name for f in fields(TokenWeightingCallback)}
        return [f for f in fields(cls) if f.name not in shared]

    # ---- the method -------------------------------------------------------------------------------
    def plan(self, batch: DiffusionBatch) -> NoisePlan:
        """Draw this step's noise for ``batch`` (stage 1)."""
        raise NotImplementedError

    def finish(self, plan: NoisePlan, scores: GoldScores | None) -> NoisedBatch:
        """The training input and loss weights, from the plan and the scores it asked for (stage 2).

        Methods that need no scores finish in :meth:`plan`, leaving the result as ``state["noised"]``.
        """
        return plan.state["noised"]

    def _rng(self, batch: DiffusionBatch):
        """The batch's per-example seeds when the trainer gave them, else the method's generator."""
        return batch.noise if batch.noise is not None else self.generator

    def _times(self, batch: DiffusionBatch) -> torch.Tensor:
        """``[B]`` masking ratios ``t ~ U(eps, 1)`` (the first draw of the step)."""
        x0 = batch.input_ids
        return sample_times(x0.size(0), eps=self.time_epsilon, generator=self._rng(batch), device=x0.device)

    # ---- generator and checkpoint state -------------------------------------------------------------
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
        return {"args": {f.name: getattr(self, f.name) for f in fields(self)},
                "attributes": {"generator_state": self.generator_state}}


def build_method(name: str, args) -> TokenWeightingCallback:
    """The method registered under ``name``, configured from a ``DiffusionSFTConfig``.

    Each method setting ``<field>`` is read from the config field ``<name>_<field>``; the time
    epsilon and the loss weighting from ``time_epsilon`` / ``loss_weighting``.
    """
    cls = METHODS[name]
    settings = {f.name: getattr(args, f"{name}_{f.name}") for f in cls.setting_fields()}
    return cls(time_epsilon=args.time_epsilon, loss_weighting=args.loss_weighting, **settings)
