"""Encoder masked LMs (BERT, ModernBERT) as masked diffusion LMs: what the causal-LM stack expects of them.

A masked LM is a masked diffusion LM's denoiser as it stands (bidirectional, a mask token, logits
aligned with the positions they predict; MDLM, Sahoo et al. 2024, trains exactly this). Three things
differ from the causal LMs TRL and the sampler are written for, and are handled here:

- the mask id lives in the tokenizer, not the config: :func:`tokenizer_mask_token_id`;
- TRL's ``SFTTrainer`` sets ``model.generation_config`` fields, which encoder models do not have:
  :func:`ensure_generation_config` gives them one built from their config;
- their head is more than one linear layer (dense, activation, norm, decoder), so TRL's fused chunked
  head would skip part of it: the facts say ``fused_head=False`` and gold-token scores are read from
  full logits (:func:`trl_lift.diffusion.scoring.gold_log_probs`); and they have no KV cache
  (:func:`supports_kv_cache`), so the sampler's cached modes refuse them.
"""

from __future__ import annotations

import inspect

from transformers import GenerationConfig

from .facts import unwrap_model


def tokenizer_mask_token_id(name_or_path: str, **hub) -> int | None:
    """The mask token id of the tokenizer saved with a checkpoint (``None`` if it has none or no tokenizer).

    Args:
        name_or_path: hub id or folder of the checkpoint.
        **hub: ``revision``, ``token``, ``cache_dir`` for ``AutoTokenizer.from_pretrained``.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False,
                                                  **{k: v for k, v in hub.items() if v is not None})
    except (OSError, ValueError):
        return None
    return tokenizer.mask_token_id


def ensure_generation_config(model) -> None:
    """Give a model without ``generation_config`` (an encoder) one built from its config, in place.

    TRL's ``SFTTrainer`` writes the pad / EOS ids into ``model.generation_config``; the diffusion
    sampler reads nothing from it.
    """
    base = unwrap_model(model)
    if getattr(base, "generation_config", None) is None:
        base.generation_config = GenerationConfig.from_model_config(base.config)


def supports_kv_cache(model) -> bool:
    """``True`` when the model's forward takes a KV cache (``cache`` / ``past_key_values``), under any wrapper."""
    parameters = inspect.signature(unwrap_model(model).forward).parameters
    return "cache" in parameters or "past_key_values" in parameters
