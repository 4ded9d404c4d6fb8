"""Native loading of diffusion LMs on stock transformers, without remote code.

LLaDA is a Llama with bidirectional attention and Dream a Qwen2 with bidirectional attention
(../shared/docs/models.md). :func:`load_diffusion_model` reads the checkpoint's ``config.json``,
builds the native config with ``is_causal=False``, maps LLaDA's weight names at load time and
records the per-family facts (mask token, logit shift) in the config, so that the model saves as
a native checkpoint that plain ``AutoModelForCausalLM.from_pretrained`` reloads.
"""

from __future__ import annotations

import os

import torch
import transformers
from transformers import (
    AutoConfig,
    BitsAndBytesConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    LlamaForCausalLM,
    Qwen2ForCausalLM,
)
from transformers.utils import cached_file

from .checkpoints import check_adapter_fits, check_weight_files, hub_error, local_folder, read_json
from .facts import FAMILY_FACTS, MASKED_LM_MODEL_TYPES, MODEL_TYPE_TO_FAMILY, is_bidirectional
from .native_configs import LLADA_KEY_MAPPING, dream_config_to_qwen2, llada_config_to_llama
from .masked_lm import tokenizer_mask_token_id
from .rope import enable_fp32_rope
from .vocabulary import check_mask_token_fits


def _refuse_remote_code(kwargs: dict) -> None:
    if kwargs.pop("trust_remote_code", False):
        raise ValueError(
            "trl_lift loads diffusion LMs natively and never runs remote code; drop trust_remote_code=True."
        )


def _read_config_dict(name_or_path: str, revision=None, token=None, cache_dir=None) -> dict:
    folder = local_folder(name_or_path)  # a path that does not exist is refused here, not sent to the hub
    if folder is not None:
        path = os.path.join(folder, "config.json")
    else:
        try:
            path = cached_file(name_or_path, "config.json", revision=revision, token=token, cache_dir=cache_dir)
        except (OSError, ValueError) as err:
            raise hub_error(name_or_path, err) from err
    return read_json(path)



def load_diffusion_model(
    name_or_path: str,
    *,
    mask_token_id: int | None = None,
    rope_fp32: bool | None = None,
    adapter: str | None = None,
    load_in_4bit: bool = False,
    **from_pretrained_kwargs,
):
    """Load a diffusion LM as a native transformers model with bidirectional attention.

    Args:
        name_or_path: hub id or local folder of a LLaDA (``model_type: "llada"``), Dream
            (``model_type: "Dream"``), native ``is_causal=False`` (e.g. from
            :func:`trl_lift.autoregressive_to_diffusion`) or masked-LM (BERT, ModernBERT) checkpoint.
        mask_token_id: overrides the mask token id (otherwise the config's, else the family's; a masked LM
            without one in its config: its tokenizer's mask token).
        rope_fp32: rotate q/k in float32 (LLaDA's behaviour, default for LLaDA checkpoints). ``None``
            keeps the checkpoint's setting.
        adapter: a PEFT (LoRA) adapter folder or hub id, put on top of the model unmerged.
        load_in_4bit: quantise with bitsandbytes 4-bit (QLoRA's NF4 is ``quantization_config``'s job),
            computing in ``dtype``.
        **from_pretrained_kwargs: passed to ``from_pretrained`` (e.g. ``dtype`` (a torch dtype or its
            name), ``device_map``, ``quantization_config``, ``attn_implementation``, ``revision``, ``token``).

    Returns:
        A ``PreTrainedModel`` (``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ...) whose config has
        ``is_causal=False`` and ``mask_token_id``; see :func:`trl_lift.get_diffusion_facts`.

    Raises:
        ValueError: for a causal model, an unsupported LLaDA variant, ``trust_remote_code=True``, a mask id
            outside the vocabulary, a truncated or corrupt checkpoint file, or an adapter that does not fit.
        FileNotFoundError: for a local path that does not exist or is no checkpoint (adapter) folder.
    """
    _refuse_remote_code(from_pretrained_kwargs)
    dtype = from_pretrained_kwargs.get("dtype")
    if isinstance(dtype, str) and dtype != "auto":
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"dtype must be a torch dtype or its name (bfloat16, float16, float32), got {dtype!r}.")
        from_pretrained_kwargs["dtype"] = dtype = getattr(torch, dtype)
    if load_in_4bit:
        if from_pretrained_kwargs.get("quantization_config") is not None:
            raise ValueError("load_in_4bit and quantization_config both given; pass one.")
        compute = dtype if isinstance(dtype, torch.dtype) else torch.float32
        from_pretrained_kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True,
                                                                           bnb_4bit_compute_dtype=compute)
    hub = {k: from_pretrained_kwargs.get(k) for k in ("revision", "token", "cache_dir")}
    raw = _read_config_dict(name_or_path, **hub)
    # Before the weights load: a mask id beyond the checkpoint's embedding, a truncated or missing weight file.
    given_mask = mask_token_id if mask_token_id is not None else raw.get("mask_token_id")
    check_mask_token_fits(raw.get("embedding_size") or raw.get("vocab_size"), given_mask)
    if local_folder(name_or_path) is not None:
        check_weight_files(local_folder(name_or_path))
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
            if mask_token_id is None and getattr(config, "mask_token_id", None) is None:
                mask_token_id = tokenizer_mask_token_id(name_or_path, **hub)  # a masked LM's mask id is its tokenizer's
        elif is_bidirectional(config):
            model = AutoModelForCausalLM.from_pretrained(name_or_path, config=config, **from_pretrained_kwargs)
        else:
            raise ValueError(
                f"{name_or_path} ({model_type}) has causal attention (config.is_causal is not False): it is an "
                "autoregressive model, not a diffusion LM, and training it with masked diffusion would be silently "
                "wrong. Convert it first (bidirectional attention, a mask token, the logit shift recorded): "
                "trl_lift.autoregressive_to_diffusion(name_or_path, output_dir=FOLDER), then load FOLDER; or, if this "
                "architecture was trained bidirectionally, save its config with `config.is_causal = False` and "
                "`config.mask_token_id` set."
            )

    if mask_token_id is not None:
        model.config.mask_token_id = int(mask_token_id)
    if rope_fp32 is not None:
        model.config.rope_fp32 = bool(rope_fp32)
    if getattr(model.config, "rope_fp32", False):
        if not isinstance(model, LlamaForCausalLM):
            raise ValueError("rope_fp32 is only supported for Llama-architecture (LLaDA) models.")
        enable_fp32_rope(model)
    if adapter:
        from peft import PeftModel

        check_adapter_fits(model, adapter, name_or_path)
        model = PeftModel.from_pretrained(model, adapter)
    return model


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
        native_class = FAMILY_FACTS[family].tokenizer_class if family in FAMILY_FACTS else None
        if "custom code" not in str(err) or native_class is None:
            raise
        from_pretrained_kwargs.pop("config", None)
        try:  # the serialised tokenizer pipeline, exactly as shipped
            tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(name_or_path, **from_pretrained_kwargs)
        except (OSError, ValueError):
            tokenizer = getattr(transformers, native_class).from_pretrained(name_or_path, **from_pretrained_kwargs)
    mask_id = raw.get("mask_token_id", FAMILY_FACTS[family].mask_token_id if family in FAMILY_FACTS else None)
    if tokenizer.mask_token is None and mask_id is not None and mask_id < len(tokenizer):
        tokenizer.mask_token = tokenizer.convert_ids_to_tokens(int(mask_id))
    return tokenizer
