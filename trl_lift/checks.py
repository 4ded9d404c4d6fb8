"""Validation of settings: one way to refuse a bad value, with a message that names the fix.

Every settings object of the library (the trainer's config, the token-weighting methods, the
sampler's config) validates through these helpers, once, when it is built.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterable


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def check_choice(name: str, value: Any, choices: Iterable) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    choices = tuple(choices)
    require(value in choices, f"{name} must be one of {choices}, got {value!r}.")


def check_range(name: str, value: Any, low=None, high=None, *, low_open: bool = False, high_open: bool = False,
                integer: bool = False) -> None:
    """Refuse ``value`` outside ``[low, high]`` (an end is open when ``*_open``; ``None`` = unbounded)."""
    if integer:
        require(isinstance(value, int) and not isinstance(value, bool), f"{name} must be an integer, got {value!r}.")
    else:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(is_number, f"{name} must be a number, got {value!r}.")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")


def check_field_choices(settings, names: Iterable[str] | None = None) -> None:
    """Check every dataclass field of ``settings`` (of ``names`` only, if given) that lists ``"choices"``."""
    names = None if names is None else set(names)
    for f in fields(settings):
        choices = f.metadata.get("choices")
        if choices is not None and (names is None or f.name in names):
            check_choice(f.name, getattr(settings, f.name), choices)
