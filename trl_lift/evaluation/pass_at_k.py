"""avg@K and unbiased pass@K from repeated sampling.

The LIFT paper reports AIME as avg@K and pass@K for K = 8 and 16. With ``n``
samples per problem of which ``c`` are correct:

- avg@K is the mean correctness of the first K samples: exactly what a run
  with K samples reports;
- pass@K is the unbiased estimator of Chen et al. (2021),
  ``1 - C(n - c, K) / C(n, K)``: the probability that at least one of K
  samples drawn without replacement from the n is correct (for ``n == K``,
  1 if any sample is correct).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

__all__ = ["avg_at_k", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct among ``n`` samples.

    Args:
        n: samples drawn, ``n >= k``.
        c: correct samples, ``0 <= c <= n``.
        k: budget, ``1 <= k <= n``.

    Raises:
        ValueError: on counts out of those ranges.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def avg_at_k(correct: Sequence[bool | int | float], k: int) -> float:
    """Mean correctness of the first ``k`` samples of one problem.

    Args:
        correct: per-sample scores in sampling order, ``len(correct) >= k``.
        k: number of samples averaged, ``k >= 1``.

    Raises:
        ValueError: when fewer than ``k`` samples are given.
    """
    if not 1 <= k <= len(correct):
        raise ValueError(f"avg@{k} needs at least {k} samples, got {len(correct)}")
    return sum(float(x) for x in correct[:k]) / k
