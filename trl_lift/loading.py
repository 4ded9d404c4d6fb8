"""Native loading of diffusion LMs on stock transformers, without remote code.

LLaDA is a Llama with bidirectional attention and Dream a Qwen2 with bidirectional attention
(../shared/docs/models.md). :func:`load_diffusion_model` reads the checkpoint's ``config.json``,
builds the native config with ``is_causal=False``, maps LLaDA's weight names at load time and
records the per-family facts (mask token, logit shift) in the config, so that the model saves as
a native checkpoint that plain ``AutoModelForCausalLM.from_pretrained`` reloads.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.models.llama import modeling_llama
from transformers.utils import cached_file

from .model_facts import FAMILY_FACTS, MASKED_LM_MODEL_TYPES, MODEL_TYPE_TO_FAMILY, is_bidirectional

logger = logging.getLogger(__name__)

# LLaDA checkpoint names -> Llama names. One pattern per projection: a pattern with two capture
# groups did not substitute its second group in transformers' key mapping (models.md).
LLADA_KEY_MAPPING = {
    r"^model\.transformer\.wte\.": "model.embed_tokens.",
    r"^model\.transformer\.ln_f\.": "model.norm.",
    r"^model\.transformer\.ff_out\.": "lm_head.",
    r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.": r"model.layers.\1.input_layernorm.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.": r"model.layers.\1.post_attention_layernorm.",
    r"^model\.transformer\.blocks\.(\d+)\.q_proj\.": r"model.layers.\1.self_attn.q_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.k_proj\.": r"model.layers.\1.self_attn.k_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.v_proj\.": r"model.layers.\1.self_attn.v_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.attn_out\.": r"model.layers.\1.self_attn.o_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_proj\.": r"model.layers.\1.mlp.gate_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.up_proj\.": r"model.layers.\1.mlp.up_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_out\.": r"model.layers.\1.mlp.down_proj.",
}

# LLaDA's own defaults (its ModelConfig), used for fields a config.json leaves out.
_LLADA_DEFAULTS = {
    "block_type": "sequential",
    "alibi": False,
    "rope": False,
    "rope_full_precision": True,
    "attention_layer_norm": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "scale_logits": False,
    "weight_tying": True,
    "input_emb_norm": False,
    "layer_norm_type": "default",
    "activation_type": "swiglu",
    "mlp_ratio": 4,
    "mlp_hidden_size": None,
    "n_kv_heads": None,
    "multi_query_attention": None,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_sequence_length": 1024,
    "attention_dropout": 0.1,
    "residual_dropout": 0.1,
    "embedding_dropout": 0.1,
    "embedding_size": 50304,
    "vocab_size": 50257,
}

_PASSTHROUGH_NOTE = "dtype, device_map, quantization_config, attn_implementation, revision, token"


def _refuse_remote_code(kwargs: dict) -> None:
    if kwargs.pop("trust_remote_code", False):
        raise ValueError(
            "trl_lift loads diffusion LMs natively and never runs remote code; drop trust_remote_code=True."
        )


def _read_config_dict(name_or_path: str, revision=None, token=None, cache_dir=None) -> dict:
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, "config.json")
    else:
        path = cached_file(name_or_path, "config.json", revision=revision, token=token, cache_dir=cache_dir)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def llada_config_to_llama(raw: dict) -> LlamaConfig:
    """Build the ``LlamaConfig`` equivalent of a LLaDA ``config.json`` (dict), refusing what Llama lacks.

    Raises:
        ValueError: naming the field, for a LLaDA variant that a Llama cannot represent exactly.
    """
    cfg = {**_LLADA_DEFAULTS, **raw}
    refusals = {
        "block_type": (cfg["block_type"] != "llama", "only block_type='llama' is a Llama"),
        "alibi": (bool(cfg["alibi"]), "ALiBi position biases are not RoPE"),
        "rope": (not cfg["rope"], "rope must be true"),
        "include_bias": (bool(cfg["include_bias"]) or bool(cfg["include_qkv_bias"]), "Llama has no biases"),
        "attention_layer_norm": (bool(cfg["attention_layer_norm"]), "qk-norm is not in Llama"),
        "scale_logits": (bool(cfg["scale_logits"]), "logit scaling is not in Llama"),
        "weight_tying": (bool(cfg["weight_tying"]), "LLaDA-8B has untied embeddings; tied ones are not supported"),
        "input_emb_norm": (bool(cfg["input_emb_norm"]), "embedding scaling is not in Llama"),
        "layer_norm_type": (cfg["layer_norm_type"] != "rms", "only RMSNorm ('rms') is Llama's norm"),
        "activation_type": (cfg["activation_type"] != "silu", "the Llama block multiplies silu(gate) by up"),
    }
    bad = [f"{key}={cfg[key]!r} ({why})" for key, (is_bad, why) in refusals.items() if is_bad]
    if bad:
        raise ValueError(
            "This LLaDA configuration cannot be loaded as a Llama without changing its outputs: "
            + "; ".join(bad)
            + ". Only LLaDA checkpoints with the Llama block (as GSAI-ML/LLaDA-8B-*) are supported natively."
        )
    for name in ("residual_dropout", "embedding_dropout"):
        if cfg[name]:
            warnings.warn(
                f"LLaDA config sets {name}={cfg[name]}, which Llama does not have: training runs without it.",
                stacklevel=3,
            )
    n_heads = cfg["n_heads"]
    if cfg["n_kv_heads"] is not None:
        n_kv = cfg["n_kv_heads"]
    else:
        n_kv = 1 if cfg["multi_query_attention"] else n_heads
    d_model = cfg["d_model"]
    mask_id = raw.get("mask_token_id")
    config = LlamaConfig(
        vocab_size=cfg["embedding_size"] or cfg["vocab_size"],
        hidden_size=d_model,
        intermediate_size=cfg["mlp_hidden_size"] or cfg["mlp_ratio"] * d_model,
        num_hidden_layers=cfg["n_layers"],
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        head_dim=d_model // n_heads,
        hidden_act="silu",
        max_position_embeddings=cfg["max_sequence_length"],
        rms_norm_eps=cfg["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg["rope_theta"])},
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
        attention_dropout=float(cfg["attention_dropout"]),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=raw.get("eos_token_id", FAMILY_FACTS["llada"].eos_token_id),
        pad_token_id=raw.get("pad_token_id", FAMILY_FACTS["llada"].eos_token_id),
        use_cache=True,
    )
    config.is_causal = False
    config.diffusion_family = "llada"
    config.mask_token_id = FAMILY_FACTS["llada"].mask_token_id if mask_id is None else int(mask_id)
    config.rope_fp32 = bool(cfg["rope_full_precision"])
    config.architectures = ["LlamaForCausalLM"]
    return config


def dream_config_to_qwen2(raw: dict) -> Qwen2Config:
    """Build the ``Qwen2Config`` of a Dream ``config.json`` (dict): same fields, bidirectional."""
    fields = {k: v for k, v in raw.items() if k not in {"model_type", "auto_map", "architectures", "transformers_version"}}
    rope_theta = fields.pop("rope_theta", None)
    rope_scaling = fields.pop("rope_scaling", None)
    if rope_scaling:
        raise ValueError(f"Dream config with rope_scaling={rope_scaling!r} is not supported natively.")
    if rope_theta is not None and "rope_parameters" not in fields:
        fields["rope_parameters"] = {"rope_type": "default", "rope_theta": float(rope_theta)}
    mask_id = fields.pop("mask_token_id", None)
    config = Qwen2Config(**{k: v for k, v in fields.items() if k in Qwen2Config.__dataclass_fields__})
    config.is_causal = False
    config.diffusion_family = "dream"
    config.diffusion_logit_shift = True
    config.mask_token_id = FAMILY_FACTS["dream"].mask_token_id if mask_id is None else int(mask_id)
    config.architectures = ["Qwen2ForCausalLM"]
    return config


# --- fp32 RoPE ---------------------------------------------------------------------------------
# LLaDA rotates q/k in float32 and casts back; Llama rotates in the activation dtype (bf16 logits
# then differ by up to 0.16). A model marked ``config.rope_fp32`` gets rotary tables in float32, and
# the rotation below upcasts only when it is handed float32 tables with lower-precision q/k, which
# stock Llama models never do: their behaviour is unchanged.
_original_apply_rotary = modeling_llama.apply_rotary_pos_emb


def _apply_rotary_fp32_aware(q, k, cos, sin, unsqueeze_dim=1):
    if cos.dtype == torch.float32 and q.dtype != torch.float32:
        q_rot, k_rot = _original_apply_rotary(q.float(), k.float(), cos, sin, unsqueeze_dim)
        return q_rot.to(q.dtype), k_rot.to(k.dtype)
    return _original_apply_rotary(q, k, cos, sin, unsqueeze_dim)


def enable_fp32_rope(model) -> None:
    """Make a loaded Llama-architecture model rotate queries and keys in float32 (as LLaDA does)."""
    modeling_llama.apply_rotary_pos_emb = _apply_rotary_fp32_aware
    for module in model.modules():
        if isinstance(module, modeling_llama.LlamaRotaryEmbedding) and not getattr(module, "_fp32_tables", False):
            original_forward = module.forward

            def forward(x, position_ids, _orig=original_forward):
                # The rotary module reads only the device and dtype of x.
                return _orig(torch.empty(0, device=x.device, dtype=torch.float32), position_ids)

            module.forward = forward
            module._fp32_tables = True


# --- the loader ---------------------------------------------------------------------------------


def load_diffusion_model(
    name_or_path: str,
    *,
    mask_token_id: int | None = None,
    rope_fp32: bool | None = None,
    **from_pretrained_kwargs,
):
    """Load a diffusion LM as a native transformers model with bidirectional attention.

    Args:
        name_or_path: hub id or local folder of a LLaDA (``model_type: "llada"``), Dream
            (``model_type: "Dream"``), native ``is_causal=False`` or masked-LM checkpoint.
        mask_token_id: overrides the mask token id (otherwise the config's, else the family's).
        rope_fp32: rotate q/k in float32 (LLaDA's behaviour, default for LLaDA checkpoints). ``None``
            keeps the checkpoint's setting.
        **from_pretrained_kwargs: passed to ``from_pretrained`` (e.g. ``dtype``, ``device_map``,
            ``quantization_config``, ``attn_implementation``, ``revision``, ``token``).

    Returns:
        A ``PreTrainedModel`` (``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ...) whose config has
        ``is_causal=False`` and ``mask_token_id``; see :func:`trl_lift.get_diffusion_facts`.

    Raises:
        ValueError: for a causal model, an unsupported LLaDA variant, or ``trust_remote_code=True``.
    """
    _refuse_remote_code(from_pretrained_kwargs)
    hub = {k: from_pretrained_kwargs.get(k) for k in ("revision", "token", "cache_dir")}
    raw = _read_config_dict(name_or_path, **hub)
    model_type = raw.get("model_type")

    if model_type == "llada":
        config = llada_config_to_llama(raw)
        model = LlamaForCausalLM.from_pretrained(
            name_or_path, config=config, key_mapping=LLADA_KEY_MAPPING, **from_pretrained_kwargs
        )
        # transformers remembers the key mapping and would save LLaDA names back under a Llama config
        # (a checkpoint that silently does not resume); forget it so saving is native.
        model._weight_conversions = []
    elif model_type in ("Dream", "dream"):
        config = dream_config_to_qwen2(raw)
        model = Qwen2ForCausalLM.from_pretrained(name_or_path, config=config, **from_pretrained_kwargs)
    else:
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=False, **hub)
        if model_type in MASKED_LM_MODEL_TYPES:
            model = AutoModelForMaskedLM.from_pretrained(name_or_path, config=config, **from_pretrained_kwargs)
        elif is_bidirectional(config):
            model = AutoModelForCausalLM.from_pretrained(name_or_path, config=config, **from_pretrained_kwargs)
        else:
            raise ValueError(
                f"{name_or_path} ({model_type}) has causal attention (config.is_causal is not False): it is an "
                "autoregressive model, not a diffusion LM, and training it with masked diffusion would be silently "
                "wrong. Load a diffusion checkpoint, or, if this architecture was trained bidirectionally, save its "
                "config with `config.is_causal = False` and `config.mask_token_id` set."
            )

    if mask_token_id is not None:
        model.config.mask_token_id = int(mask_token_id)
    if rope_fp32 is not None:
        model.config.rope_fp32 = bool(rope_fp32)
    if getattr(model.config, "rope_fp32", False):
        if not isinstance(model, LlamaForCausalLM):
            raise ValueError("rope_fp32 is only supported for Llama-architecture (LLaDA) models.")
        enable_fp32_rope(model)
    return model


# Native tokenizer class of each family, for checkpoints whose tokenizer_config.json names a remote-code
# class and ship no tokenizer.json (Dream's DreamTokenizer is a Qwen2 BPE tokenizer with extra special tokens).
FAMILY_TOKENIZER_CLASS = {"dream": "Qwen2Tokenizer", "llada": "PreTrainedTokenizerFast"}


def load_diffusion_tokenizer(name_or_path: str, **from_pretrained_kwargs):
    """Load a diffusion LM's tokenizer without remote code, with its mask token set.

    Tries ``AutoTokenizer``; a tokenizer that asks for remote code (Dream's) is loaded from its
    ``tokenizer.json`` as it is serialised, else with its family's native class. When the tokenizer
    has no mask token, the model's mask id names it.

    Raises:
        ValueError: for ``trust_remote_code=True``, or a remote-code tokenizer of an unknown family.
    """
    _refuse_remote_code(from_pretrained_kwargs)
    hub = {k: from_pretrained_kwargs.get(k) for k in ("revision", "token", "cache_dir")}
    raw = _read_config_dict(name_or_path, **hub)
    family = raw.get("diffusion_family") or MODEL_TYPE_TO_FAMILY.get(raw.get("model_type"))
    if raw.get("model_type") in MODEL_TYPE_TO_FAMILY:
        # transformers does not know "llada"/"Dream": give AutoTokenizer a blank config rather than let it
        # parse config.json into a mismatched one (a spurious warning); tokenizer_config.json decides.
        from_pretrained_kwargs.setdefault("config", transformers.PretrainedConfig())
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False, **from_pretrained_kwargs)
    except ValueError as err:
        if "custom code" not in str(err) or family not in FAMILY_TOKENIZER_CLASS:
            raise
        from_pretrained_kwargs.pop("config", None)
        try:  # the serialised tokenizer pipeline, exactly as shipped
            tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(name_or_path, **from_pretrained_kwargs)
        except (OSError, ValueError):
            tokenizer_class = getattr(transformers, FAMILY_TOKENIZER_CLASS[family])
            tokenizer = tokenizer_class.from_pretrained(name_or_path, **from_pretrained_kwargs)
    mask_id = raw.get("mask_token_id", FAMILY_FACTS[family].mask_token_id if family in FAMILY_FACTS else None)
    if tokenizer.mask_token is None and mask_id is not None and mask_id < len(tokenizer):
        tokenizer.mask_token = tokenizer.convert_ids_to_tokens(int(mask_id))
    return tokenizer
