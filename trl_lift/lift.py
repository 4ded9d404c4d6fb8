"""LIFT: Learnability-Informed Fine-Tuning of diffusion LMs (Parashar et al., ICML 2026).

Each step masks a superset ``M`` of the answer at ratio ``t + rho``, picks a component from ``t``
(Bottom-K: the hardest tokens at small ``t``; vanilla: a random subset in between; Top-K: the
easiest tokens at large ``t``), keeps ``K ~ t |answer|`` positions of ``M`` masked according to the
live model's confidence (a scoring pass without gradient), reveals the rest and trains on the kept
set with the ``1 / t`` weight. Steps 1-8 of ../shared/docs/lift-method.md.

The maths are pure tensor functions (randomness passed in as a ``torch.Generator``);
:class:`LIFTCallback` is the thin token-weighting callback that strings them together.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from .masking import apply_mask, mask_positions, random_subset, sample_times, top_k_positions, uniform
from .token_weighting import DiffusionBatch, NoisedBatch, Scorer, TokenWeightingCallback, time_weights

# Component codes, in the order of the bands (small t -> large t).
BOTTOM, VANILLA, TOP = 0, 1, 2
COMPONENT_NAMES = ("bottom", "vanilla", "top")

RHO_RULES = ("reference", "paper")
POLICIES = ("time", "random", "reversed")
COMPONENT_SETS = ("both", "top_only", "bottom_only")
SCOPES = ("sequence", "batch")
SCORING_MODES = ("train", "eval")


# ---- steps 1-2: the extra ratio rho --------------------------------------------------------------
def extra_ratios(
    t: torch.Tensor, *, eps: float = 1e-3, rule: str = "reference", floor: float = 0.1, generator=None
) -> torch.Tensor:
    """Draw the extra masking ratio ``rho`` of each sequence (step 2).

    - ``"reference"`` (the reference code): with ``t0 = (t - eps) / (1 - eps)`` the undistorted
      draw behind ``t``, ``rho ~ U(floor, 1 - t0)`` when ``1 - t0 > floor``, else ``U(0, 1 - t0)``.
    - ``"paper"`` (the paper's figure): ``rho ~ U(0, 1 - t)``.

    Args:
        t: ``[B]`` masking ratios from :func:`~trl_lift.masking.sample_times` with the same ``eps``.
        eps: the time epsilon ``t`` was drawn with.
        rule: ``"reference"`` or ``"paper"``.
        floor: lower bound of the reference rule.
        generator: source of randomness (one ``U(0, 1)`` draw per sequence).

    Returns:
        ``[B]`` float tensor, ``rho >= 0``.
    """
    if rule not in RHO_RULES:
        raise ValueError(f"rho_rule must be one of {RHO_RULES}, got {rule!r}.")
    u = uniform(t.shape, generator=generator, device=t.device)
    if rule == "paper":
        return (1.0 - t) * u
    high = (1.0 - (t - eps) / (1.0 - eps)).clamp(min=0.0)
    low = torch.where(high > floor, torch.full_like(high, floor), torch.zeros_like(high))
    return low + (high - low) * u


# ---- step 4: the component -----------------------------------------------------------------------
def band_components(t: torch.Tensor, bands: int = 3) -> torch.Tensor:
    """The band rule: which component each masking ratio trains (step 4).

    With ``H = bands``: ``t < 1/H`` -> Bottom-K, ``1/H <= t <= 1 - 1/H`` -> vanilla (the boundaries
    go to vanilla), ``t > 1 - 1/H`` -> Top-K. ``H = 2`` ("LIFT-2") has no vanilla band:
    ``t >= 0.5`` -> Top-K, else Bottom-K.

    Args:
        t: ``[B]`` masking ratios (compared in their own dtype).
        bands: ``H >= 2``.

    Returns:
        ``[B]`` long tensor of component codes (``BOTTOM`` = 0, ``VANILLA`` = 1, ``TOP`` = 2).
    """
    if bands < 2:
        raise ValueError(f"bands must be an integer >= 2, got {bands}.")
    if bands == 2:
        return torch.where(t >= 0.5, TOP, BOTTOM).long()
    out = torch.full_like(t, VANILLA, dtype=torch.long)
    out = out.masked_fill(t < 1.0 / bands, BOTTOM)
    return out.masked_fill(t > 1.0 - 1.0 / bands, TOP)


def choose_components(
    t: torch.Tensor,
    *,
    bands: int = 3,
    policy: str = "time",
    scope: str = "sequence",
    components: str = "both",
    generator=None,
) -> torch.Tensor:
    """The component of each sequence under a policy (LIFT and its controls).

    Args:
        t: ``[B]`` masking ratios.
        bands: ``H`` of the band rule.
        policy: ``"time"`` (LIFT's band rule), ``"random"`` (uniform over the components the band
            rule uses, ignoring ``t``: three for ``H >= 3``, Top-K and Bottom-K for ``H = 2``) or
            ``"reversed"`` (the band rule with Top-K and Bottom-K swapped).
        scope: ``"sequence"`` (one choice per sequence) or ``"batch"`` (one choice for the
            micro-batch, from the mean ``t``; one random draw for ``"random"``).
        components: ``"both"``, ``"top_only"`` (Bottom-K choices become vanilla) or
            ``"bottom_only"`` (Top-K choices become vanilla).
        generator: source of randomness (used by ``"random"`` only).

    Returns:
        ``[B]`` long tensor of component codes.
    """
    for value, allowed, name in ((policy, POLICIES, "policy"), (scope, SCOPES, "component_scope"),
                                 (components, COMPONENT_SETS, "components")):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
    rows = t.shape[0] if scope == "sequence" else 1
    if policy == "random":
        pool = torch.tensor([BOTTOM, TOP] if bands == 2 else [BOTTOM, VANILLA, TOP], device=t.device)
        draws = uniform((rows,), generator=generator, device=t.device)
        chosen = pool[(draws * len(pool)).long().clamp(max=len(pool) - 1)]
    else:
        chosen = band_components(t if scope == "sequence" else t.mean().reshape(1), bands)
        if policy == "reversed":
            chosen = 2 - chosen  # BOTTOM <-> TOP, VANILLA stays
    chosen = chosen.expand(t.shape[0]).clone()
    if components == "top_only":
        chosen = chosen.masked_fill(chosen == BOTTOM, VANILLA)
    elif components == "bottom_only":
        chosen = chosen.masked_fill(chosen == TOP, VANILLA)
    return chosen


# ---- steps 5-6: K and the selection ---------------------------------------------------------------
def keep_counts(num_masked: torch.Tensor, t: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """How many superset positions stay masked (step 5).

    ``K = round(|M| * clamp(t / max(t + rho, 1e-3), 1e-3, 1))`` (round half to even), so about
    ``t`` times the answer length stays masked.

    Args:
        num_masked: ``[B]`` superset sizes ``|M|``.
        t, rho: ``[B]`` ratios.

    Returns:
        ``[B]`` long tensor.
    """
    fraction = (t / (t + rho).clamp(min=1e-3)).clamp(1e-3, 1.0)
    return torch.round(num_masked.to(fraction.dtype) * fraction).long()


def select_positions(
    confidence: torch.Tensor,
    superset: torch.Tensor,
    k: torch.Tensor,
    component: torch.Tensor,
    *,
    generator=None,
) -> torch.Tensor:
    """The set ``S`` of superset positions kept masked and trained (step 6).

    Top-K rows keep their ``K`` most confident positions, Bottom-K rows their ``K`` least
    confident (ties towards the lower position); vanilla rows keep a uniformly random
    ``max(K, 1)``-subset (at least one token).

    Args:
        confidence: ``[B, L]`` ``log p(x0_i | x_sup)`` (read on superset positions of Top/Bottom rows).
        superset: ``[B, L]`` bool, ``M``.
        k: ``[B]`` counts from :func:`keep_counts`.
        component: ``[B]`` component codes.
        generator: source of randomness for the vanilla subsets (one ``[B, L]`` draw).

    Returns:
        ``[B, L]`` bool, a subset of ``superset``.
    """
    top = top_k_positions(confidence, superset, k)
    bottom = top_k_positions(-confidence.float(), superset, k)
    vanilla = random_subset(superset, k.clamp(min=1), generator=generator)
    component = component[:, None]
    return torch.where(component == TOP, top, torch.where(component == BOTTOM, bottom, vanilla))


def selection_metrics(
    component: torch.Tensor,
    superset: torch.Tensor,
    selected: torch.Tensor,
    answer_mask: torch.Tensor,
    confidence: torch.Tensor | None,
) -> dict[str, float]:
    """What LIFT selected this step, as scalars to log.

    ``lift_share_<component>``: share of sequences per component; ``mask_ratio`` and
    ``lift_superset_ratio``: ``|S|`` and ``|M|`` over the answer length (means over sequences);
    ``lift_conf_selected_<c>`` / ``lift_conf_revealed_<c>``: mean scoring-pass log-prob of the kept
    and revealed positions of Top-K / Bottom-K rows (only when there are some).
    """
    length = answer_mask.sum(1).clamp(min=1).float()
    metrics = {
        f"lift_share_{name}": (component == code).float().mean().item() for code, name in enumerate(COMPONENT_NAMES)
    }
    metrics["mask_ratio"] = (selected.sum(1) / length).mean().item()
    metrics["lift_superset_ratio"] = (superset.sum(1) / length).mean().item()
    if confidence is not None:
        for code in (BOTTOM, TOP):
            rows = (component == code)[:, None]
            for key, positions in (("selected", selected), ("revealed", superset & ~selected)):
                chosen = positions & rows
                if chosen.any():
                    name = f"lift_conf_{key}_{COMPONENT_NAMES[code]}"
                    metrics[name] = confidence.float()[chosen].mean().item()
    return metrics


def _takes_rows(scorer) -> bool:
    """Whether ``scorer`` can score a subset of the rows (``rows=[B] bool``; zeros elsewhere)."""
    try:
        return "rows" in inspect.signature(scorer).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class LIFTNoisedBatch(NoisedBatch):
    """A :class:`NoisedBatch` that also says which component each sequence trained.

    Attributes:
        component: ``[B]`` long component codes (``BOTTOM``, ``VANILLA``, ``TOP``).
    """

    component: torch.Tensor | None = None

    @property
    def sequence_groups(self) -> dict[str, torch.Tensor]:
        """``{"lift_<component>": [B] bool}``: groups for a per-component loss metric."""
        return {f"lift_{name}": self.component == code for code, name in enumerate(COMPONENT_NAMES)}


class LIFTCallback(TokenWeightingCallback):
    """LIFT token weighting (``DiffusionSFTConfig(lift=True)``, or ``callbacks=[LIFTCallback(...)]``).

    Args:
        bands: number of bands ``H`` of the band rule, an integer >= 2. Default 3 (Bottom-K /
            vanilla / Top-K); 2 is LIFT-2 (Top-K for ``t >= 0.5``, else Bottom-K).
        rho_rule: draw of the extra ratio ``rho``: ``"reference"`` (default, the reference code:
            ``U(0.1, 1 - t0)``, or ``U(0, 1 - t0)`` when ``1 - t0 <= 0.1``) or ``"paper"``
            (``U(0, 1 - t)``, the paper's figure).
        component_scope: ``"sequence"`` (default) chooses the component from each sequence's own
            ``t``; ``"batch"`` chooses once per micro-batch from the mean ``t`` (the reference's
            behaviour). The default is per sequence because it is what the band rule means: the
            reference trained with one sequence per device, where both agree, and with larger
            micro-batches the batch rule would train a sequence at ``t = 0.05`` on its easiest
            tokens whenever the others have large ``t``.
        policy: ``"time"`` (default, LIFT), ``"random"`` (control: the component drawn uniformly,
            ignoring ``t``) or ``"reversed"`` (control: Top-K at small ``t``, Bottom-K at large ``t``).
        components: ``"both"`` (default), ``"top_only"`` or ``"bottom_only"``: the disabled
            component's band trains vanilla instead (same masking budget, no selection).
        approximate: ``False`` (default) reveals ``M \\ S`` before the training pass. ``True`` is the
            one-pass mode: no scoring pass; the training pass runs on ``x_sup`` (all of ``M`` masked),
            ``S`` is selected from that pass's own detached log-probs (through
            :attr:`NoisedBatch.reweight`) and the loss is restricted to ``S``. Cheaper, less faithful.
        scoring_mode: ``"train"`` (default, the reference: the live model with dropout on) or
            ``"eval"`` (dropout off) for the scoring pass.
        rho_floor: lower bound of the reference rho rule, in ``[0, 1)``. Default 0.1.
        seed: seed of the noise generator; ``None`` takes ``args.seed``.

    The loss normalisation defaults to ``"batch"`` (answer tokens of the micro-batch, padding
    included, prompt excluded), the reference's. When the scorer accepts ``rows=`` (a ``[B]`` bool
    of the rows to run, zeros returned elsewhere), only Top-K / Bottom-K rows are scored. Logged:
    :func:`selection_metrics`; the returned :class:`LIFTNoisedBatch` carries each sequence's
    component for a per-component loss.
    """

    name = "lift"

    def __init__(
        self,
        bands: int = 3,
        rho_rule: str = "reference",
        component_scope: str = "sequence",
        policy: str = "time",
        components: str = "both",
        approximate: bool = False,
        scoring_mode: str = "train",
        rho_floor: float = 0.1,
        seed: int | None = None,
    ):
        super().__init__(seed=seed)
        if int(bands) != bands or bands < 2:
            raise ValueError(f"bands must be an integer >= 2, got {bands!r}.")
        for value, allowed, name in ((rho_rule, RHO_RULES, "rho_rule"), (component_scope, SCOPES, "component_scope"),
                                     (policy, POLICIES, "policy"), (components, COMPONENT_SETS, "components"),
                                     (scoring_mode, SCORING_MODES, "scoring_mode")):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if not 0.0 <= rho_floor < 1.0:
            raise ValueError(f"rho_floor must be in [0, 1), got {rho_floor}.")
        self.bands = int(bands)
        self.rho_rule = rho_rule
        self.component_scope = component_scope
        self.policy = policy
        self.components = components
        self.approximate = bool(approximate)
        self.scoring_mode = scoring_mode
        self.rho_floor = float(rho_floor)

    def state_args(self) -> dict:
        return {
            **super().state_args(),
            "bands": self.bands,
            "rho_rule": self.rho_rule,
            "component_scope": self.component_scope,
            "policy": self.policy,
            "components": self.components,
            "approximate": self.approximate,
            "scoring_mode": self.scoring_mode,
            "rho_floor": self.rho_floor,
        }

    def noise(self, batch: DiffusionBatch, *, scorer: Scorer, args) -> LIFTNoisedBatch:
        x0, answer, gen = batch.input_ids, batch.answer_mask, self.generator
        eps = args.time_epsilon
        # 1-2. t per sequence, and the extra ratio rho.
        t = sample_times(x0.size(0), eps=eps, generator=gen, device=x0.device)  # [b]
        rho = extra_ratios(t, eps=eps, rule=self.rho_rule, floor=self.rho_floor, generator=gen)  # [b]
        # 3. Superset mask M at ratio t + rho (the prompt is never in it).
        superset = mask_positions(answer, t + rho, generator=gen)  # [b, l]
        x_sup = apply_mask(x0, superset, batch.mask_token_id)
        # 4-5. Component and K.
        component = choose_components(
            t, bands=self.bands, policy=self.policy, scope=self.component_scope, components=self.components,
            generator=gen,
        )  # [b]
        k = keep_counts(superset.sum(1), t, rho)  # [b]
        weight = time_weights(t, args.loss_weighting)[:, None]  # [b, 1]: 1 / t, not 1 / (t + rho)
        if self.approximate:
            # One pass: train on x_sup, score all of M in that same forward, keep S, weight 1 / t.
            def reweight(scores):
                confidence = scores.log_probs
                chosen = select_positions(confidence, superset, k, component, generator=gen)
                return chosen.float() * weight, selection_metrics(component, superset, chosen, answer, confidence)

            return LIFTNoisedBatch(
                input_ids=x_sup, loss_weights=superset.float() * weight, t=t, normalization="batch",
                component=component, reweight=reweight,
            )
        # 6. Scoring pass (no gradient) when some row selects by confidence; only those rows when
        #    the scorer can run a subset (vanilla rows need no scores: a third of the pass saved).
        scored_rows = (component != VANILLA) & superset.any(1)
        confidence = None
        if scored_rows.any():
            targets = x0.masked_fill(~(superset & scored_rows[:, None]), -100)
            train_mode = self.scoring_mode == "train"
            if _takes_rows(scorer) and not scored_rows.all():
                scores = scorer(x_sup, targets, train_mode=train_mode, rows=scored_rows)
            else:
                scores = scorer(x_sup, targets, train_mode=train_mode)
            confidence = scores.log_probs.detach()
        selected = select_positions(
            confidence if confidence is not None else torch.zeros(x0.shape, device=x0.device),
            superset, k, component, generator=gen,
        )  # [b, l]
        # 7. Reveal M \ S, 8. weight the kept set by 1 / t.
        return LIFTNoisedBatch(
            input_ids=apply_mask(x0, selected, batch.mask_token_id),
            loss_weights=selected.float() * weight,
            t=t,
            normalization="batch",
            metrics=selection_metrics(component, superset, selected, answer, confidence),
            component=component,
        )
