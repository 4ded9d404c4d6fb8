"""``lift_dlm``'s model_args: defaults (the LIFT paper's model and sampler) and checks made before loading.

``lm_eval --model lift_dlm --tasks aime24`` with no ``--model_args`` evaluates the paper's base model,
``GSAI-ML/LLaDA-8B-Instruct``, with the paper's sampler (preset ``lift_paper``: 256 tokens, blocks of 32,
128 steps, low-confidence remasking). A run that names no preset and no sampler setting gets
``lift_paper`` too, with a log line, rather than the sampler's bare defaults.

The model_args of :class:`~trl_lift.evaluation.lm_eval_model.LIFTDiffusionLM`:

    pretrained: hub id or folder of a LLaDA, Dream or native bidirectional checkpoint (default: the LIFT
        paper's ``GSAI-ML/LLaDA-8B-Instruct``).
    peft: a PEFT (LoRA) adapter folder or hub id, evaluated on top of the base model, unmerged.
    dtype: ``"auto"`` (bfloat16 on an accelerator, float32 on CPU), or a torch dtype name.
    load_in_4bit: quantise the base model with bitsandbytes (compute in ``dtype``).
    revision, mask_token_id: passed to :func:`trl_lift.load_diffusion_model`.
    mc_num: Monte-Carlo samples per likelihood request (>= 1); ``mc_estimator``: ``"time"`` or ``"count"``
        (:func:`trl_lift.evaluation.likelihood.estimate_elbo`); ``mc_batch_size``: sequences per
        likelihood forward pass (>= 1; default ``batch_size * (mc_num + 1)``).
    batch_size: prompts per sampler call (an int >= 1; ``"auto"`` is read as 1).
    max_gen_toks: cap on a request's ``max_gen_toks`` (>= 1; requests asking more are clamped, with a warning).
    max_length: longest sequence fed to the model (>= 2); ``None`` = ``config.max_position_embeddings``.
        Longer prompts and likelihood contexts lose their first tokens, with a warning.
    device: ``None`` = CUDA when available; under ``accelerate launch`` each process takes its own.
    seed: base of the per-request seeds.
    batch_stochastic: batch sampled decoding with one generator per batch (faster; outputs then
        depend on the batch composition). Default: such requests run one by one.
    add_bos_token: prepend the tokenizer's special tokens to prompts; ``None`` = the tokenizer's
        behaviour, except for text that already starts with the BOS token (chat templates).
    preset: a named protocol's sampler settings (:mod:`trl_lift.generation.presets`); ``**sampler`` overrides
        them. With neither a preset nor ``**sampler``: ``lift_paper``.
    **sampler: any :class:`trl_lift.DiffusionGenerationConfig` field, overriding every request.
"""

from __future__ import annotations

import logging

from ..checks import check_range
from ..generation.config import SAMPLER_FIELDS
from .likelihood import ESTIMATORS

logger = logging.getLogger(__name__)

DEFAULT_PRETRAINED = "GSAI-ML/LLaDA-8B-Instruct"
DEFAULT_PRESET = "lift_paper"


def default_preset(preset: str | None, sampler: dict) -> str | None:
    """``preset``, or ``lift_paper`` when neither a preset nor any sampler setting is given (logged)."""
    if preset is None and not sampler:
        logger.info("lift_dlm: no preset and no sampler model_args given: decoding with preset %r (the LIFT paper's "
                    "sampler); pass preset=NAME or sampler model_args (block_length=..., steps=...) to change it.",
                    DEFAULT_PRESET)
        return DEFAULT_PRESET
    return preset


def check_model_args(*, sampler: dict, mc_estimator: str, batch_size, **ranged) -> int:
    """Refuse unknown or out-of-range model_args before anything loads. Returns ``batch_size`` as an int.

    ``ranged``: ``mc_num``, ``mc_batch_size``, ``max_gen_toks`` (>= 1) and ``max_length`` (>= 2), ``None`` allowed.
    """
    unknown = sorted(set(sampler) - set(SAMPLER_FIELDS))
    if unknown:
        raise TypeError(f"lift_dlm got unknown model_args {unknown}; sampler settings are {list(SAMPLER_FIELDS)}.")
    if mc_estimator not in ESTIMATORS:
        raise ValueError(f"mc_estimator must be one of {ESTIMATORS}, got {mc_estimator!r}.")
    if isinstance(batch_size, str):
        logger.warning("lift_dlm: batch_size=%r is read as 1 (no automatic batch size search).", batch_size)
        batch_size = int(batch_size) if batch_size.isdigit() else 1
    lows = {"mc_num": 1, "mc_batch_size": 1, "max_gen_toks": 1, "max_length": 2}
    for name, value in (("batch_size", batch_size), *ranged.items()):
        if value is not None:
            check_range(f"lift_dlm's {name}", value, lows.get(name, 1), integer=True)
    return int(batch_size)
