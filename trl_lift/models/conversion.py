"""Autoregressive checkpoints turned into masked diffusion LMs: attention made bidirectional, a mask token added.

Dream (Ye et al. 2025, "Dream 7B") starts a diffusion LM from an autoregressive Qwen2: the same
weights with bidirectional attention and a mask token, then fine-tuned with the masked-diffusion
objective. The logits keep the autoregressive alignment (position ``i`` predicts token ``i + 1``),
so the model is read with Dream's one-position logit shift. :func:`autoregressive_to_diffusion` does
that conversion on a native transformers model and records the facts (``is_causal=False``,
``mask_token_id``, ``diffusion_logit_shift``) in its config, where every consumer reads them
(:func:`trl_lift.get_diffusion_facts`), and a saved folder keeps them.
"""

from __future__ import annotations

import torch

# Architectures whose native attention honours ``config.is_causal = False`` (tested in this package).
CONVERTIBLE_MODEL_TYPES = ("llama", "qwen2")
DEFAULT_MASK_TOKEN = "<|mask|>"
# End-of-turn tokens of the chat templates of these families (Qwen2 / ChatML, Llama 3), recorded as eot_token_id.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>")


def autoregressive_to_diffusion(model, tokenizer=None, mask_token: str | None = None, *, output_dir: str | None = None,
                                dtype=None):
    """Turn a causal Llama / Qwen2-family LM into a bidirectional diffusion LM ready for ``DiffusionSFTTrainer``.

    Attention is made bidirectional (``config.is_causal = False``), a mask token is chosen or added
    to the tokenizer, the embeddings grow to the tokenizer if needed and an added token's input and
    output rows start at the mean of the existing rows (its logit starts at the average logit, and
    its input embedding carries no token's meaning), and the config records ``mask_token_id``,
    ``diffusion_logit_shift = True`` (the logits at ``i`` predict ``i + 1``, as in Dream) and, when the
    tokenizer has a chat end-of-turn token (``<|im_end|>``, ``<|eot_id|>``), ``eot_token_id``.

    Args:
        model: a causal ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` (changed in place), or the hub id or
            folder of one (loaded with ``AutoModelForCausalLM``, never remote code).
        tokenizer: the model's tokenizer (changed in place); loaded from ``model`` when that is a path.
        mask_token: the mask token's text. ``None``: the tokenizer's own mask token, else
            ``"<|mask|>"`` added as a special token. A text already in the vocabulary is chosen as is
            (its embedding kept); another one is added.
        output_dir: folder to ``save_pretrained`` the converted model and tokenizer into (required when
            ``model`` is a path); it reloads with :func:`trl_lift.load_diffusion_model` and with plain
            ``AutoModelForCausalLM.from_pretrained``, facts included.
        dtype: ``dtype`` for loading a model given by path (``None``: the checkpoint's).

    Returns:
        ``(model, tokenizer)``: the converted model and its tokenizer, ``tokenizer.mask_token_id ==
        model.config.mask_token_id``.

    Raises:
        ValueError: for a model that is not a causal Llama / Qwen2-family LM, or a path without ``output_dir``.
    """
    if isinstance(model, str):
        if output_dir is None:
            raise ValueError("autoregressive_to_diffusion(path) needs output_dir=FOLDER to save the converted model in.")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = model
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=False, dtype=dtype)
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    if tokenizer is None:
        raise ValueError("autoregressive_to_diffusion needs the model's tokenizer: the mask token is added to it.")
    _check_convertible(model)

    mask_id, added = _mask_token_id(tokenizer, mask_token)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if added:  # a new token: its rows start at the mean of the others
        _set_rows_to_mean(model, mask_id, rows)

    config = model.config
    config.is_causal = False
    config.mask_token_id = mask_id
    config.diffusion_logit_shift = True
    vocab = tokenizer.get_vocab()
    end_of_turn = next((vocab[t] for t in END_OF_TURN_TOKENS if t in vocab), None)
    if end_of_turn is not None and getattr(config, "eot_token_id", None) is None:
        config.eot_token_id = int(end_of_turn)  # the sampler and lift_dlm stop a chat answer there
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.mask_token_id = mask_id
    if output_dir is not None:
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    return model, tokenizer


def _check_convertible(model) -> None:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in CONVERTIBLE_MODEL_TYPES or not hasattr(model, "get_output_embeddings"):
        raise ValueError(
            f"autoregressive_to_diffusion converts causal {' / '.join(CONVERTIBLE_MODEL_TYPES)} models (their native "
            f"attention honours config.is_causal = False); got {type(model).__name__} ({model_type!r}). Load LLaDA, "
            "Dream, masked LMs and other bidirectional checkpoints directly with trl_lift.load_diffusion_model."
        )
    if getattr(config, "is_causal", True) is False:
        raise ValueError(
            f"{type(model).__name__} is already bidirectional (config.is_causal is False): it needs no conversion; "
            "load it with trl_lift.load_diffusion_model."
        )


def _mask_token_id(tokenizer, mask_token: str | None) -> tuple[int, bool]:
    """``(id, added)`` of the mask token, adding it (and setting ``tokenizer.mask_token``) when it is new."""
    mask_token = mask_token or tokenizer.mask_token or DEFAULT_MASK_TOKEN
    added = mask_token not in tokenizer.get_vocab()
    if added:
        tokenizer.add_special_tokens({"mask_token": mask_token})
    else:
        tokenizer.mask_token = mask_token
    return int(tokenizer.convert_tokens_to_ids(mask_token)), added


@torch.no_grad()
def _set_rows_to_mean(model, token_id: int, old_rows: int) -> None:
    """Input and output embedding rows of ``token_id`` set to the mean of the first ``old_rows`` rows."""
    for embedding in (model.get_input_embeddings(), model.get_output_embeddings()):
        if embedding is None:
            continue
        weight = embedding.weight
        others = torch.cat([weight[:min(token_id, old_rows)], weight[token_id + 1:old_rows]])  # [V_old, d]
        weight[token_id] = others.float().mean(0).to(weight.dtype)
        bias = getattr(embedding, "bias", None)
        if bias is not None and bias.shape[0] > token_id:
            bias[token_id] = bias[:old_rows].float().mean().to(bias.dtype)
