"""Tiny checkpoints of the other supported families, built offline: causal Llama / Qwen2 and BERT / ModernBERT.

The support matrix (``tests/test_support_matrix.py``) converts the causal ones with
:func:`trl_lift.models.conversion.autoregressive_to_diffusion` and trains and samples every family;
LLaDA and Dream come from :mod:`trl_lift.testing`.
"""

from __future__ import annotations

import os

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    LlamaConfig,
    LlamaForCausalLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from .testing import _round_up, make_tiny_tokenizer

CAUSAL = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
MASKED = {"bert": (BertConfig, BertForMaskedLM), "modernbert": (ModernBertConfig, ModernBertForMaskedLM)}


def _size(tokenizer, hidden_size: int, layers: int, heads: int, intermediate: int) -> dict:
    return {"vocab_size": _round_up(len(tokenizer)), "hidden_size": hidden_size, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": intermediate, "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def make_tiny_causal(path: str, architecture: str = "llama", tokenizer=None, *, seed: int = 0, hidden_size=64,
                     layers=2, heads=4, intermediate=128):
    """Save a tiny autoregressive (causal) ``llama`` or ``qwen2`` checkpoint and a tokenizer without a mask token.

    Returns ``(model, tokenizer)``, the model in eval mode.
    """
    config_class, model_class = CAUSAL[architecture]
    tokenizer = tokenizer or make_tiny_tokenizer("dream", with_mask=False)
    config = config_class(**_size(tokenizer, hidden_size, layers, heads, intermediate), num_key_value_heads=heads,
                          tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


def make_tiny_masked_lm(path: str, architecture: str = "bert", tokenizer=None, *, seed: int = 0, hidden_size=64,
                        layers=2, heads=4, intermediate=128):
    """Save a tiny ``bert`` or ``modernbert`` masked LM and its tokenizer (which has a mask token).

    The config holds no ``mask_token_id``, as published masked-LM checkpoints: the loader reads the
    tokenizer's mask token. Returns ``(model, tokenizer)``, the model in eval mode.
    """
    config_class, model_class = MASKED[architecture]
    tokenizer = tokenizer or make_tiny_tokenizer("dream")
    extra = {}
    if architecture == "modernbert":
        extra = {"cls_token_id": tokenizer.bos_token_id, "sep_token_id": tokenizer.eos_token_id,
                 "global_attn_every_n_layers": 1, "tie_word_embeddings": False}
    config = config_class(**_size(tokenizer, hidden_size, layers, heads, intermediate), **extra)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer
