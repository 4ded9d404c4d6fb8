"""Token ids against a model's vocabulary: the mask id, a tokenizer's size and mask token, a batch of ids.

An id outside the embedding fails deep inside ``torch.nn.functional.embedding`` ("index out of range
in self") at the first forward pass, and a tokenizer whose mask token is not the model's trains the
tokenizer's mask as an ordinary token without a word. These checks refuse both before any work.
"""

from __future__ import annotations

import torch

from .facts import text_config, unwrap_model


def vocabulary_size(model) -> int | None:
    """Rows of the model's input embedding (under any wrapper), else ``config.vocab_size``; ``None`` if unknown."""
    base = unwrap_model(model)
    embeddings = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is None and getattr(embeddings, "weight", None) is not None:
        rows = embeddings.weight.shape[0]
    return int(rows) if rows else getattr(text_config(model), "vocab_size", None)


def check_mask_token_fits(vocab: int | None, mask_token_id: int | None) -> None:
    """Refuse a mask id outside ``[0, vocab)`` (``vocab``: :func:`vocabulary_size`; ``None`` = unknown).

    Raises:
        ValueError: naming the id, the vocabulary size and how to set the model's own mask id.
    """
    if vocab is not None and mask_token_id is not None and not 0 <= int(mask_token_id) < vocab:
        raise ValueError(
            f"mask_token_id {mask_token_id} is outside the model's vocabulary (embedding size {vocab}): every masked "
            "position would fail in the embedding. Set model.config.mask_token_id to the id of the model's own mask "
            "token (e.g. tokenizer.mask_token_id), or load with trl_lift.load_diffusion_model(..., mask_token_id=...)."
        )


def _tokenizer_of(processing_class):
    """The text tokenizer of a tokenizer or a multimodal processor."""
    return getattr(processing_class, "tokenizer", processing_class)


def check_tokenizer_fits_model(processing_class, model, mask_token_id: int) -> None:
    """Refuse a tokenizer larger than the model's embedding, or whose mask token is not the model's.

    Args:
        processing_class: a tokenizer or a processor holding one (``None``: nothing to check).
        model: the model (any wrapper).
        mask_token_id: the id the model is trained or sampled with as its mask.

    Raises:
        ValueError: for a tokenizer with ids the embedding lacks, or with a different mask token.
    """
    tokenizer = _tokenizer_of(processing_class)
    if tokenizer is None or not hasattr(tokenizer, "__len__"):
        return
    vocab = vocabulary_size(model)
    if vocab is not None and len(tokenizer) > vocab:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's embedding only {vocab} rows: ids {vocab}.."
            f"{len(tokenizer) - 1} would fail in the embedding. Use the model's own tokenizer, or grow the embedding "
            "first: model.resize_token_embeddings(len(tokenizer))."
        )
    own = getattr(tokenizer, "mask_token_id", None)
    if own is not None and int(own) != int(mask_token_id):
        raise ValueError(
            f"The tokenizer's mask token {tokenizer.mask_token!r} has id {own}, but the model's mask_token_id is "
            f"{mask_token_id}: text holding {tokenizer.mask_token!r} would be read as an ordinary token and the "
            f"model would learn another token as its mask. Make them agree: model.config.mask_token_id = {own} "
            f"(or load_diffusion_model(..., mask_token_id={own})) if the tokenizer is right, else "
            f"tokenizer.mask_token = tokenizer.convert_ids_to_tokens({mask_token_id})."
        )


def check_ids_in_vocabulary(input_ids: torch.Tensor, vocab: int | None, *, what: str = "input_ids") -> None:
    """Refuse ``input_ids`` (any shape, integer) holding an id outside ``[0, vocab)``.

    One reduction over the ids (a device sync where they live on an accelerator).
    """
    if vocab is None or input_ids.numel() == 0:
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise ValueError(
            f"{what} hold the id {bad}, outside the model's vocabulary (size {vocab}): encode the text with the "
            "model's own tokenizer (trl_lift.load_diffusion_tokenizer), and pad with a valid id "
            "(e.g. tokenizer.eos_token_id)."
        )
