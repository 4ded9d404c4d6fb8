"""trl-lift: diffusion language models in the Hugging Face training and evaluation stack.

LIFT (Learnability-Informed Fine-Tuning, Parashar et al., ICML 2026) is its flagship method.
"""

from .config import DiffusionSFTConfig
from .loading import load_diffusion_model
from .losses import GoldScores, diffusion_loss, gold_log_probs
from .model_facts import DiffusionFacts, get_diffusion_facts, is_bidirectional
from .token_weighting import DiffusionBatch, NoisedBatch, TokenWeightingCallback, VanillaMasking
from .trainer import DiffusionSFTTrainer

__version__ = "0.1.0"

__all__ = [
    "DiffusionBatch",
    "DiffusionFacts",
    "DiffusionSFTConfig",
    "DiffusionSFTTrainer",
    "GoldScores",
    "NoisedBatch",
    "TokenWeightingCallback",
    "VanillaMasking",
    "diffusion_loss",
    "get_diffusion_facts",
    "gold_log_probs",
    "is_bidirectional",
    "load_diffusion_model",
]
