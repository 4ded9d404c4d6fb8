"""Tiny LLaDA- and Dream-format checkpoints and tokenizers, built offline in milliseconds.

Used by the tests, the quickstart job and the benchmarks: seeded random weights written under the
checkpoints' real key names and config fields (../shared/docs/models.md), and a byte-level BPE
tokenizer trained on the fly with the families' special tokens and a chat template.
"""

from __future__ import annotations

import json
import math
import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from .models.native_configs import LLADA_KEY_MAPPING

LLADA_SPECIAL_TOKENS = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "mask_token": "<|mdm_mask|>",
    "additional": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}
DREAM_SPECIAL_TOKENS = {
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "mask_token": "<|mask|>",
    "additional": ["<|im_start|>", "<|im_end|>"],
}

# LLaDA's (Llama-3 style) template, with TRL's {% generation %} markers around the assistant's turn
# (end-of-turn token included) so that `assistant_only_loss=True` works.
LLADA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|eot_id|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|eot_id|>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
DREAM_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 + - * / = ( ) \\boxed{}",
    "Question: what is 12 plus 30? Answer: 42. <reasoning> add the numbers </reasoning> <answer> 42 </answer>",
    "def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\n",
    "Solve for x: 2x + 3 = 7, so x = 2. The final answer is \\boxed{2}.",
]


def make_tiny_tokenizer(
    family: str = "llada",
    vocab_size: int = 384,
    *,
    with_mask: bool = True,
    corpus: list[str] | None = None,
    individual_digits: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with the family's special tokens and chat template.

    The special tokens come last, so their ids are ``len(tokenizer) - n_special ..``; read them from
    the tokenizer (e.g. ``tokenizer.mask_token_id``). ``with_mask=False``: no mask token (an
    autoregressive model's tokenizer). ``corpus``: the texts to train on (default: a few generic
    lines); ``individual_digits``: every digit its own token (as LLaMA's and Qwen's tokenizers split
    numbers), so that a digit is one position to mask and predict.
    """
    special = LLADA_SPECIAL_TOKENS if family == "llada" else DREAM_SPECIAL_TOKENS
    if not with_mask:
        special = {**special, "mask_token": None}
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if individual_digits else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus if corpus is not None else _CORPUS * 4, trainer=trainer)
    names = [special["bos_token"], special["eos_token"], special["mask_token"], *special["additional"]]
    tok.add_special_tokens([name for name in dict.fromkeys(names) if name is not None])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=special["bos_token"],
        eos_token=special["eos_token"],
        pad_token=special["pad_token"],
        mask_token=special["mask_token"],
        additional_special_tokens=special["additional"],
    )
    fast.chat_template = LLADA_CHAT_TEMPLATE if family == "llada" else DREAM_CHAT_TEMPLATE
    return fast


def _round_up(n: int, multiple: int = 64) -> int:
    return (n + multiple - 1) // multiple * multiple


def tiny_llama_config(tokenizer, *, hidden_size=64, layers=2, heads=4, kv_heads=None, intermediate=128) -> LlamaConfig:
    """The native (Llama) config of a tiny LLaDA-format model sized for ``tokenizer``."""
    config = LlamaConfig(
        vocab_size=_round_up(len(tokenizer)),
        hidden_size=hidden_size,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        head_dim=hidden_size // heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.is_causal = False
    return config


def _reverse_llada_names(state_dict: dict) -> dict:
    """Llama parameter names -> LLaDA checkpoint names (the inverse of LLADA_KEY_MAPPING)."""
    import re

    reverse = []
    for pattern, repl in LLADA_KEY_MAPPING.items():
        src = repl.replace(".", r"\.").replace(r"\1", r"(\d+)")
        dst = pattern.lstrip("^").replace(r"\.", ".").replace(r"(\d+)", r"\1")
        reverse.append((re.compile("^" + src), dst))
    out = {}
    for name, tensor in state_dict.items():
        for regex, dst in reverse:
            if regex.match(name):
                out[regex.sub(dst, name)] = tensor.contiguous()
                break
        else:
            raise KeyError(f"no LLaDA name for {name}")
    return out


def make_tiny_llada(path: str, tokenizer=None, *, seed: int = 0, with_mask_id: bool = True, **size) -> LlamaForCausalLM:
    """Write a tiny LLaDA-format checkpoint (LLaDA key names and config.json) to ``path``.

    Returns the independently built native ``LlamaForCausalLM`` holding the same weights, in eval mode.
    """
    tokenizer = tokenizer or make_tiny_tokenizer("llada")
    config = tiny_llama_config(tokenizer, **size)
    torch.manual_seed(seed)
    native = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # non-trivial norms, so a swapped norm shows in the logits
        for name, param in native.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    os.makedirs(path, exist_ok=True)
    save_file(_reverse_llada_names(native.state_dict()), os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    llada_config = {
        "architectures": ["LLaDAModelLM"],
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM"},
        "model_type": "llada",
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": config.hidden_size,
        "embedding_dropout": 0.0,
        "embedding_size": config.vocab_size,
        "eos_token_id": tokenizer.eos_token_id,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_cutoff_factor": None,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "max_sequence_length": 4096,
        "mlp_hidden_size": config.intermediate_size,
        "mlp_ratio": 4,
        "multi_query_attention": None,
        "n_heads": config.num_attention_heads,
        "n_kv_heads": config.num_key_value_heads,
        "n_layers": config.num_hidden_layers,
        "pad_token_id": tokenizer.pad_token_id,
        "precision": "amp_bf16",
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-5,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500000.0,
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": config.vocab_size,
        "weight_tying": False,
    }
    if with_mask_id:
        llada_config["mask_token_id"] = tokenizer.mask_token_id
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump(llada_config, f, indent=2)
    tokenizer.save_pretrained(path)
    return native


def make_tiny_dream(path: str, tokenizer=None, *, seed: int = 0, hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate=128) -> Qwen2ForCausalLM:
    """Write a tiny Dream-format checkpoint (Qwen2 key names, Dream config.json) to ``path``.

    Returns the independently built native ``Qwen2ForCausalLM`` with the same weights, in eval mode.
    """
    tokenizer = tokenizer or make_tiny_tokenizer("dream")
    config = Qwen2Config(
        vocab_size=_round_up(len(tokenizer)),
        hidden_size=hidden_size,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.is_causal = False
    torch.manual_seed(seed)
    native = Qwen2ForCausalLM(config).eval()
    os.makedirs(path, exist_ok=True)
    save_file({k: v.contiguous() for k, v in native.state_dict().items()}, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    dream_config = {
        "architectures": ["DreamModel"],
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "model_type": "Dream",
        "attention_dropout": 0.0,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "max_position_embeddings": 4096,
        "max_window_layers": layers,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.2",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": config.vocab_size,
    }
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump(dream_config, f, indent=2)
    tokenizer.save_pretrained(path)
    return native


def sharpen_weights(model, *, gain: float = 2.0, head: float = 6.0, seed: int = 0):
    """Re-draw a tiny model's matrices so its predictions depend on position and context and are confident.

    Seeded ``N(0, (gain / sqrt(fan_in))^2)`` weights (embeddings std 1, ``lm_head`` ``head / sqrt(d)``): the
    stock 0.02 initialisation predicts the same token at every masked position, which tests nothing in a
    sampler. Returns the model, in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() != 2:
                continue
            std = 1.0 if "embed" in name else (head if "lm_head" in name else gain) / math.sqrt(param.shape[1])
            param.copy_(torch.randn(param.shape, generator=g, dtype=torch.float32).to(param.dtype) * std)
    return model.eval()
