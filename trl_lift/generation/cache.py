"""Forward passes of the sampler over its canvas: full, prefix-cached and dual-cached.

Fast-dLLM (Wu et al. 2025, "Fast-dLLM: Training-free Acceleration of Diffusion LLM by Enabling KV
Cache and Parallel Decoding") caches the keys and values of the tokens outside the block being
decoded. Here this goes through the native model's own KV cache (transformers' ``DynamicCache``),
so it works for LLaDA and Dream loaded natively and for any native ``is_causal=False`` model:

- ``none``: every step is one full pass over the canvas (the reference).
- ``prefix``: at each block start, one full pass; its cache is cut to the positions left of the
  block, and the block's remaining steps feed only the block and what follows it.
- ``dual``: at each block start, one full pass; its cache keeps everything but the block, and the
  block's remaining steps feed only the block.

Cached steps are approximate: the cached positions do not see later changes to the block. A pass
fed with a cache built from the same canvas gives the full pass's logits (identical for ``prefix``;
equal up to float rounding for ``dual``, whose keys are stored in a different order).
"""

from __future__ import annotations

import inspect

import torch

from ..diffusion.scoring import predicting_rows
from ..models.facts import unwrap_model
from ..models.masked_lm import supports_kv_cache

CACHE_MODES = ("none", "prefix", "dual")


def canvas_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded canvas: ``cumsum(mask) - 1``, pads at 0.

    Makes a row of a left-padded batch see the positions of its solo run.

    Args:
        attention_mask: ``[B, L]`` 0/1 mask, left-padded.

    Returns:
        ``[B, L]`` int64 positions.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def check_cache_supported(model, cache: str) -> None:
    """Refuse a cached mode (``prefix`` / ``dual``) for a model whose forward takes no KV cache (BERT, ModernBERT).

    Raises:
        ValueError: naming the model and the alternative, ``cache="none"``.
    """
    if cache != "none" and not supports_kv_cache(model):
        raise ValueError(
            f"cache={cache!r} needs a KV cache, and {type(unwrap_model(model)).__name__} has none (its forward takes "
            "no past keys and values: an encoder such as BERT or ModernBERT). Use cache='none' (threshold decoding "
            "still cuts the number of passes)."
        )


def _accepts_logits_to_keep(model) -> bool:
    return "logits_to_keep" in inspect.signature(unwrap_model(model).forward).parameters


def drop_cached_span(cache, start: int, end: int) -> None:
    """Remove cached positions ``[start, end)`` from every layer of a ``DynamicCache``, in place.

    Raises:
        ValueError: for a layer type whose entries cannot be cut (e.g. a sliding window).
    """
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False) or not hasattr(layer, "keys"):
            raise ValueError(
                f"cache='dual' needs full-attention cache layers; this model's cache has {type(layer).__name__}. "
                "Use cache='prefix' or cache='none'."
            )
        layer.keys = torch.cat([layer.keys[..., :start, :], layer.keys[..., end:, :]], dim=-2)
        layer.values = torch.cat([layer.values[..., :start, :], layer.values[..., end:, :]], dim=-2)


class CanvasForward:
    """Evaluates the model on the sampler's canvas and returns the logits that predict a window.

    Owns the things every pass needs: the attention mask and position ids of the canvas, the
    classifier-free-guidance (CFG) unconditional canvas, the logit shift of Dream-style models, the
    KV cache of the cached modes and the count of forward passes (``nfe``).

    Args:
        model: a native bidirectional transformers model (or a wrapper forwarding its kwargs).
        attention_mask: ``[B, L]`` mask of the whole canvas, or ``None`` (everything attended, and
            nothing passed to the model, as in the reference).
        position_ids: ``[B, L]`` positions of the canvas.
        prompt_length: ``P``, number of prompt columns.
        mask_token_id: id written over the prompt in the unconditional CFG canvas.
        cache: one of ``CACHE_MODES``.
        logit_shift: ``True`` when the logits at ``i`` predict ``i + 1`` (Dream).
        cfg_scale: CFG scale ``s``; ``> 0`` adds a pass with the prompt masked and mixes
            ``u + (s + 1) * (c - u)``.
    """

    def __init__(
        self,
        model,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor,
        *,
        prompt_length: int,
        mask_token_id: int,
        cache: str = "none",
        logit_shift: bool = False,
        cfg_scale: float = 0.0,
    ):
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}.")
        self.model = model
        self.mode = cache
        self.logit_shift = bool(logit_shift)
        self.cfg_scale = cfg_scale
        self.prompt_length = prompt_length
        self.mask_token_id = mask_token_id
        self.copies = 2 if cfg_scale > 0 else 1
        self.attention_mask = None if attention_mask is None else attention_mask.repeat(self.copies, 1)
        self.position_ids = position_ids.repeat(self.copies, 1)
        self.keep_logits = _accepts_logits_to_keep(model)
        self.cache = None
        self.fed_start = 0  # first canvas column fed by cached passes
        self.fed_end = 0  # one past the last canvas column fed by cached passes
        self.nfe = 0

    def _model_canvas(self, canvas: torch.Tensor) -> torch.Tensor:
        """``[copies * B, L]``: the canvas, plus its unconditional copy (prompt masked) under CFG."""
        if self.copies == 1:
            return canvas
        unconditional = canvas.clone()
        unconditional[:, : self.prompt_length] = self.mask_token_id
        return torch.cat([canvas, unconditional], dim=0)

    def _run(self, tokens, columns: slice, rows: torch.Tensor, kv_mask, use_cache: bool):
        """One model call on ``tokens`` (canvas ``columns``); returns the logits of ``rows`` (fed coordinates)."""
        kwargs = {"attention_mask": kv_mask, "position_ids": self.position_ids[:, columns], "use_cache": use_cache}
        if self.cache is not None:
            kwargs["cache"] = self.cache
        if self.keep_logits:
            kwargs["logits_to_keep"] = rows
        output = self.model(input_ids=tokens, **kwargs)
        self.nfe += self.copies
        logits = output.logits if self.keep_logits else output.logits[:, rows]
        return logits, (output.cache if use_cache else None)

    def _guided(self, logits: torch.Tensor) -> torch.Tensor:
        if self.copies == 1:
            return logits
        conditional, unconditional = torch.chunk(logits, 2, dim=0)
        return unconditional + (self.cfg_scale + 1) * (conditional - unconditional)

    def __call__(self, canvas: torch.Tensor, start: int, end: int, *, block_start: int, refresh: bool) -> torch.Tensor:
        """Logits predicting canvas positions ``[start, end)``.

        Args:
            canvas: ``[B, L]`` current canvas.
            start, end: the window whose predictions are wanted.
            block_start: first column of the block being decoded; the cache boundary.
            refresh: ``True`` at a block's first step: a full pass, which (re)builds the cache of
                the cached modes. Cached modes need ``start >= block_start`` otherwise.

        Returns:
            ``[B, end - start, V]`` logits, already shifted and CFG-mixed.
        """
        tokens = self._model_canvas(canvas)
        length = canvas.shape[1]
        if self.mode == "none" or refresh:
            self.cache = None
            # Position 0 has no row before it: read it from row 0 (Dream's rule, logits_at_positions').
            rows = predicting_rows(torch.arange(start, end, device=canvas.device), self.logit_shift).clamp(min=0)
            logits, cache = self._run(tokens, slice(0, length), rows, self.attention_mask, self.mode != "none")
            if self.mode != "none":
                self._keep(cache, predicting_rows(block_start, self.logit_shift), end)
            return self._guided(logits)
        if start < block_start:
            raise ValueError(f"cached passes predict the block only (start {start} < block start {block_start}).")
        fed = slice(self.fed_start, self.fed_end)
        rows = predicting_rows(torch.arange(start, end, device=canvas.device), self.logit_shift) - self.fed_start
        logits, _ = self._run(tokens[:, fed], fed, rows, self._kv_mask(length), True)
        self.cache.crop(-(self.fed_end - self.fed_start))  # drop what this pass appended
        return self._guided(logits)

    def _keep(self, cache, fed_start: int, block_end: int) -> None:
        """Cut a full pass's cache down to the positions the following steps will not feed."""
        length = cache.get_seq_length()
        self.fed_start = fed_start
        self.fed_end = length if self.mode == "prefix" else block_end
        if self.mode == "prefix":
            cache.crop(-(length - fed_start))
        else:
            drop_cached_span(cache, fed_start, block_end)
        self.cache = cache

    def _kv_mask(self, length: int) -> torch.Tensor | None:
        """The mask in the cache's key order: kept columns first, then the fed ones."""
        if self.attention_mask is None:
            return None
        mask = self.attention_mask
        kept = torch.cat([mask[:, : self.fed_start], mask[:, self.fed_end : length]], dim=1)
        return torch.cat([kept, mask[:, self.fed_start : self.fed_end]], dim=1)
