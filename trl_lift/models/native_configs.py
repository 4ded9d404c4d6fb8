"""LLaDA and Dream checkpoints described as native transformers configs (Llama, Qwen2), bidirectional.

LLaDA is a Llama and Dream a Qwen2, both with bidirectional attention (../shared/docs/models.md):
these functions translate their ``config.json`` and LLaDA's weight names, and refuse, naming the
field, any variant a native architecture cannot represent exactly.
"""

from __future__ import annotations

import warnings

from transformers import LlamaConfig, Qwen2Config

from .facts import FAMILY_FACTS

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
