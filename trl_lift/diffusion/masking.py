"""Forward noising of masked diffusion LMs: times, answer masks, mask draws and ranking.

Pure tensor functions, randomness passed in as a ``torch.Generator``; shared by the trainer, the
token-weighting methods, the sampler, the lm-eval likelihood and the tests (LLaDA, Nie et al. 2025;
MDLM, Sahoo et al. 2024). None of them mutates its inputs.
"""

from __future__ import annotations

import torch

from .example_noise import RowSeeds


def uniform(shape, *, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """``U(0, 1)`` draws of ``shape`` made on the generator's device, then moved to ``device``.

    Drawing on the generator's own device keeps a run reproducible whatever device the model is on.
    ``generator`` is a ``torch.Generator``, ``None`` or per-row seeds
    (:class:`~trl_lift.diffusion.example_noise.RowSeeds`: each row from its own stream).
    """
    if isinstance(generator, RowSeeds):
        draws = generator.uniform(shape, dtype=dtype)
        return draws.to(device) if device is not None else draws
    gen_device = generator.device if generator is not None else device
    draws = torch.rand(shape, generator=generator, device=gen_device, dtype=dtype)
    return draws.to(device) if device is not None else draws


def sample_times(batch_size: int, *, eps: float = 1e-3, generator=None, device=None) -> torch.Tensor:
    """Masking ratios ``t = (1 - eps) * u + eps`` with ``u ~ U(0, 1)``, one per sequence.

    Returns:
        ``[B]`` float32 tensor in ``[eps, 1)``.
    """
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}.")
    return (1.0 - eps) * uniform((batch_size,), generator=generator, device=device) + eps


def take_rows(generator, n: int):
    """The source of randomness for a draw over the first ``n`` rows (per-row seeds are cut to them)."""
    return generator.head(n) if isinstance(generator, RowSeeds) else generator


def grid_times(n: int, *, eps: float = 1e-3, device=None) -> torch.Tensor:
    """A fixed grid of ``n`` masking ratios, midpoints of ``n`` equal cells of ``[eps, 1]``.

    Returns:
        ``[n]`` float32 tensor ``eps + (1 - eps) * (k + 0.5) / n`` for ``k = 0 .. n - 1``.
    """
    if n < 1:
        raise ValueError(f"the time grid needs at least one point, got {n}.")
    k = torch.arange(n, dtype=torch.float32, device=device)
    return eps + (1.0 - eps) * (k + 0.5) / n


def answer_mask_from_labels(
    labels: torch.Tensor, attention_mask: torch.Tensor, *, supervise_padding: bool
) -> torch.Tensor:
    """Positions that may be masked and trained: the answer.

    Args:
        labels: ``[B, L]`` with ``-100`` at prompt and padding positions (TRL's convention).
        attention_mask: ``[B, L]``, 0 at (right) padding.
        supervise_padding: also count the trailing padding as answer (LLaDA's recipe: it is filled
            with EOS and the model learns where the answer ends).

    Returns:
        ``[B, L]`` bool.
    """
    answer = labels != -100
    if supervise_padding:
        answer = answer | (attention_mask == 0)
    return answer


def mask_positions(answer_mask: torch.Tensor, prob: torch.Tensor, *, generator=None) -> torch.Tensor:
    """Mask each answer position independently with probability ``prob``.

    Args:
        answer_mask: ``[B, L]`` bool; only these positions can be masked.
        prob: ``[B]`` (one ratio per sequence) or ``[B, L]`` (per-token probabilities).
        generator: source of randomness.

    Returns:
        ``[B, L]`` bool, a subset of ``answer_mask``.
    """
    if prob.dim() == 1:
        prob = prob[:, None]
    draws = uniform(answer_mask.shape, generator=generator, device=answer_mask.device)
    return (draws < prob) & answer_mask


def apply_mask(input_ids: torch.Tensor, masked: torch.Tensor, mask_token_id: int) -> torch.Tensor:
    """``input_ids`` with the ``masked`` positions replaced by ``mask_token_id`` (a new tensor)."""
    return torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids)


def random_subset(candidates: torch.Tensor, k: torch.Tensor, *, generator=None) -> torch.Tensor:
    """Choose ``k[b]`` positions uniformly at random among ``candidates[b]``, per row.

    Args:
        candidates: ``[B, L]`` bool.
        k: ``[B]`` integer counts (clamped to the number of candidates).

    Returns:
        ``[B, L]`` bool with ``min(k[b], candidates[b].sum())`` positions set in row ``b``.
    """
    scores = uniform(candidates.shape, generator=generator, device=candidates.device)
    return top_k_positions(scores, candidates, k)


def rank_positions(scores: torch.Tensor) -> torch.Tensor:
    """Rank of each position within its row: 0 for the highest score, ties to the lower position.

    A stable descending sort in the scores' own precision (float32 at least: bf16 scores would
    create ties), so float64 scores keep their order.

    Args:
        scores: ``[B, L]`` float (``-inf`` for positions that may not be chosen).

    Returns:
        ``[B, L]`` int64 ranks.
    """
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    return ranks.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))


def top_k_positions(scores: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The ``k[b]`` highest-scoring candidate positions of each row (ties to the lower position).

    Args:
        scores: ``[B, L]`` float.
        candidates: ``[B, L]`` bool; other positions are never chosen.
        k: ``[B]`` integer counts (a row with fewer candidates gets them all).

    Returns:
        ``[B, L]`` bool.
    """
    ranks = rank_positions(scores.masked_fill(~candidates, float("-inf")))
    return (ranks < k.to(ranks.device).long().reshape(-1, 1)) & candidates
