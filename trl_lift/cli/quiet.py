"""Warnings the command line silences: other libraries' notices that say nothing about the user's run.

Applied by ``trl-lift`` (an application's choice), never on ``import trl_lift``; the loggers also when
lm-eval registers ``lift_dlm``. Each entry names
why it is noise; everything else is left as it is.
"""

from __future__ import annotations

import logging
import re
import warnings

# (category, message regex): raised inside TRL / transformers / torch on every run, whatever the user sets.
WARNINGS = [
    # TRL reads transformers' deprecated alias itself (trl.models.utils); nothing the user can change.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # TrainingArguments pins memory by default; on a CPU-only machine torch says it will not.
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
]
# Loggers whose warnings concern an optional kernel, not the run: bitsandbytes announces at import, on
# CPUs with AVX-512 BF16, that the `kernels` package is missing for a 4-bit CPU path no run of ours takes.
LOGGERS = ["bitsandbytes.backends.cpu.ops"]


# PEFT reads the base model's config.json with the native config class when it saves an adapter: for a
# LLaDA / Dream checkpoint, transformers then notes that a `llada` / `Dream` config fills a Llama / Qwen2 one,
# which is exactly how trl-lift loads them (trl_lift/models/native_configs.py).
NATIVE_CONFIG_NOTE = re.compile(r"model of type `(llada|Dream|dream)` to instantiate a model of type `(llama|qwen2)`")


class _DropNativeConfigNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not NATIVE_CONFIG_NOTE.search(record.getMessage())


def silence_known_loggers() -> None:
    """Only the loggers (also applied when lm-eval registers ``lift_dlm``: the stock command's runs)."""
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    config_logger = logging.getLogger("transformers.configuration_utils")
    if not any(isinstance(f, _DropNativeConfigNote) for f in config_logger.filters):
        config_logger.addFilter(_DropNativeConfigNote())


def silence_known_noise() -> None:
    for category, message in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    silence_known_loggers()
