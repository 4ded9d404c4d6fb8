"""trl-lift: diffusion language models in the Hugging Face training and evaluation stack.

LIFT (Learnability-Informed Fine-Tuning, Parashar et al., ICML 2026) is its flagship method.

Public names are imported on first use (PEP 562), so that light users (the lm-eval task graders,
the lm-eval start-up hook) do not pay for importing TRL.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DiffusionSFTConfig": "config",
    "DiffusionSFTTrainer": "trainer",
    "load_diffusion_model": "loading",
    "load_diffusion_tokenizer": "loading",
    "DiffusionFacts": "model_facts",
    "get_diffusion_facts": "model_facts",
    "is_bidirectional": "model_facts",
    "GoldScores": "losses",
    "diffusion_loss": "losses",
    "gold_log_probs": "losses",
    "DiffusionBatch": "token_weighting",
    "NoisedBatch": "token_weighting",
    "TokenWeightingCallback": "token_weighting",
    "VanillaMasking": "token_weighting",
    "LIFTCallback": "lift",
    "GIFTMasking": "baselines",
    "CARTWeighting": "baselines",
    "DiffusionGenerationConfig": "sampling",
    "DiffusionGenerateOutput": "sampling",
    "diffusion_generate": "sampling",
    "LIFTDiffusionLM": "lm_eval_model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trl_lift' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
