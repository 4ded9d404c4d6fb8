"""LIFT: Learnability-Informed Fine-Tuning of diffusion LMs (Parashar et al., ICML 2026).

Each step masks a superset ``M`` of the answer at ratio ``t + rho``, picks a component from ``t``
(Bottom-K: the hardest tokens at small ``t``; vanilla: a random subset in between; Top-K: the
easiest tokens at large ``t``), keeps ``K ~ t |answer|`` positions of ``M`` masked according to the
live model's confidence (a scoring pass without gradient), reveals the rest and trains on the kept
set with the ``1 / t`` weight. Steps 1-8 of ../shared/docs/lift-method.md.

The maths are pure tensor functions (randomness passed in as a ``torch.Generator``);
:class:`LIFTCallback` strings them together in the two stages of the token-weighting protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checks import check_choice, check_range
from ..diffusion.masking import apply_mask, mask_positions, random_subset, take_rows, top_k_positions, uniform
from .base import DiffusionBatch, NoisedBatch, NoisePlan, TokenWeightingCallback, register, time_weights

# Component codes, in the order of the bands (small t -> large t).
BOTTOM, VANILLA, TOP = 0, 1, 2
COMPONENT_NAMES = ("bottom", "vanilla", "top")

RHO_RULES = ("reference", "paper")
POLICIES = ("time", "random", "reversed")
COMPONENT_SETS = ("both", "top_only", "bottom_only")
SCOPES = ("sequence", "batch")
SCORING_MODES = ("train", "eval")
MAX_BANDS = 10


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
    check_choice("rho_rule", rule, RHO_RULES)
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
    check_range("bands", bands, 2, MAX_BANDS, integer=True)
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
    for name, value, allowed in (("policy", policy, POLICIES), ("component_scope", scope, SCOPES),
                                 ("components", components, COMPONENT_SETS)):
        check_choice(name, value, allowed)
    rows = t.shape[0] if scope == "sequence" else 1
    if policy == "random":
        pool = torch.tensor([BOTTOM, TOP] if bands == 2 else [BOTTOM, VANILLA, TOP], device=t.device)
        draws = uniform((rows,), generator=take_rows(generator, rows), device=t.device)
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
    vanilla = random_subset(superset, k.clamp(min=1), generator=generator)
    by_confidence = select_by_confidence(confidence, superset, k, component)
    return torch.where((component == VANILLA)[:, None], vanilla, by_confidence)


def select_by_confidence(
    confidence: torch.Tensor, superset: torch.Tensor, k: torch.Tensor, component: torch.Tensor
) -> torch.Tensor:
    """Top-K rows' ``K`` most confident superset positions, the other rows' ``K`` least confident.

    Args:
        confidence: ``[B, L]`` ``log p(x0_i | x_sup)``.
        superset: ``[B, L]`` bool, ``M``.
        k: ``[B]`` counts.
        component: ``[B]`` component codes.

    Returns:
        ``[B, L]`` bool (meaningful for Top-K and Bottom-K rows).
    """
    top = top_k_positions(confidence, superset, k)
    bottom = top_k_positions(-confidence.float(), superset, k)
    return torch.where((component == TOP)[:, None], top, bottom)


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


@register("lift")
@dataclass(eq=False)
class LIFTCallback(TokenWeightingCallback):
    """LIFT token weighting (``DiffusionSFTConfig(lift=True)``, or ``callbacks=[LIFTCallback(...)]``).

    Plan: draw ``t``, ``rho``, the superset ``M``, the component and ``K`` (steps 1-5), and ask for
    the scores of ``M`` in the Top-K / Bottom-K rows. Finish: select ``S`` from those scores (step 6),
    reveal ``M \\ S`` and weight ``S`` by ``1 / t`` (steps 7-8). The loss normalisation defaults to
    ``"micro_batch"`` (the reference's: answer tokens of the micro-batch, padding included, prompt
    excluded, averaged over micro-batches and devices). Logged: :func:`selection_metrics` and the
    loss per component (``loss_lift_<component>``).
    """

    bands: int = field(
        default=3,
        metadata={"help": f"LIFT: number of time bands H, an integer in [2, {MAX_BANDS}]. t < 1/H trains Bottom-K, "
                  "t > 1 - 1/H Top-K, vanilla between (boundaries included); 2 = LIFT-2 (Top-K for t >= 0.5, else "
                  "Bottom-K). Larger H leaves ever fewer steps to Top-K and Bottom-K (2/H of them)."},
    )
    rho_rule: str = field(
        default="reference",
        metadata={"help": "LIFT: the extra ratio rho. 'reference' (the reference code: U(rho_floor, 1 - t0) when "
                  "1 - t0 > rho_floor, else U(0, 1 - t0)) or 'paper' (U(0, 1 - t), the paper's figure).",
                  "choices": RHO_RULES},
    )
    rho_floor: float = field(
        default=0.1, metadata={"help": "LIFT: lower bound of the 'reference' rho rule, in [0, 1)."}
    )
    component_scope: str = field(
        default="sequence",
        metadata={"help": "LIFT: choose the component per 'sequence' (default: what the band rule means; equals the "
                  "reference at one sequence per device) or once per micro-batch from the mean t ('batch', the "
                  "reference's rule, which with larger micro-batches trains a sequence at t = 0.05 on its easiest "
                  "tokens whenever the others have large t).", "choices": SCOPES},
    )
    policy: str = field(
        default="time",
        metadata={"help": "LIFT: component policy. 'time' (LIFT's band rule), 'random' (uniform over the components, "
                  "ignoring t: a control) or 'reversed' (Top-K at small t, Bottom-K at large t: a control).",
                  "choices": POLICIES},
    )
    components: str = field(
        default="both",
        metadata={"help": "LIFT: 'both', 'top_only' or 'bottom_only' (the disabled component's band trains vanilla: "
                  "same masking budget, no selection).", "choices": COMPONENT_SETS},
    )
    approximate: bool = field(
        default=False,
        metadata={"help": "LIFT: one pass. Top-K / Bottom-K rows train on the superset input (no reveal) and select "
                  "the kept tokens from that pass's own detached log-probs, the loss restricted to them; vanilla rows "
                  "reveal as usual (as the reference). Cheaper, less faithful."},
    )
    scoring_mode: str = field(
        default="train",
        metadata={"help": "LIFT: run the scoring pass in 'train' mode (dropout on; the reference) or 'eval' mode.",
                  "choices": SCORING_MODES},
    )

    def __post_init__(self):
        super().__post_init__()
        check_range("bands", self.bands, 2, MAX_BANDS, integer=True)
        check_range("rho_floor", self.rho_floor, 0.0, 1.0, high_open=True)

    def plan(self, batch: DiffusionBatch) -> NoisePlan:
        x0, answer, gen = batch.input_ids, batch.answer_mask, self._rng(batch)
        # 1-2. t per sequence, and the extra ratio rho.
        t = self._times(batch)  # [b]
        rho = extra_ratios(t, eps=self.time_epsilon, rule=self.rho_rule, floor=self.rho_floor, generator=gen)  # [b]
        # 3. Superset mask M at ratio t + rho (the prompt is never in it).
        superset = mask_positions(answer, t + rho, generator=gen)  # [b, l]
        x_sup = apply_mask(x0, superset, batch.mask_token_id)
        # 4-5. Component and K.
        component = choose_components(
            t, bands=self.bands, policy=self.policy, scope=self.component_scope, components=self.components,
            generator=gen,
        )  # [b]
        k = keep_counts(superset.sum(1), t, rho)  # [b]
        # 6, what it needs: scores of M in the rows that select by confidence (vanilla rows need none).
        scored = (component != VANILLA) & superset.any(1)  # [b]
        state = {"x0": x0, "mask_token_id": batch.mask_token_id, "answer": answer,
                 "superset": superset, "component": component, "k": k, "rng": gen}
        targets = batch.targets_at(superset & scored[:, None])
        if not self.approximate:
            return NoisePlan(x_sup, t, targets if scored.any() else None, scored,
                             train_mode=self.scoring_mode == "train", state=state)
        # One pass: vanilla rows reveal now (their subset needs no scores); the others train on x_sup.
        vanilla = random_subset(superset, k.clamp(min=1), generator=gen) & ~scored[:, None]  # [b, l]
        x_in = torch.where(scored[:, None], x_sup, apply_mask(x0, vanilla, batch.mask_token_id))
        return NoisePlan(x_in, t, torch.where(vanilla, x0, targets), scored, one_pass=True,
                         state={**state, "vanilla": vanilla})

    def finish(self, plan: NoisePlan, scores) -> NoisedBatch:
        state = plan.state
        superset, component, k = state["superset"], state["component"], state["k"]
        confidence = None if scores is None else scores.log_probs.detach()  # [b, l]
        if self.approximate:
            by_confidence = select_by_confidence(confidence, superset, k, component)
            selected = torch.where(plan.score_rows[:, None], by_confidence, state["vanilla"])  # [b, l]
            input_ids = plan.input_ids  # no reveal in the Top-K / Bottom-K rows
        else:
            zeros = torch.zeros(superset.shape, device=superset.device)
            selected = select_positions(confidence if confidence is not None else zeros, superset, k, component,
                                        generator=state["rng"])  # [b, l]
            # 7. Reveal M \ S: only S stays masked.
            input_ids = apply_mask(state["x0"], selected, state["mask_token_id"])
        # 8. Train on S with the 1 / t weight (t, not t + rho).
        return NoisedBatch(
            input_ids=input_ids,
            loss_weights=selected.float() * time_weights(plan.t, self.loss_weighting)[:, None],
            t=plan.t,
            normalization="micro_batch",
            metrics=selection_metrics(component, superset, selected, state["answer"], confidence),
            groups={f"lift_{name}": component == code for code, name in enumerate(COMPONENT_NAMES)},
        )
