"""``DiffusionSFTConfig``: TRL's ``SFTConfig`` plus the masked-diffusion objective's settings.

A method's settings are the method's own dataclass fields (:mod:`trl_lift.methods`), exposed here
as ``<method>_<field>`` with the method's default, help text and choices: they are written once.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

import torch
from trl import SFTConfig

from ..checks import check_field_choices, check_range, require
from ..diffusion.losses import NORMALIZATIONS
from ..methods import METHODS, CARTWeighting, GIFTMasking, LIFTCallback, TokenWeightingCallback, build_method


def _bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return hasattr(torch, "xpu") and torch.xpu.is_available()


def method_field(method: type, name: str):
    """A config field mirroring the method setting ``name``: same default, help text and choices."""
    (source,) = [f for f in fields(method) if f.name == name]
    assert source.default is not MISSING, f"{method.__name__}.{name} needs a default"
    return field(default=source.default, metadata=dict(source.metadata))


# Fields of this config beyond SFTConfig's, whose "choices" metadata is checked.
_OWN_FIELDS: list[str] = []


@dataclass
class DiffusionSFTConfig(SFTConfig):
    """Configuration of :class:`~trl_lift.DiffusionSFTTrainer`.

    Everything of TRL's ``SFTConfig`` applies, with these differences: ``bf16`` defaults to what the
    hardware supports (``False`` on a CPU), callback states are restored on resume, and ``packing`` /
    ``padding_free`` pack whole documents that each attend only to themselves
    (:mod:`trl_lift.training.packing`; ``supervise_padding`` is then off: there is no padding).

    The LIFT reference recipe's padding (every sequence padded to 4096 with EOS, the padding trained):
    ``max_length=4096, pad_to_max_length=True``.
    """

    token_weighting: str = field(
        default="vanilla",
        metadata={
            "help": "Which tokens are masked and how they are weighted: 'vanilla' (LLaDA's masked-diffusion SFT), "
            "'lift' (LIFT), 'gift' or 'cart' (baselines). A TokenWeightingCallback passed to the trainer overrides it.",
            "choices": tuple(METHODS),
        },
    )
    lift: bool = field(
        default=False,
        metadata={"help": "Shortcut for token_weighting='lift' (Learnability-Informed Fine-Tuning); after "
                  "construction it reads True exactly when token_weighting is 'lift'."},
    )
    lift_bands: int = method_field(LIFTCallback, "bands")
    lift_rho_rule: str = method_field(LIFTCallback, "rho_rule")
    lift_rho_floor: float = method_field(LIFTCallback, "rho_floor")
    lift_component_scope: str = method_field(LIFTCallback, "component_scope")
    lift_policy: str = method_field(LIFTCallback, "policy")
    lift_components: str = method_field(LIFTCallback, "components")
    lift_approximate: bool = method_field(LIFTCallback, "approximate")
    lift_scoring_mode: str = method_field(LIFTCallback, "scoring_mode")
    gift_scoring_mode: str = method_field(GIFTMasking, "scoring_mode")
    cart_p: float = method_field(CARTWeighting, "p")
    cart_variant: str = method_field(CARTWeighting, "variant")
    loss_normalization: str | None = field(
        default=None,
        metadata={
            "help": "Denominator of the loss: 'sequence' (each sequence's answer length, then the mean over sequences; "
            "LLaDA), 'micro_batch' (the micro-batch's answer tokens, then the mean over micro-batches and devices; the "
            "LIFT reference), 'batch' (answer tokens of the whole optimizer batch, over accumulation steps and "
            "devices; TRL's token-level convention) or 'masked' (tokens in the loss; GIFT). None = the method's own "
            "(vanilla: 'sequence', lift: 'micro_batch', gift: 'masked', cart: 'micro_batch', or 'masked' for "
            "cart_variant='dream').",
            "choices": (None, *NORMALIZATIONS),
        },
    )
    loss_weighting: str = method_field(TokenWeightingCallback, "loss_weighting")
    supervise_padding: bool | None = field(
        default=None,
        metadata={
            "help": "Fill trailing padding with EOS and train it as part of the answer (LLaDA's convention: the model "
            "learns where the answer ends). None = the model family's default (True for LLaDA, False otherwise), or "
            "True with pad_to_max_length."
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Pad every sequence to max_length (with EOS) and supervise the padding: the LIFT and LLaDA "
            "reference recipe (max_length=4096). Without it TRL pads each batch to its longest sequence, so at one "
            "sequence per device no padding is ever trained."
        },
    )
    time_epsilon: float = method_field(TokenWeightingCallback, "time_epsilon")
    eval_timesteps: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate the loss at this many (an integer >= 1) fixed masking ratios (midpoints of equal cells "
            "of [eps, 1]) per batch and average them, for a low-variance, deterministic evaluation loss. None = one "
            "random t per sequence. Evaluation masks always come from per-example seeds keyed by `eval_seed`, and the "
            "evaluation loss is the vanilla masked-diffusion loss whatever the training method, so that runs compare."
        },
    )
    eval_seed: int = field(
        default=1234,
        metadata={"help": "Seed of the evaluation masks (with each sequence's tokens): every evaluation draws the "
                  "same masks, so evaluations are comparable."},
    )
    restore_callback_states_from_checkpoint: bool = field(
        default=True,
        metadata={"help": "Restore callback states (the token-weighting noise generator) when resuming."},
    )

    def __post_init__(self):
        if self.bf16 is None and not self.fp16:
            self.bf16 = _bf16_supported()
        if self.lift:
            require(self.token_weighting in ("vanilla", "lift"),
                    f"lift=True conflicts with token_weighting={self.token_weighting!r}; set only one.")
            self.token_weighting = "lift"
        check_field_choices(self, _OWN_FIELDS)
        self.lift = self.token_weighting == "lift"
        self._refuse_settings_of_other_methods()
        try:  # the method validates its own settings, now, once
            build_method(self.token_weighting, self)
        except ValueError as err:  # its messages start with the setting's name: give the config field's
            raise ValueError(f"{self.token_weighting}_{err}") from None
        if self.eval_timesteps is not None:
            check_range("eval_timesteps", self.eval_timesteps, 1, integer=True)
        if self.packing or self.padding_free:
            self._check_packing()
        if self.pad_to_max_length:
            require(self.max_length is not None, "pad_to_max_length needs max_length (e.g. max_length=4096).")
            require(self.pad_to_multiple_of in ("auto", None, self.max_length),
                    f"pad_to_max_length pads to max_length={self.max_length}; drop pad_to_multiple_of="
                    f"{self.pad_to_multiple_of!r}.")
            self.pad_to_multiple_of = self.max_length
            if self.supervise_padding is None:
                self.supervise_padding = True
        # TRL's default gradient_checkpointing=True under transformers' newer name: the old name (a deprecated
        # alias where activation_checkpointing exists) would warn on every config, whatever the user set.
        if getattr(self, "activation_checkpointing", False) is None and self.gradient_checkpointing is not None:
            self.activation_checkpointing = self.gradient_checkpointing
        super().__post_init__()

    def _check_packing(self) -> None:
        """Packing keeps each document whole and apart (trl_lift.training.packing): refuse what would not."""
        require(not (self.packing and self.packing_strategy == "wrapped"),
                "packing_strategy='wrapped' cuts documents at row ends and restarts no positions, so packed documents "
                "would attend to each other; use packing_strategy='bfd' (the default).")
        require(not self.pad_to_max_length,
                "pad_to_max_length pads every sequence, packing removes the padding: set one of them.")
        require(self.supervise_padding is not True,
                "supervise_padding trains the trailing padding, and a packed batch has none: set "
                "supervise_padding=None (or False) with packing / padding_free.")
        self.supervise_padding = False

    def _refuse_settings_of_other_methods(self) -> None:
        """A ``<method>_*`` setting changed from its default while another method trains is a mistake."""
        for name, method in METHODS.items():
            if name == self.token_weighting:
                continue
            changed = [f"{name}_{f.name}={getattr(self, f'{name}_{f.name}')!r}" for f in method.setting_fields()
                       if getattr(self, f"{name}_{f.name}") != f.default]
            if changed:
                hint = "lift=True" if name == "lift" else f"token_weighting={name!r}"
                raise ValueError(
                    f"{', '.join(changed)} set, but token_weighting={self.token_weighting!r}: these settings only "
                    f"apply to {name}. Set {hint}, or drop them."
                )


_OWN_FIELDS.extend(f.name for f in fields(DiffusionSFTConfig) if f.name not in {g.name for g in fields(SFTConfig)})
