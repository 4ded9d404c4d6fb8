"""Monte-Carlo estimate of the masked-diffusion ELBO of a continuation given its context.

A masked diffusion LM gives no exact likelihood; the standard score (LLaDA, Nie et al. 2025, eq. 3;
MDLM, Sahoo et al. 2024) is the evidence lower bound

    log p(c | x) >= E_{t ~ U(0, 1)} E_{c_t ~ q(. | c, t)} [ (1 / t) sum_{i masked in c_t} log p(c_i | x, c_t) ]

where ``q`` masks each continuation token independently with probability ``t``. We estimate it with
``mc_num`` samples at the midpoints of ``mc_num`` equal cells of ``[eps, 1]`` (a stratified grid:
the inner expectation, a polynomial in ``t``, is integrated by the midpoint rule, whose error falls as
``1 / mc_num**2``, while the mask draws keep the estimate's spread at ``1 / sqrt(mc_num)``). The mask
draws use the trainer's own functions (:mod:`trl_lift.diffusion.masking`) and the gold tokens are scored with
:func:`trl_lift.diffusion.scoring.gold_log_probs` (chunked, with Dream's logit shift), never ``B x L x V`` logits.

``estimator="count"`` uses the equivalent form LLaDA evaluates with (Nie et al. 2025, eq. 6): mask
exactly ``l`` of the ``C`` continuation tokens, ``l`` uniform on ``1..C``, and weigh the sum by ``C / l``.
Its ``l`` are stratified too (``l_k = floor(k C / K) + 1``; exactly uniform when ``C`` divides ``K``), and
since the number of masked tokens no longer varies within a sample its spread is smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..diffusion.masking import apply_mask, grid_times, mask_positions, random_subset
from ..diffusion.scoring import gold_log_probs
from ..models.vocabulary import check_ids_in_vocabulary, check_mask_token_fits, vocabulary_size

ESTIMATORS = ("time", "count")


@dataclass
class ELBORequest:
    """One continuation to score.

    Attributes:
        context: token ids of the conditioning text (never masked).
        continuation: token ids whose log-likelihood is estimated (at least one).
        generator: CPU ``torch.Generator`` for this request's mask draws, so that the estimate does
            not depend on which other requests share its batch (or its process).
    """

    context: list[int]
    continuation: list[int]
    generator: torch.Generator | None = None


def stratified_counts(mc_num: int, length: int) -> torch.Tensor:
    """``[K]`` numbers of tokens to mask, ``l_k = floor(k * C / K) + 1``: a stratified draw of ``U{1..C}``."""
    return torch.arange(mc_num) * length // mc_num + 1


def noised_copies(
    context: list[int],
    continuation: list[int],
    times: torch.Tensor,
    *,
    mask_token_id: int,
    generator: torch.Generator | None = None,
    counts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``K`` copies of ``context + continuation`` with continuation tokens masked.

    Args:
        context: ``P`` token ids.
        continuation: ``C`` token ids.
        times: ``[K]`` masking ratios in ``(0, 1]``: each token masked with probability ``times[k]``.
        mask_token_id: id fed at masked positions.
        generator: source of the mask draws.
        counts: ``[K]`` numbers of tokens to mask instead (exactly ``counts[k]`` uniformly chosen
            continuation tokens in copy ``k``); ``times`` then only sets ``K``.

    Returns:
        ``(input_ids, targets)``, both ``[K, P + C]`` long: the noised sequences, and the gold token at
        each masked position (``-100`` elsewhere).
    """
    sequence = torch.tensor(context + continuation, dtype=torch.long)
    copies = sequence.expand(times.numel(), -1)
    answer = torch.zeros_like(copies, dtype=torch.bool)
    answer[:, len(context) :] = True
    if counts is None:
        masked = mask_positions(answer, times.float(), generator=generator)  # [K, L]
    else:
        masked = random_subset(answer, counts, generator=generator)  # [K, L]
    targets = torch.where(masked, copies, torch.full_like(copies, -100))
    return apply_mask(copies, masked, mask_token_id), targets


def _score_rows(model, rows, *, pad_token_id: int, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of gold log-probs and "every gold token is the argmax" for each ``(input_ids, targets)`` row.

    Rows are right-padded (attention mask 0 on the padding) in batches of ``batch_size``; rows of
    similar lengths are batched together.

    Returns:
        ``([N] float64 sums, [N] bool all-top1)`` in the order of ``rows``.
    """
    sums = torch.zeros(len(rows), dtype=torch.float64)
    top1 = torch.zeros(len(rows), dtype=torch.bool)
    order = sorted(range(len(rows)), key=lambda i: -rows[i][0].numel())
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(rows[i][0].numel() for i in chunk)
        input_ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
        targets = torch.full((len(chunk), width), -100, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, i in enumerate(chunk):
            ids, tgt = rows[i]
            input_ids[j, : ids.numel()] = ids
            targets[j, : ids.numel()] = tgt
            attention[j, : ids.numel()] = 1
        positions = torch.arange(width).expand(len(chunk), -1)
        scores = gold_log_probs(
            model,
            input_ids.to(device),
            targets.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
        )
        scored = targets.to(device) != -100  # [b, L]
        sums[chunk] = scores.log_probs.double().masked_fill(~scored, 0.0).sum(1).cpu()
        top1[chunk] = (scores.is_top1 | ~scored).all(1).cpu()
    return sums, top1


@torch.no_grad()
def estimate_elbo(
    model,
    requests: list[ELBORequest],
    *,
    mc_num: int,
    mask_token_id: int,
    pad_token_id: int,
    batch_size: int = 32,
    eps: float = 0.0,
    device=None,
    estimator: str = "time",
    progress: bool = False,
) -> list[tuple[float, bool]]:
    """Monte-Carlo ELBO of each request's continuation given its context, batched across requests.

    Sample ``k`` of a request masks each continuation token with probability ``t_k`` (the grid
    :func:`trl_lift.diffusion.masking.grid_times`), scores the masked gold tokens and weighs their sum by
    ``1 / t_k``; the estimate is the mean over the ``mc_num`` samples. One further pass with the whole
    continuation masked gives the greedy flag: ``True`` when every continuation token is the argmax
    of its position's prediction there (the continuation is what one parallel, fully-masked decoding
    step would produce).

    Args:
        model: a diffusion LM (native transformers model, possibly PEFT-wrapped), in eval mode.
        requests: the continuations to score.
        mc_num: Monte-Carlo samples per request (>= 1).
        mask_token_id: the model's mask token.
        pad_token_id: id written on (attention-masked) right padding.
        batch_size: sequences per forward pass (rows of all requests are batched together); requests
            are processed ``batch_size // (mc_num + 1)`` at a time, which bounds the memory of the copies.
        eps: lower end of the time grid (0 estimates the ELBO over ``t ~ U(0, 1)``; the midpoints
            never reach 0).
        device: where the model runs (default: the model's device).
        estimator: ``"time"`` (default: stratified ``t``, each token masked with probability ``t``,
            weight ``1 / t``) or ``"count"`` (stratified ``l`` of ``C`` tokens masked, weight ``C / l``;
            LLaDA's lower-variance form of the same bound).
        progress: show a progress bar over the request chunks.

    Returns:
        One ``(log-likelihood estimate, is_greedy)`` per request, in order.
    """
    if mc_num < 1:
        raise ValueError(f"mc_num must be a positive integer, got {mc_num}.")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
    vocab = vocabulary_size(model)
    check_mask_token_fits(vocab, mask_token_id)
    ids = [pad_token_id, *(i for r in requests for i in (*r.context, *r.continuation))]
    check_ids_in_vocabulary(torch.tensor([min(ids), max(ids)]), vocab, what="the requests' token ids (or pad_token_id)")
    device = device if device is not None else next(model.parameters()).device
    chunk = max(1, batch_size // (mc_num + 1))
    results = []
    for first in tqdm(range(0, len(requests), chunk), disable=not progress, desc="likelihoods"):
        results.extend(_estimate_chunk(model, requests[first:first + chunk], mc_num=mc_num, mask_token_id=mask_token_id,
                                       pad_token_id=pad_token_id, batch_size=batch_size, eps=eps, device=device,
                                       estimator=estimator))
    return results


def _estimate_chunk(model, requests, *, mc_num, mask_token_id, pad_token_id, batch_size, eps, device, estimator):
    """:func:`estimate_elbo` of a few requests, all of whose rows are built at once."""
    times = grid_times(mc_num, eps=eps)  # [K]
    rows, weights = [], []  # weights: [K] per request, 1 / t_k or C / l_k
    for request in requests:
        if not request.continuation:
            raise ValueError("estimate_elbo needs at least one continuation token per request.")
        counts = stratified_counts(mc_num, len(request.continuation)) if estimator == "count" else None
        weights.append(1.0 / times.double() if counts is None else len(request.continuation) / counts.double())
        input_ids, targets = noised_copies(
            request.context, request.continuation, times, mask_token_id=mask_token_id, generator=request.generator,
            counts=counts,
        )
        rows.extend(zip(input_ids, targets))
        sequence = torch.tensor(request.context + request.continuation, dtype=torch.long)
        greedy_targets = sequence.clone()
        greedy_targets[: len(request.context)] = -100
        greedy_input = sequence.masked_fill(greedy_targets != -100, mask_token_id)
        rows.append((greedy_input, greedy_targets))
    sums, top1 = _score_rows(model, rows, pad_token_id=pad_token_id, batch_size=batch_size, device=device)
    per_request = mc_num + 1
    results = []
    for r in range(len(requests)):
        block = sums[r * per_request : r * per_request + mc_num]  # [K]
        estimate = (block * weights[r]).mean().item()
        results.append((estimate, bool(top1[r * per_request + mc_num])))
    return results
