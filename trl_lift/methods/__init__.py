"""Token-weighting methods: vanilla masked diffusion, LIFT and the baselines GIFT and CART.

Importing this package registers every method (:data:`METHODS`); :func:`build_method` makes the
one a ``DiffusionSFTConfig`` names.
"""

from .base import (
    METHODS,
    DiffusionBatch,
    NoisedBatch,
    NoisePlan,
    TokenWeightingCallback,
    build_method,
    register,
    time_weights,
)
# Registration order is the order the methods are listed in (vanilla first, then LIFT, then the baselines).
from .vanilla import VanillaMasking, noise_at_times  # noqa: I001
from .lift import LIFTCallback
from .gift import GIFTMasking
from .cart import CARTWeighting

__all__ = [
    "METHODS",
    "CARTWeighting",
    "DiffusionBatch",
    "GIFTMasking",
    "LIFTCallback",
    "NoisePlan",
    "NoisedBatch",
    "TokenWeightingCallback",
    "VanillaMasking",
    "build_method",
    "noise_at_times",
    "register",
    "time_weights",
]
