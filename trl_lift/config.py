"""``DiffusionSFTConfig``: TRL's ``SFTConfig`` plus the masked-diffusion objective's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import SFTConfig

TOKEN_WEIGHTINGS = ("vanilla", "lift", "gift", "cart")


def _bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return hasattr(torch, "xpu") and torch.xpu.is_available()


@dataclass
class DiffusionSFTConfig(SFTConfig):
    """Configuration of :class:`~trl_lift.DiffusionSFTTrainer`.

    Everything of TRL's ``SFTConfig`` applies, with these differences: ``bf16`` defaults to what the
    hardware supports (``False`` on a CPU), callback states are restored on resume (the noise
    generator), and ``packing`` / ``padding_free`` are refused (packed documents would attend to each
    other through bidirectional attention).
    """

    token_weighting: str = field(
        default="vanilla",
        metadata={
            "help": "Which tokens are masked and how they are weighted: 'vanilla' (LLaDA's masked-diffusion SFT), "
            "'lift' (LIFT), 'gift' or 'cart' (baselines). A TokenWeightingCallback passed to the trainer overrides it."
        },
    )
    lift: bool = field(
        default=False,
        metadata={"help": "Shortcut for token_weighting='lift': Learnability-Informed Fine-Tuning."},
    )
    lift_bands: int = field(
        default=3,
        metadata={"help": "LIFT: number of time bands H (>= 2). t < 1/H trains Bottom-K, t > 1 - 1/H Top-K, vanilla "
                  "between (boundaries included). 2 = LIFT-2 (Top-K for t >= 0.5, else Bottom-K)."},
    )
    lift_rho_rule: str = field(
        default="reference",
        metadata={"help": "LIFT: extra ratio rho. 'reference' (U(0.1, 1 - t0) when 1 - t0 > 0.1, else U(0, 1 - t0); "
                  "the reference code) or 'paper' (U(0, 1 - t), the paper's figure)."},
    )
    lift_component_scope: str = field(
        default="sequence",
        metadata={"help": "LIFT: choose the component per 'sequence' (default; equals the reference at one sequence "
                  "per device) or once per micro-batch from the mean t ('batch', the reference's rule)."},
    )
    lift_policy: str = field(
        default="time",
        metadata={"help": "LIFT: component policy. 'time' (LIFT's band rule), 'random' (uniform over the "
                  "components, ignoring t: a control) or 'reversed' (Top-K at small t, Bottom-K at large t)."},
    )
    lift_components: str = field(
        default="both",
        metadata={"help": "LIFT: 'both', 'top_only' or 'bottom_only' (the disabled component's band trains vanilla)."},
    )
    lift_approximate: bool = field(
        default=False,
        metadata={"help": "LIFT: one pass, no reveal: train on the superset input, select the kept tokens from that "
                  "pass's own (detached) log-probs and restrict the loss to them. Cheaper, less faithful."},
    )
    lift_scoring_mode: str = field(
        default="train",
        metadata={"help": "LIFT: run the scoring pass in 'train' mode (dropout on; the reference) or 'eval' mode."},
    )
    gift_scoring_mode: str = field(
        default="train",
        metadata={"help": "GIFT: mode of the entropy pass ('train' or 'eval')."},
    )
    cart_p: float = field(
        default=0.1,
        metadata={"help": "CART: geometric decay p in (0, 1] of the context-adaptive weights."},
    )
    cart_inverse_t: bool = field(
        default=False,
        metadata={"help": "CART: multiply the CART weight by 1/t (as in Dream, it replaces 1/t by default)."},
    )
    loss_normalization: str | None = field(
        default=None,
        metadata={
            "help": "Denominator of the loss: 'sequence' (each sequence's answer length, then the mean over "
            "sequences; LLaDA), 'batch' (answer tokens of the batch, over accumulation steps and devices; LIFT "
            "reference, d1) or 'masked' (tokens in the loss; GIFT). None = the method's own (vanilla: 'sequence', "
            "lift: 'batch', gift: 'masked', cart: 'sequence')."
        },
    )
    loss_weighting: str = field(
        default="inverse_t",
        metadata={"help": "Weight of a masked token: 'inverse_t' (1/t, the ELBO weight) or 'uniform' (1)."},
    )
    supervise_padding: bool | None = field(
        default=None,
        metadata={
            "help": "Fill trailing padding with EOS and train it as part of the answer (LLaDA's convention: the model "
            "learns where the answer ends). None = the model family's default (True for LLaDA, False otherwise). Pad "
            "to a fixed length with `pad_to_multiple_of` to reproduce LLaDA's fixed-length recipe."
        },
    )
    time_epsilon: float = field(
        default=1e-3,
        metadata={"help": "Lower bound eps of the masking ratio t = (1 - eps) u + eps, u ~ U(0, 1). Range [0, 1)."},
    )
    eval_timesteps: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate the loss at this many fixed masking ratios (midpoints of equal cells of [eps, 1]) per "
            "batch and average them, for a low-variance, deterministic evaluation loss. None = one random t per "
            "sequence. Evaluation masks always come from a generator reset to `eval_seed`, and the evaluation loss is "
            "the vanilla masked-diffusion loss whatever the training method, so that runs compare."
        },
    )
    eval_seed: int = field(
        default=1234,
        metadata={"help": "Seed of the evaluation masks, reset at every evaluation so evaluations are comparable."},
    )
    restore_callback_states_from_checkpoint: bool = field(
        default=True,
        metadata={"help": "Restore callback states (the token-weighting noise generator) when resuming."},
    )

    def __post_init__(self):
        if self.bf16 is None and not self.fp16:
            self.bf16 = _bf16_supported()
        if self.lift:
            if self.token_weighting not in ("vanilla", "lift"):
                raise ValueError(f"lift=True conflicts with token_weighting={self.token_weighting!r}; set only one.")
            self.token_weighting = "lift"
        if self.token_weighting not in TOKEN_WEIGHTINGS:
            raise ValueError(f"token_weighting must be one of {TOKEN_WEIGHTINGS}, got {self.token_weighting!r}.")
        if self.loss_normalization not in (None, "sequence", "batch", "masked"):
            raise ValueError(
                f"loss_normalization must be 'sequence', 'batch', 'masked' or None, got {self.loss_normalization!r}."
            )
        if self.loss_weighting not in ("inverse_t", "uniform"):
            raise ValueError(f"loss_weighting must be 'inverse_t' or 'uniform', got {self.loss_weighting!r}.")
        if not 0.0 <= self.time_epsilon < 1.0:
            raise ValueError(f"time_epsilon must be in [0, 1), got {self.time_epsilon}.")
        if self.eval_timesteps is not None and self.eval_timesteps < 1:
            raise ValueError(f"eval_timesteps must be a positive integer or None, got {self.eval_timesteps}.")
        if self.packing or self.padding_free:
            raise ValueError(
                "packing / padding_free are not supported by DiffusionSFTTrainer yet: with bidirectional attention the "
                "packed documents would attend to each other. Set packing=False and padding_free=False."
            )
        super().__post_init__()
