"""Diffusion sampling for masked diffusion LMs: the reference sampler, batched, cached and parallel.

Implements LLaDA's semi-autoregressive low-confidence remasking sampler (Nie et al. 2025, "Large
Language Diffusion Models", the reference ``generate``), with the remasking variants Dream users
expect (Ye et al. 2025, "Dream 7B") and Fast-dLLM's speed-ups (Wu et al. 2025): KV caching of the
prefix or of everything but the block, and confidence-threshold parallel decoding.

At temperature 0, in float32, with ``cache="none"`` and no threshold, :func:`diffusion_generate`
reproduces the reference token for token (see ``../shared/docs/models.md``). Where it departs from
the reference on purpose:

- confidence is computed in float32 or wider and exact ties go to the leftmost position
  (:mod:`trl_lift.generation.schedule`); the reference's bf16 confidences and ``topk`` order do not;
- left-padded rows get position ids from the attention mask, so a row of a batch equals its solo run;
- ``confidence_eos_eot_inf`` removes both EOS and end-of-turn from the confidence at every
  temperature (the reference drops EOS only at temperature 0);
- CFG works without an attention mask (the reference crashes).

The fast paths (``cache`` other than ``"none"``, or a ``threshold``) never propose the mask token
unless told otherwise (``suppress_mask_token``): the reference can, leaving the position masked for a
later step, which the cached paths do not revisit.

``schedule="dream"`` runs Dream's own sampler instead (:mod:`trl_lift.generation.dream`), on the
same canvas, attention convention and forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion.masking import top_k_positions
from ..models.facts import get_diffusion_facts, is_bidirectional, text_config
from ..models.vocabulary import check_ids_in_vocabulary
from .cache import CanvasForward, canvas_position_ids, check_cache_supported
from .config import DiffusionGenerationConfig
from .dream import dream_decode
from .schedule import propose_tokens, select_by_threshold, token_confidence, transfer_schedule


@dataclass
class DiffusionGenerateOutput:
    """Result of :func:`diffusion_generate`.

    Attributes:
        sequences: ``[B, P + gen_length]`` int64: the prompts, unchanged (padding included), then the
            generated tokens.
        nfe: number of network function evaluations: forward passes over the batch, a CFG step
            counting two (conditional and unconditional canvases, run as one batched call).
    """

    sequences: torch.LongTensor
    nfe: int


def _resolve_ids(model, config: DiffusionGenerationConfig) -> tuple[int, int | None, int | None, bool]:
    """``(mask, eos, eot, logit_shift)``, the config's ids taking precedence over the model's facts."""
    try:
        facts = get_diffusion_facts(model)
    except ValueError:
        if config.mask_token_id is None:
            raise
        facts = None
    mask = config.mask_token_id if config.mask_token_id is not None else facts.mask_token_id
    eos = config.eos_token_id if config.eos_token_id is not None else getattr(facts, "eos_token_id", None)
    eot = config.eot_token_id if config.eot_token_id is not None else getattr(facts, "eot_token_id", None)
    if (config.logits_eos_inf or config.confidence_eos_eot_inf) and eos is None:
        raise ValueError(
            "logits_eos_inf / confidence_eos_eot_inf need an EOS id: set DiffusionGenerationConfig(eos_token_id=...) "
            "or model.config.eos_token_id."
        )
    vocab = _vocab_size(model)
    used = {"mask_token_id": mask}
    if config.logits_eos_inf or config.confidence_eos_eot_inf:
        used["eos_token_id"] = eos
    if config.confidence_eos_eot_inf and eot is not None:
        used["eot_token_id"] = eot
    for name, value in used.items():
        if vocab is not None and not 0 <= value < vocab:
            raise ValueError(
                f"{name} {value} is outside the model's vocabulary (size {vocab}): pass the model's own id, "
                f"e.g. DiffusionGenerationConfig({name}=tokenizer.convert_tokens_to_ids(...))."
            )
    return int(mask), eos, eot, bool(getattr(facts, "logit_shift", False))


def _vocab_size(model) -> int | None:
    return getattr(text_config(model), "vocab_size", None)


def _check_inputs(model, input_ids, attention_mask, mask_id: int) -> None:
    if not is_bidirectional(model):
        raise ValueError(
            "diffusion_generate needs a bidirectional model (config.is_causal = False); load it with "
            "trl_lift.load_diffusion_model(...) or set model.config.is_causal = False for a native diffusion LM."
        )
    if input_ids.dim() != 2 or input_ids.shape[1] == 0 or input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"input_ids must be a [batch, prompt_length] integer tensor with prompt_length >= 1, got "
            f"shape {tuple(input_ids.shape)} and dtype {input_ids.dtype}; add a batch dimension with input_ids[None]."
        )
    check_ids_in_vocabulary(input_ids, _vocab_size(model), what="input_ids (the prompts)")
    if (input_ids == mask_id).any():
        raise ValueError(
            f"input_ids contain the mask token id {mask_id}. If it is the padding id, pad with another token "
            "(e.g. tokenizer.pad_token_id = tokenizer.eos_token_id); a prompt must not contain masks."
        )
    if attention_mask is None:
        return
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape {tuple(input_ids.shape)}."
        )
    mask = attention_mask.long()
    if ((mask != 0) & (mask != 1)).any() or (mask[:, 1:] < mask[:, :-1]).any():
        raise ValueError(
            "attention_mask must be 0/1 and left-padded (zeros before the prompt): set tokenizer.padding_side = 'left'."
        )


@torch.no_grad()
def diffusion_generate(
    model,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    generation_config: DiffusionGenerationConfig | None = None,
    generator: torch.Generator | None = None,
    on_step=None,
) -> DiffusionGenerateOutput:
    """Generate ``gen_length`` tokens after each prompt by masked-diffusion decoding.

    The canvas is the prompt followed by ``gen_length`` mask tokens, decoded block by block, left to
    right. Each step, the model proposes a token at every masked position of the window (the block,
    plus with ``cache="none"`` any position an earlier block left masked) and commits the most
    confident ones: a per-step quota spread evenly over the block's steps (the reference), or all
    above ``threshold``. Committed tokens are final (a committed mask token, which only the exact
    path proposes by default, leaves its position masked, as in the reference). With
    ``schedule="dream"`` the whole span is decoded on Dream's time grid instead
    (:func:`trl_lift.generation.dream.dream_decode`).

    Args:
        model: a bidirectional model (:func:`trl_lift.load_diffusion_model`), in eval mode.
        input_ids: ``[B, P]`` prompts, left-padded (the pad id must not be the mask id).
        attention_mask: ``[B, P]`` 0/1 mask, or ``None`` for unpadded prompts.
        generation_config: a :class:`DiffusionGenerationConfig`; ``None`` = its defaults.
        generator: source of randomness (temperature > 0, ``remasking="random"``, Dream's ``origin``
            and ``alg_temp``); ``None`` uses torch's global generator.
        on_step: called after every decoding step with the canvas ``[B, P + gen_length]`` (read it, do not
            change it): e.g. to show the answer filling in (``trl-lift generate --show-canvas``).

    Returns:
        :class:`DiffusionGenerateOutput` with ``sequences`` ``[B, P + gen_length]`` and ``nfe``.
    """
    config = generation_config or DiffusionGenerationConfig()
    mask_id, eos_id, eot_id, logit_shift = _resolve_ids(model, config)
    _check_inputs(model, input_ids, attention_mask, mask_id)
    check_cache_supported(model, config.cache)
    device = getattr(model, "device", input_ids.device)
    input_ids = input_ids.to(device)
    attention_mask = None if attention_mask is None else attention_mask.to(device)
    batch, prompt_length = input_ids.shape
    length = prompt_length + config.gen_length

    canvas = torch.full((batch, length), mask_id, dtype=torch.long, device=device)
    canvas[:, :prompt_length] = input_ids
    full_mask = None
    if attention_mask is not None:
        full_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, config.gen_length)], dim=1)
    positions = canvas_position_ids(full_mask if full_mask is not None else torch.ones_like(canvas))
    forward = CanvasForward(
        model,
        full_mask,
        positions,
        prompt_length=prompt_length,
        mask_token_id=mask_id,
        cache=config.cache,
        logit_shift=logit_shift,
        cfg_scale=config.cfg_scale,
    )
    suppress_mask = config.suppress_mask_token
    if suppress_mask is None:
        suppress_mask = config.cache != "none" or config.threshold is not None
    banned_logits = ([eos_id] if config.logits_eos_inf else []) + ([mask_id] if suppress_mask else [])
    deferred = [i for i in (eos_id, eot_id) if i is not None] if config.confidence_eos_eot_inf else []

    progress = _StepReport(_progress_bar(config), on_step, canvas)
    if config.schedule == "dream":
        dream_decode(canvas, forward, config, prompt_length=prompt_length, mask_id=mask_id, banned_ids=banned_logits,
                     generator=generator, progress=progress)
    for block in range(config.num_blocks if config.schedule == "llada" else 0):
        block_start = prompt_length + block * config.block_length
        block_end = block_start + config.block_length
        masked = canvas[:, block_start:block_end] == mask_id  # [B, Lb]
        quotas = transfer_schedule(masked.sum(dim=1), config.steps_per_block)  # [B, S]
        max_steps = config.block_length if config.threshold is not None else config.steps_per_block
        for step in range(max_steps):
            if config.threshold is not None and not (canvas[:, block_start:block_end] == mask_id).any():
                break
            start = _window_start(canvas, mask_id, prompt_length, block_start, cached=config.cache != "none")
            logits = forward(canvas, start, block_end, block_start=block_start, refresh=step == 0)  # [B, W, V]
            if banned_logits:
                logits = logits.index_fill(-1, torch.tensor(banned_logits, device=device), float("-inf"))
            proposals = propose_tokens(logits, config.temperature, generator)  # [B, W]
            confidence = token_confidence(
                logits, proposals, config.remasking, excluded_ids=deferred, generator=generator
            )  # [B, W]
            window = canvas[:, start:block_end]
            candidates = window == mask_id
            if config.threshold is None:
                commit = top_k_positions(confidence, candidates, quotas[:, step])  # the reference's quota
            else:
                commit = select_by_threshold(confidence, candidates, config.threshold)
            canvas[:, start:block_end] = torch.where(commit, proposals, window)
            progress.update(1)
    progress.close()
    return DiffusionGenerateOutput(sequences=canvas, nfe=forward.nfe)


def _window_start(canvas: torch.Tensor, mask_id: int, prompt_length: int, block_start: int, *, cached: bool) -> int:
    """First column whose prediction is needed: the block start, or, uncached, an earlier still-masked column.

    An earlier block can leave a position masked when the model proposed the mask token itself
    there; the reference keeps such positions as candidates, and so does the uncached path.
    """
    if cached:
        return block_start
    leftover = (canvas[:, prompt_length:block_start] == mask_id).any(dim=0).nonzero()
    return prompt_length + int(leftover[0]) if len(leftover) else block_start


class _StepReport:
    """Counts decoding steps: the progress bar (if any) and the ``on_step`` callback (if any) see each one."""

    def __init__(self, bar, on_step, canvas: torch.Tensor):
        self.bar, self.on_step, self.canvas = bar, on_step, canvas

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
        if self.on_step is not None:
            self.on_step(self.canvas)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(config: DiffusionGenerationConfig):
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    total = None if config.threshold is not None else config.steps
    return tqdm(total=total, desc="diffusion steps", unit="step")
