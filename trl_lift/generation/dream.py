"""Dream's own sampler (Ye et al. 2025, "Dream 7B"): the whole span decoded on a time grid.

Reproduces Dream's ``diffusion_generate`` (``DreamGenerationMixin._sample`` of Dream-org/Dream),
written here from its description, not copied. The canvas is the prompt and ``gen_length`` masks,
decoded at once (no blocks) over ``steps`` steps of the grid ``t = linspace(1, eps, steps + 1)``.
At step ``i`` (``t = t_i``, ``s = t_{i+1}``) every masked position gets a proposal from
:func:`sample_tokens`, and:

- ``alg="origin"``: each masked position is committed independently with probability
  ``1 - s / t`` (1 at the last step);
- the other algs (``maskgit_plus``: probability, ``topk_margin``: top-1 minus top-2,
  ``entropy``: ``sum p log p``): ``int(n * (1 - s / t))`` positions per row are committed
  (``int(n)`` at the last step), the most confident ones, or drawn from
  ``softmax(confidence / alg_temp)`` when ``alg_temp > 0``.

Dream's quirks, reproduced on purpose (the point is to reproduce published numbers):

- ``n`` is the number of masks **averaged over the batch** (a float, truncated by ``int``), so a
  row's quota depends on the other rows once their mask counts differ. They differ only after a
  row committed a proposal of the mask token itself (which leaves the position masked): set
  ``suppress_mask_token=True`` to rule that out, and a row of a batch then equals its solo run.
- The positions are chosen over the **whole canvas** with ``-inf`` outside the masks: a row asked
  for more positions than it has masks also "commits" some unmasked positions (prompt or decoded
  tokens, in ``torch.topk``'s order among equal values), and they receive the **mask token** (Dream
  fills a canvas of masks with the proposals at masked positions). A row with more masks than the
  batch average keeps some after the last step. Both happen only after a mask-token commit.
- Exact ties among confidences go in ``torch.topk``'s order, as in Dream (the LLaDA schedule sends
  ties to the leftmost position instead).
- Dream runs every step's forward pass. Here a step that commits nothing and draws nothing (no
  mask left; at temperature 0 a quota of 0; ``origin`` with no position drawn) skips its pass:
  the same tokens, fewer passes (``nfe`` counts the passes run).

Where this departs from Dream: confidences and probabilities are computed in float32 or wider
(Dream uses the logits' dtype; the two agree in float32), and the attention convention of
left-padded batches: Dream passes a 4-D mask ``mask_i AND mask_j`` and position ids
``cumsum(mask) - 1`` with pads at 1; the sampler passes the 2-D mask (pads are masked as keys) and
pads at position 0. The logits of every non-pad position are identical (tested); only rows at pad
positions differ, and Dream reads those only if its quirk re-masks a pad column.

Not reproduced: Dream's per-step hooks (``generation_tokens_hook_func``, ``generation_logits_hook_func``)
and intermediate history (``output_history``), which ``from_dream`` refuses; and the bare ``except``
around Dream's categorical draw, which falls back to the argmax if torch.distributions rejects the
probabilities (it accepts softmax outputs at Dream's vocabulary size in float32 and bf16, measured).

Randomness (``origin``'s draws, ``temperature > 0``, ``alg_temp > 0``) comes from the same torch
calls in the same order as Dream's (``rand``, a categorical draw through ``multinomial``,
``multinomial`` without replacement), on the model's device: a generator on that device, or
``None`` (torch's global one, as Dream), reproduces Dream's draws under the same seed; a generator
on another device (lm-eval's per-request CPU generators) seeds one on the model's device.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_choice, check_range, require
from .schedule import select_by_threshold

DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
# Dream-only fields of DiffusionGenerationConfig, and their value under the dream schedule when None.
DREAM_FIELDS = {"alg": "origin", "alg_temp": None, "eps": 1e-3, "top_p": None, "top_k": None}
# Dream's DreamGenerationConfig defaults for the other arguments of from_dream.
DREAM_DEFAULTS = {"steps": 512, "temperature": 0.0}
_CONFIDENCE = {"maskgit_plus": "probability", "topk_margin": "margin", "entropy": "entropy", "origin": "probability"}


def check_dream_settings(config) -> None:
    """Refuse settings that the dream schedule does not have (``config`` a ``DiffusionGenerationConfig``)."""
    dream = config.schedule == "dream"
    if not dream:
        given = [name for name in DREAM_FIELDS if getattr(config, name) is not None]
        require(not given, f"{given} are settings of Dream's sampler: add schedule='dream' (or build the config with "
                           "DiffusionGenerationConfig.from_dream(...)), or drop them.")
        return
    check_choice("alg", config.alg, DREAM_ALGS)
    check_range("eps", config.eps, 0, 1, high_open=True)
    if config.alg_temp is not None:
        check_range("alg_temp", config.alg_temp, 0)
    if config.top_p is not None:
        check_range("top_p", config.top_p, 0, 1, low_open=True)
    if config.top_k is not None:
        check_range("top_k", config.top_k, 1, integer=True)
    require(config.block_length == config.gen_length,
            f"the dream schedule decodes the whole span at once: set block_length = gen_length ({config.gen_length}), "
            f"not {config.block_length}, or build the config with DiffusionGenerationConfig.from_dream(...).")
    require(config.remasking == "low_confidence",
            f"remasking={config.remasking!r} belongs to the llada schedule; Dream's sampler picks positions by alg "
            f"(one of {DREAM_ALGS}).")
    require(not config.confidence_eos_eot_inf,
            "confidence_eos_eot_inf is a flag of LLaDA's sampler; with the dream schedule use logits_eos_inf=True.")
    require(config.cache in ("none", "prefix"),
            f"cache={config.cache!r}: the dream schedule's block is the whole generated span, so there is no suffix "
            "to cache: use cache='prefix' (the prompt's keys and values, computed once) or cache='none'.")
    fast = config.cache != "none" or config.threshold is not None
    if fast:
        require(config.suppress_mask_token is not False,
                "the dream schedule's cache / threshold paths need suppress_mask_token (None or True): a committed "
                "mask token makes Dream's batch-averaged quota re-mask prompt columns that they cannot revisit.")
    if config.threshold is not None:
        require(config.alg in ("maskgit_plus", "topk_margin"),
                f"threshold decoding compares a probability-like confidence with the threshold: use alg 'maskgit_plus' "
                f"or 'topk_margin', not {config.alg!r}, or threshold=None.")
        require(not config.alg_temp, "threshold decoding picks positions by the threshold, not by sampling: "
                                     "set alg_temp=None (or 0), or threshold=None.")


def dream_kwargs(kwargs: dict) -> dict:
    """``DiffusionGenerationConfig`` fields for Dream's ``DreamGenerationConfig`` arguments (``from_dream``)."""
    kwargs = dict(kwargs)
    if "max_length" in kwargs:
        raise ValueError("max_length counts the prompt, which a sampler config does not know: pass "
                         "max_new_tokens = max_length - prompt_length instead.")
    if kwargs.pop("output_history", False):
        raise ValueError("output_history=True: diffusion_generate does not record the intermediate canvases; "
                         "drop it (or pass progress via DiffusionGenerationConfig(progress=True)).")
    kwargs.pop("return_dict_in_generate", None)  # the output is always a DiffusionGenerateOutput (.sequences)
    if kwargs.pop("num_return_sequences", 1) != 1:
        raise ValueError("num_return_sequences must be 1: repeat the prompts in the batch instead "
                         "(input_ids.repeat_interleave(n, dim=0)).")
    accepted = ("max_new_tokens", "steps", "eps", "alg", "alg_temp", "temperature", "top_p", "top_k", "mask_token_id")
    unknown = sorted(set(kwargs) - set(accepted))
    require(not unknown, f"from_dream got unknown arguments {unknown}; it takes Dream's DreamGenerationConfig "
                         f"names {list(accepted)} (plus output_history=False, return_dict_in_generate, "
                         "num_return_sequences=1). Other settings: dataclasses.replace(config, ...).")
    require("max_new_tokens" in kwargs,
            "from_dream needs max_new_tokens (Dream's default, max_length=20 over the prompt, means 20 new tokens).")
    check_range("max_new_tokens", kwargs["max_new_tokens"], 1, integer=True)
    settings = {**DREAM_DEFAULTS, **{k: v for k, v in DREAM_FIELDS.items() if v is not None}, **kwargs}
    check_range("steps", settings["steps"], 1, integer=True)
    check_range("temperature", settings["temperature"], 0)
    length = settings.pop("max_new_tokens")
    return {"schedule": "dream", "gen_length": length, "block_length": length, **settings}


# --- the maths of one step --------------------------------------------------------------------


def dream_timesteps(steps: int, eps: float, device=None) -> torch.Tensor:
    """``[steps + 1]`` float32 times ``linspace(1, eps, steps + 1)``, made on ``device`` (as Dream does)."""
    return torch.linspace(1, eps, steps + 1, device=device)


def dream_transfer_count(masked: torch.Tensor, t: torch.Tensor, s: torch.Tensor, last: bool) -> int:
    """Positions each row commits at one step: ``int(n * (1 - s / t))``, ``int(n)`` at the last step.

    ``n`` is Dream's ``masked.sum() / batch``: the masks **averaged over the batch**, in float32
    (Dream's quirk: 5 and 2 masks give ``n = 3.5`` for both rows).

    Args:
        masked: ``[B, L]`` bool, the masked positions of the canvas.
        t, s: 0-d float32 tensors, this step's time and the next.
        last: whether this is the last step.
    """
    average = masked.sum() / masked.shape[0]
    return int(average) if last else int(average * (1 - s / t))


def filter_logits(logits: torch.Tensor, top_p: float | None, top_k: int | None) -> torch.Tensor:
    """Dream's nucleus (``top_p``) then top-k filters: removed logits become the dtype's minimum.

    Nucleus: sort descending, remove the tokens whose cumulative softmax exceeds ``top_p``, except
    the first such token (the smallest set reaching ``top_p`` is kept). Top-k: remove the logits
    below the ``k``-th largest (equal values are kept). ``top_p`` of 1 or ``None`` and ``top_k``
    ``None`` leave the logits as they are.

    Args:
        logits: ``[N, V]``.

    Returns:
        ``[N, V]``, a new tensor.
    """
    floor = torch.finfo(logits.dtype).min
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, dim=-1, descending=True)
        remove = torch.softmax(ordered, dim=-1).cumsum(dim=-1) > top_p
        remove = torch.cat([torch.zeros_like(remove[..., :1]), remove[..., :-1]], dim=-1)  # keep the first above
        logits = logits.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), floor)
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, floor)
    return logits


def sample_tokens(
    logits: torch.Tensor,
    *,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    confidence: str = "probability",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream's proposal and confidence at each masked position.

    ``probs = softmax(filter_logits(logits / T))`` (no division at ``T = 0``); the proposal is
    ``argmax`` at ``T = 0``, else a categorical draw (``torch.multinomial`` on the normalised
    probabilities, the call ``torch.distributions.Categorical.sample`` makes). Confidence:
    ``probability`` of the proposal, ``margin`` top-1 minus top-2 probability, or ``entropy``
    ``sum p log(p + 1e-10)`` (Dream's negative entropy).

    Args:
        logits: ``[N, V]`` logits of the ``N`` masked positions (computed in float32 or wider).
        generator: source of the categorical draws, on the logits' device (``None``: torch's global one).

    Returns:
        ``(confidence [N] float, tokens [N] int64)``.
    """
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if temperature > 0:
        logits = logits / temperature
    probs = torch.softmax(filter_logits(logits, top_p, top_k), dim=-1)  # [N, V]
    if temperature > 0:
        normalised = probs / probs.sum(-1, keepdim=True)
        tokens = torch.multinomial(normalised, 1, replacement=True, generator=generator).squeeze(-1)
        scores = probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    else:
        scores, tokens = probs.max(dim=-1)
    if confidence == "margin":
        top2 = probs.topk(2, dim=-1).values
        scores = top2[:, 0] - top2[:, 1]
    elif confidence == "entropy":
        scores = (probs * torch.log(probs + 1e-10)).sum(dim=-1)
    return scores, tokens


def choose_positions(confidence: torch.Tensor, count: int, alg_temp: float | None, generator=None) -> torch.Tensor:
    """Dream's ``count`` positions per row from a full-canvas confidence (``-inf`` off the masks).

    ``torch.topk`` (``alg_temp`` ``None`` or 0), or ``count`` draws without replacement from
    ``softmax(confidence / alg_temp)``. Either may return ``-inf`` positions when a row has fewer
    masks than ``count`` (Dream's quirk; see the module docstring).

    Args:
        confidence: ``[B, L]`` float.

    Returns:
        ``[B, count]`` int64 column indices.
    """
    if not alg_temp:
        return torch.topk(confidence, count, dim=-1).indices
    weights = torch.softmax(confidence / alg_temp, dim=-1)
    return torch.multinomial(weights, num_samples=count, generator=generator)


# --- the loop ---------------------------------------------------------------------------------


def _draw_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """The generator to draw with on ``device``: ``generator`` if it lives there, else one seeded from it."""
    if generator is None or torch.device(generator.device) == device:
        return generator
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def dream_decode(canvas, forward, config, *, prompt_length: int, mask_id: int, banned_ids=(), generator=None,
                 progress=None) -> None:
    """Run Dream's schedule on ``canvas`` in place.

    Args:
        canvas: ``[B, L]`` prompt then masks; modified in place.
        forward: a :class:`trl_lift.generation.cache.CanvasForward` over the canvas.
        config: a ``DiffusionGenerationConfig`` with ``schedule="dream"``.
        prompt_length: ``P``, first generated column.
        mask_id: the mask token id.
        banned_ids: vocabulary ids whose logits are set to ``-inf`` before sampling.
        generator: source of randomness (see the module docstring).
        progress: a tqdm bar updated once per step, or ``None``.
    """
    device, length = canvas.device, canvas.shape[1]
    rng = _draw_generator(generator, device)
    banned = torch.tensor(list(banned_ids), device=device, dtype=torch.long)
    sampling = {"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k,
                "confidence": _CONFIDENCE[config.alg], "generator": rng}

    def masked_logits(masked):
        """``[N, V]`` logits of the masked positions, in Dream's (row-major) order."""
        start = int(masked.any(dim=0).nonzero()[0])  # Dream's quirk can re-mask columns left of the span
        logits = forward(canvas, start, length, block_start=prompt_length, refresh=forward.nfe == 0)
        if len(banned):
            logits = logits.index_fill(-1, banned, float("-inf"))
        return logits[masked[:, start:]]

    if config.threshold is not None:
        for _ in range(config.gen_length):  # each step commits at least one position of every unfinished row
            masked = canvas == mask_id
            if not masked.any():
                break
            if progress is not None:
                progress.update(1)
            scores, tokens = sample_tokens(masked_logits(masked), **sampling)
            commit = select_by_threshold(_on_canvas(masked, scores, -math.inf), masked, config.threshold)
            canvas[commit] = _on_canvas(masked, tokens, mask_id)[commit]
        return

    timesteps = dream_timesteps(config.steps, config.eps, device)
    for i in range(config.steps):
        if progress is not None:
            progress.update(1)
        masked = canvas == mask_id  # [B, L]
        count = int(masked.sum())
        if count == 0:
            continue
        t, s, last = timesteps[i], timesteps[i + 1], i == config.steps - 1
        if config.alg == "origin":
            drawn = torch.rand(count, device=device, generator=rng) < (1 if last else 1 - s / t)  # [N]
            if drawn.any():
                proposals = torch.full((count,), mask_id, dtype=torch.long, device=device)
                proposals[drawn] = sample_tokens(masked_logits(masked)[drawn], **sampling)[1]
                canvas[masked] = proposals
            continue
        quota = dream_transfer_count(masked, t, s, last)
        if quota == 0 and config.temperature == 0:
            continue  # Dream runs this pass and commits nothing; a sampled step still draws, so it runs
        scores, tokens = sample_tokens(masked_logits(masked), **sampling)
        if quota > 0:
            chosen = choose_positions(_on_canvas(masked, scores, -math.inf), quota, config.alg_temp, rng)  # [B, n]
            canvas.scatter_(1, chosen, _on_canvas(masked, tokens, mask_id).gather(1, chosen))


def _on_canvas(masked: torch.Tensor, values: torch.Tensor, fill) -> torch.Tensor:
    """``[B, L]``: ``values`` ``[N]`` at the masked positions (row-major), ``fill`` elsewhere."""
    out = torch.full(masked.shape, fill, dtype=values.dtype, device=values.device)
    out[masked] = values
    return out
