"""Per-example randomness: each sequence draws its noise from a stream keyed by its own tokens.

A batch-shaped draw from one generator gives a row noise that depends on where the row sits: its
batch position, the batch's padded length, the process it landed on, the row it was packed into.
:class:`RowSeeds` gives every row its own seed, derived from (seed, step, the row's tokens), and each
draw of a step a fresh generator per row, so a sequence is noised identically whatever its batch,
rank, padding or packing: two processes then train exactly as one process with the same global
batch, and a packed batch exactly as its documents unpacked. :func:`trl_lift.diffusion.masking.uniform`
accepts a :class:`RowSeeds` wherever it accepts a ``torch.Generator``.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import torch

_MASK63 = (1 << 63) - 1


def _mix(*parts) -> int:
    """A 63-bit seed from integers and byte strings (blake2b: stable across processes and runs)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(int(part)).encode() + b"|")
    return int.from_bytes(digest.digest(), "little") & _MASK63


class RowSeeds:
    """One seed per row; each call to :meth:`next_generators` is the next draw of every row.

    The draw counter is shared with the views made by :meth:`head`, so a draw over part of the rows
    (one draw for the whole micro-batch, say) advances every row alike.
    """

    def __init__(self, seeds, _counter: list[int] | None = None):
        self.seeds = [int(s) for s in seeds]
        self._counter = _counter if _counter is not None else [0]

    def __len__(self) -> int:
        return len(self.seeds)

    def head(self, n: int) -> "RowSeeds":
        """The first ``n`` rows, sharing this object's draw counter."""
        return RowSeeds(self.seeds[:n], self._counter)

    def next_generators(self) -> list[torch.Generator]:
        """A fresh CPU generator per row for the next draw (draw ``d`` of row ``r``: seed ``mix(s_r, d)``)."""
        self._counter[0] += 1
        return [torch.Generator().manual_seed(_mix(seed, self._counter[0])) for seed in self.seeds]

    def uniform(self, shape, dtype=torch.float32) -> torch.Tensor:
        """``U(0, 1)`` draws of ``shape`` (``shape[0]`` rows), each row from its own generator, on the CPU.

        A row's draws of length ``L`` are a prefix of its draws of any greater length, so the padded
        length of the batch does not change a row's noise.
        """
        shape = tuple(shape)
        if shape[0] != len(self.seeds):
            raise ValueError(f"a draw of {shape[0]} rows from RowSeeds of {len(self.seeds)} rows.")
        rows = [torch.rand(shape[1:], generator=g, dtype=dtype) for g in self.next_generators()]
        return torch.stack(rows) if rows else torch.empty(shape, dtype=dtype)


def row_seeds(input_ids: torch.Tensor, content: torch.Tensor, *, seed: int, step: int) -> RowSeeds:
    """Seeds keyed by each row's tokens.

    Args:
        input_ids: ``[B, L]`` tokens.
        content: ``[B, L]`` bool, the row's own tokens (padding excluded), whose ids key the seed.
        seed: the run's seed.
        step: the optimizer step (a new draw every step; a resumed run reproduces it).

    Returns:
        :class:`RowSeeds` of ``B`` rows. Identical rows within one call get distinct seeds (by their
        order of appearance); identical rows on different processes draw the same noise.
    """
    ids = input_ids.detach().to("cpu", torch.int64)
    keep = content.detach().to("cpu", torch.bool)
    seen: Counter = Counter()
    seeds = []
    for row, mask in zip(ids, keep):
        tokens = row[mask].numpy().tobytes()
        seen[tokens] += 1
        seeds.append(_mix(seed, step, seen[tokens], tokens))
    return RowSeeds(seeds)
