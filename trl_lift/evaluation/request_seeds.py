"""Per-request seeds for lm-eval: randomness drawn from the request itself, never from its process or batch.

So a data-parallel run (each rank a strided subset of the requests, in other batches) gives the
per-sample outputs of one process, and the repeats of one instance (avg@K) draw differently.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import torch


def request_seed(seed: int, instance, occurrence: int) -> int:
    """A 63-bit seed from the run's ``seed`` and the request's identity (stable across processes).

    ``occurrence`` tells apart the repeats of one instance (lm-eval passes an instance ``repeats``
    times, e.g. AIME's avg@K), so each repeat draws differently.
    """
    args = list(instance.args)
    if isinstance(args[-1], dict):
        args = [args[0], sorted(args[-1].items(), key=str)]
    key = [seed, getattr(instance, "task_name", None), getattr(instance, "doc_id", None),
           getattr(instance, "idx", None), args, occurrence]
    return int.from_bytes(hashlib.sha256(json.dumps(key, default=str).encode()).digest()[:8], "little") >> 1


def request_generators(seed: int, requests) -> list[torch.Generator]:
    """One CPU generator per request, seeded by :func:`request_seed` (repeats of an instance told apart)."""
    seen: Counter = Counter()
    out = []
    for request in requests:
        out.append(torch.Generator().manual_seed(request_seed(seed, request, seen[id(request)])))
        seen[id(request)] += 1
    return out
