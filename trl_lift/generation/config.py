"""``DiffusionGenerationConfig``: the sampler's settings, and how one lm-eval request resolves them.

Defaults are LLaDA's reference settings (Nie et al. 2025); ``schedule="dream"`` selects Dream's own
sampler (Ye et al. 2025, :mod:`trl_lift.generation.dream`), built with Dream's argument names by
:meth:`DiffusionGenerationConfig.from_dream`; :meth:`DiffusionGenerationConfig.preset` gives the
settings of a published evaluation (:mod:`trl_lift.generation.presets`).
:meth:`DiffusionGenerationConfig.from_request` is the pure rule that turns a request's generation
kwargs (``until``, ``max_gen_toks``, ``temperature``, ...) and a run's overrides into the config of
that request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..checks import check_field_choices, require
from .cache import CACHE_MODES
from .dream import DREAM_ALGS, DREAM_FIELDS, check_dream_settings, dream_kwargs
from .presets import preset_settings
from .schedule import REMASKING_STRATEGIES

THRESHOLD_REMASKING = ("low_confidence", "margin")
SCHEDULES = ("llada", "dream")


@dataclass
class DiffusionGenerationConfig:
    """Settings of :func:`diffusion_generate`. Defaults are LLaDA's reference settings.

    ``schedule="llada"`` (default): LLaDA's semi-autoregressive blocks, the masks of a block spread
    evenly over its steps. ``schedule="dream"``: Dream's sampler, the whole span on a time grid,
    with the Dream-only fields ``alg``, ``alg_temp``, ``eps``, ``top_p``, ``top_k`` (``None``
    under the llada schedule); ``block_length`` must then equal ``gen_length``, ``steps`` may be
    any positive number and ``remasking`` is unused.
    """

    gen_length: int = field(default=128, metadata={"help": "Number of tokens to generate (>= 1)."})
    block_length: int = field(
        default=128,
        metadata={"help": "Tokens per semi-autoregressive block; must divide gen_length. gen_length = one block."},
    )
    steps: int = field(
        default=128,
        metadata={
            "help": "Total decoding steps, split evenly among the blocks: a multiple of gen_length // block_length, "
            "at most block_length per block. Ignored by threshold decoding, which runs until each block is full."
        },
    )
    temperature: float = field(
        default=0.0, metadata={"help": "0 = greedy (argmax); > 0 = Gumbel-max sampling in float64."}
    )
    remasking: str = field(
        default="low_confidence",
        metadata={"help": f"Confidence that picks the positions to commit: one of {REMASKING_STRATEGIES}.",
                  "choices": REMASKING_STRATEGIES},
    )
    cfg_scale: float = field(
        default=0.0, metadata={"help": "Classifier-free guidance scale (>= 0); 0 disables it (one pass per step)."}
    )
    threshold: float | None = field(
        default=None,
        metadata={
            "help": "Confidence threshold in (0, 1] for parallel decoding (Fast-dLLM): each step commits the most "
            "confident position and every one at least this confident. None = the reference per-step quota. "
            f"Needs remasking in {THRESHOLD_REMASKING}."
        },
    )
    cache: str = field(
        default="none",
        metadata={"help": f"KV caching, one of {CACHE_MODES}: none (exact), prefix, dual (both approximate).",
                  "choices": CACHE_MODES},
    )
    logits_eos_inf: bool = field(
        default=False, metadata={"help": "Never propose EOS (its logit set to -inf); the reference's flag."}
    )
    confidence_eos_eot_inf: bool = field(
        default=False,
        metadata={
            "help": "Give proposals of EOS / end-of-turn zero confidence so they are committed last (the reference's "
            "flag; it defers those tokens, it does not forbid them)."
        },
    )
    suppress_mask_token: bool | None = field(
        default=None,
        metadata={
            "help": "Never propose the mask token. The reference can (tiny random models do): such a position stays "
            "masked and the exact path decodes it again later, as the reference does. None = suppress on the fast "
            "paths (a cache or a threshold), which would leave it masked, and not on the exact path."
        },
    )
    schedule: str = field(
        default="llada",
        metadata={"help": f"One of {SCHEDULES}: llada = LLaDA's semi-autoregressive blocks; dream = Dream's own "
                          "sampler (use DiffusionGenerationConfig.from_dream).", "choices": SCHEDULES},
    )
    alg: str | None = field(
        default=None,
        metadata={"help": f"Dream schedule: how positions are picked, one of {DREAM_ALGS}; None = 'origin' "
                          "(Dream's default: each mask committed with probability 1 - s/t)."},
    )
    alg_temp: float | None = field(
        default=None,
        metadata={"help": "Dream schedule: >= 0; > 0 draws the committed positions from softmax(confidence / "
                          "alg_temp), None or 0 takes the most confident."},
    )
    eps: float | None = field(
        default=None, metadata={"help": "Dream schedule: last time of the grid linspace(1, eps, steps + 1), in [0, 1); "
                                        "None = 1e-3 (Dream's default)."},
    )
    top_p: float | None = field(
        default=None, metadata={"help": "Dream schedule: nucleus filter in (0, 1]; None = off."},
    )
    top_k: int | None = field(default=None, metadata={"help": "Dream schedule: top-k filter (>= 1); None = off."})
    mask_token_id: int | None = field(default=None, metadata={"help": "None = the model's facts."})
    eos_token_id: int | None = field(default=None, metadata={"help": "None = the model's facts."})
    eot_token_id: int | None = field(default=None, metadata={"help": "End-of-turn id; None = the model's facts."})
    progress: bool = field(default=False, metadata={"help": "Show a tqdm progress bar over decoding steps."})

    def __post_init__(self):
        for name in ("gen_length", "block_length", "steps"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}.")
        check_field_choices(self)
        if self.schedule == "dream":
            for name, default in DREAM_FIELDS.items():  # record Dream's defaults, not None
                if getattr(self, name) is None:
                    setattr(self, name, default)
        else:
            self._check_blocks()
        require(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}.")
        require(self.cfg_scale >= 0, f"cfg_scale must be >= 0 (0 disables guidance), got {self.cfg_scale}.")
        if self.threshold is not None:
            require(
                0 < self.threshold <= 1,
                f"threshold must be in (0, 1] (a probability), or None for the per-step quota; got {self.threshold}.",
            )
            require(
                self.remasking in THRESHOLD_REMASKING,
                f"threshold decoding compares a probability-like confidence with the threshold: use remasking in "
                f"{THRESHOLD_REMASKING}, not {self.remasking!r}, or threshold=None.",
            )
        check_dream_settings(self)

    def _check_blocks(self) -> None:
        require(
            self.gen_length % self.block_length == 0,
            f"gen_length ({self.gen_length}) must be a multiple of block_length ({self.block_length}): "
            f"set block_length to a divisor of gen_length, or block_length = gen_length for a single block.",
        )
        blocks = self.gen_length // self.block_length
        require(
            self.steps % blocks == 0,
            f"steps ({self.steps}) must divide evenly among the {blocks} blocks (gen_length // block_length): "
            f"use a multiple of {blocks}, e.g. steps={blocks * max(1, self.steps // blocks)}.",
        )
        require(
            self.steps // blocks <= self.block_length,
            f"steps per block ({self.steps // blocks}) exceeds block_length ({self.block_length}); the extra steps "
            f"would commit nothing: use steps <= gen_length ({self.gen_length}).",
        )

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    @property
    def is_stochastic(self) -> bool:
        """Whether decoding draws random numbers (Dream's ``origin`` does at every temperature)."""
        if self.temperature > 0:
            return True
        if self.schedule == "dream":
            return self.alg == "origin" or bool(self.alg_temp)
        return self.remasking == "random"

    @classmethod
    def from_dream(cls, **kwargs) -> "DiffusionGenerationConfig":
        """Dream's own sampler, from the arguments of Dream's ``DreamGenerationConfig``.

        ``max_new_tokens`` (required), ``steps`` (512), ``eps`` (1e-3), ``alg`` (``"origin"``),
        ``alg_temp`` (None), ``temperature`` (0.0), ``top_p`` (None), ``top_k`` (None), with Dream's
        defaults in brackets, and ``mask_token_id``; ``output_history=False``,
        ``return_dict_in_generate`` (the output is always a ``DiffusionGenerateOutput``) and
        ``num_return_sequences=1`` are accepted. With :func:`diffusion_generate` this reproduces
        Dream's ``diffusion_generate`` token for token at temperature 0 (see
        :mod:`trl_lift.generation.dream` for its quirks, reproduced, and what differs).

        Raises:
            ValueError: for an unknown argument, ``max_length`` (it counts the prompt), or a value out
                of range, naming the fix.
        """
        return cls(**dream_kwargs(kwargs))

    @classmethod
    def preset(cls, name: str, **overrides) -> "DiffusionGenerationConfig":
        """The sampler settings of a published evaluation (:data:`trl_lift.generation.presets.PRESETS`).

        ``overrides`` (any field) replace the preset's values; under the dream schedule
        ``block_length`` follows ``gen_length``.

        Raises:
            ValueError: for an unknown name, listing the presets.
        """
        return cls(**preset_settings(name, overrides))

    @classmethod
    def from_request(
        cls, gen_kwargs: dict, *, overrides: dict | None = None, max_gen_toks: int = 1024
    ) -> "ResolvedRequest":
        """The sampler settings of one generation request.

        Precedence, for every sampler field: ``overrides`` (a run's ``--model_args``) > the request's
        ``gen_kwargs`` (a task's ``generation_kwargs`` and ``--gen_kwargs``) > the defaults. The new
        tokens are the request's ``max_gen_toks`` (or ``gen_length``), capped at ``max_gen_toks``; the
        canvas is rounded up to whole blocks, and the steps per block stay what the settings give
        (``steps`` over the blocks of their own ``gen_length``; by default one token per step). Under
        ``schedule="dream"`` the canvas is one span of the new tokens, ``steps`` counts for the whole
        span (default: the new tokens), and a request's ``top_p`` / ``top_k`` are sampler settings.
        ``do_sample=False`` means temperature 0, ``do_sample=True`` without a temperature means 1.

        Args:
            gen_kwargs: the request's generation kwargs.
            overrides: sampler fields fixed for the whole run.
            max_gen_toks: cap on the new tokens of any request.

        Returns:
            :class:`ResolvedRequest`: the config, the stop strings as given, the tokens to keep, and notes
            (``(key, message)`` pairs) on what was ignored, overridden or clamped.
        """
        overrides = dict(overrides or {})
        kwargs = dict(gen_kwargs)
        notes = []
        until = kwargs.pop("until", None)
        requested = kwargs.pop("max_gen_toks", None)
        do_sample = kwargs.pop("do_sample", None)
        dream = overrides.get("schedule", kwargs.get("schedule")) == "dream"
        for name in IGNORED_GEN_KWARGS:
            if dream and name in DREAM_FIELDS:  # Dream's sampler has top_p / top_k
                continue
            if kwargs.pop(name, None) is not None:
                notes.append((name, f"the generation kwarg {name!r} has no meaning for diffusion sampling; ignored."))
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in SAMPLER_FIELDS}
        if kwargs:
            notes.append((str(sorted(kwargs)), f"ignoring unknown generation kwargs {sorted(kwargs)}."))
        if do_sample is False:
            settings["temperature"] = 0.0
        elif do_sample and not settings.get("temperature"):
            settings["temperature"] = 1.0
        overridden = sorted(k for k in settings if k in overrides and settings[k] != overrides[k])
        if overridden:
            notes.append((f"override{overridden}", f"--model_args {({k: overrides[k] for k in overridden})} override "
                          f"the task's own {({k: settings[k] for k in overridden})} (e.g. a task's sampling "
                          "temperature for repeated samples)."))
        settings.update(overrides)
        defaults = cls()
        gen_length = int(settings.get("gen_length", requested if requested is not None else defaults.gen_length))
        if gen_length > max_gen_toks:
            notes.append((f"clamp{gen_length}", f"a request asks for {gen_length} new tokens; clamped to "
                          f"max_gen_toks={max_gen_toks} (raise it with --model_args max_gen_toks=N)."))
            gen_length = max_gen_toks
        if dream:  # one span; steps count for the whole span (by default one token per step)
            settings.setdefault("block_length", gen_length)
            settings.setdefault("steps", gen_length)
            return ResolvedRequest(cls(**{**settings, "gen_length": gen_length}), until, gen_length, notes)
        block = int(settings.get("block_length", min(defaults.block_length, gen_length)))
        if "steps" in settings:
            reference_blocks = -(-int(settings.get("gen_length", gen_length)) // block)
            steps_per_block = max(1, int(settings["steps"]) // reference_blocks)
        else:
            steps_per_block = block
        blocks = -(-gen_length // block)
        settings.update(gen_length=blocks * block, block_length=block, steps=blocks * min(block, steps_per_block))
        return ResolvedRequest(cls(**settings), until, gen_length, notes)


# Every field a run or a request may set (``progress`` is the caller's business).
SAMPLER_FIELDS = tuple(f.name for f in dataclasses.fields(DiffusionGenerationConfig) if f.name != "progress")
# Generation kwargs of lm-eval tasks that a diffusion sampler has no use for: ignored with a note.
IGNORED_GEN_KWARGS = ("top_p", "top_k", "min_p", "num_beams", "repetition_penalty", "typical_p")


@dataclass
class ResolvedRequest:
    """One request's sampler settings (:meth:`DiffusionGenerationConfig.from_request`).

    Attributes:
        config: the sampler config (``gen_length`` rounded up to whole blocks).
        until: the request's stop strings, as given (the harness normalises them).
        keep: number of generated tokens to keep (the request's budget).
        notes: ``(key, message)`` pairs worth a warning (once per key).
    """

    config: DiffusionGenerationConfig
    until: object
    keep: int
    notes: list = field(default_factory=list)

