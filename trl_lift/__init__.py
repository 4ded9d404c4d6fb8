"""trl-lift: diffusion language models in the Hugging Face training and evaluation stack.

LIFT (Learnability-Informed Fine-Tuning, Parashar et al., ICML 2026) is its flagship method.
The package, by concern: ``models`` (facts, loading) -> ``diffusion`` (the maths) -> ``methods``
(token weighting) -> ``training`` (config, trainer); ``generation`` (the sampler) -> ``evaluation``
(likelihood, lm-eval model, graders).

Public names are imported on first use (PEP 562), so that light users (the lm-eval task graders,
the lm-eval start-up hook) do not pay for importing TRL.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DiffusionSFTConfig": "training.config",
    "DiffusionSFTTrainer": "training.trainer",
    "load_diffusion_model": "models.loading",
    "load_diffusion_tokenizer": "models.loading",
    "autoregressive_to_diffusion": "models.conversion",
    "DiffusionFacts": "models.facts",
    "get_diffusion_facts": "models.facts",
    "is_bidirectional": "models.facts",
    "GoldScores": "diffusion.scoring",
    "gold_log_probs": "diffusion.scoring",
    "diffusion_loss": "diffusion.losses",
    "DiffusionBatch": "methods",
    "NoisePlan": "methods",
    "NoisedBatch": "methods",
    "TokenWeightingCallback": "methods",
    "VanillaMasking": "methods",
    "LIFTCallback": "methods",
    "GIFTMasking": "methods",
    "CARTWeighting": "methods",
    "DiffusionGenerationConfig": "generation.config",
    "DiffusionGenerateOutput": "generation.sampler",
    "diffusion_generate": "generation.sampler",
    "LIFTDiffusionLM": "evaluation.lm_eval_model",
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
