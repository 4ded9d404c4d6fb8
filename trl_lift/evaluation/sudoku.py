"""4x4 Sudoku: a seeded puzzle generator and the paper's two scores.

One of the LIFT paper's reasoning sets (256 puzzles). Grids are 16-character
strings read row by row, digits 1-4, ``0`` for an empty cell; each row,
column and 2x2 box holds 1-4 once. Every generated puzzle has a unique
solution, so matching the stored solution is the same as solving the puzzle.
The paper's headline score is cell accuracy over the empty cells; whole-puzzle
accuracy is reported alongside.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = [
    "SudokuProblem",
    "count_solutions",
    "generate_sudoku",
    "parse_grid",
    "render_grid",
    "score_sudoku",
]

DEFAULT_SEED = 2026
SIZE = 4
_UNITS = (
    [[r * SIZE + c for c in range(SIZE)] for r in range(SIZE)]
    + [[r * SIZE + c for r in range(SIZE)] for c in range(SIZE)]
    + [[(br + r) * SIZE + bc + c for r in range(2) for c in range(2)] for br in (0, 2) for bc in (0, 2)]
)
_PEERS = [sorted({p for unit in _UNITS if cell in unit for p in unit} - {cell}) for cell in range(SIZE * SIZE)]


@dataclass(frozen=True)
class SudokuProblem:
    """One puzzle: ``puzzle`` with ``0`` for empties, and its unique ``solution``."""

    puzzle: str
    solution: str

    def as_doc(self) -> dict:
        """The puzzle as a dataset row: ``puzzle``, ``solution`` (16-character strings)."""
        return {"puzzle": self.puzzle, "solution": self.solution}


def count_solutions(grid: str, limit: int = 2) -> int:
    """Number of completions of ``grid`` (``0`` = empty), counting up to ``limit``."""
    cells = [int(ch) for ch in grid]
    count = 0

    def search() -> None:
        nonlocal count
        if count >= limit:
            return
        try:
            cell = cells.index(0)
        except ValueError:
            count += 1
            return
        used = {cells[p] for p in _PEERS[cell]}
        for digit in range(1, SIZE + 1):
            if digit not in used:
                cells[cell] = digit
                search()
                cells[cell] = 0

    search()
    return count


def _random_solution(rng: random.Random) -> list[int]:
    """A uniformly shuffled valid 4x4 grid (digit relabelling, row/column moves, transpose)."""
    base = [1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1]
    digits = rng.sample(range(1, 5), 4)
    bands = rng.sample([0, 1], 2)
    rows = [band * 2 + r for band in bands for r in rng.sample([0, 1], 2)]
    stacks = rng.sample([0, 1], 2)
    cols = [stack * 2 + c for stack in stacks for c in rng.sample([0, 1], 2)]
    grid = [digits[base[r * SIZE + c] - 1] for r in rows for c in cols]
    if rng.random() < 0.5:
        grid = [grid[c * SIZE + r] for r in range(SIZE) for c in range(SIZE)]
    return grid


def generate_sudoku(
    num_problems: int = 256, *, seed: int = DEFAULT_SEED, min_empty: int = 6, max_empty: int = 10
) -> list[SudokuProblem]:
    """Seeded 4x4 puzzles with a unique solution and ``min_empty``..``max_empty`` empty cells.

    For each puzzle: shuffle a valid grid, then blank cells in random order,
    skipping any removal that would allow a second solution, until the drawn
    number of empties is reached (a grid that cannot reach it is redrawn).

    Args:
        num_problems: puzzles to generate.
        seed: the generator's seed; :data:`DEFAULT_SEED` is the one the tasks use.
        min_empty: fewest empty cells.
        max_empty: most empty cells (at most 12 keeps puzzles unique-solution reachable).
    """
    rng = random.Random(seed)
    problems: list[SudokuProblem] = []
    while len(problems) < num_problems:
        solution = _random_solution(rng)
        target = rng.randint(min_empty, max_empty)
        puzzle = list(solution)
        empty = 0
        for cell in rng.sample(range(SIZE * SIZE), SIZE * SIZE):
            if empty == target:
                break
            puzzle[cell] = 0
            if count_solutions("".join(map(str, puzzle))) == 1:
                empty += 1
            else:
                puzzle[cell] = solution[cell]
        if empty == target:
            problems.append(SudokuProblem("".join(map(str, puzzle)), "".join(map(str, solution))))
    return problems


def render_grid(grid: str) -> str:
    """A 16-character grid as four lines of four digits (``0`` stays ``0``)."""
    return "\n".join(grid[r * SIZE : (r + 1) * SIZE] for r in range(SIZE))


def parse_grid(text: str | None) -> str | None:
    """The 16 digits (1-4) of a grid written in any layout, or ``None``.

    Separators (spaces, newlines, ``|``, commas, LaTeX row breaks) are ignored;
    any other digit, or a count other than 16, makes the grid unreadable.
    """
    if text is None:
        return None
    digits = re.sub(r"\\\\|[\s|,;\-+\[\]{}()]", "", text.replace("\\\\", ""))
    return digits if len(digits) == SIZE * SIZE and set(digits) <= set("1234") else None


def score_sudoku(prediction: str | None, puzzle: str, solution: str) -> dict[str, float]:
    """The paper's Sudoku scores for one puzzle.

    Args:
        prediction: the model's grid as text (any layout, see :func:`parse_grid`), or ``None``.
        puzzle: the puzzle, ``0`` for empty cells.
        solution: the unique solution.

    Returns:
        ``cell_acc``: the fraction of the puzzle's empty cells filled correctly;
        ``acc``: 1.0 when the whole grid equals the solution (givens included), else 0.0.
        An unreadable prediction scores 0 on both.
    """
    grid = parse_grid(prediction)
    empties = [i for i, ch in enumerate(puzzle) if ch == "0"]
    if grid is None or not empties:
        return {"cell_acc": 0.0, "acc": 0.0}
    correct = sum(grid[i] == solution[i] for i in empties)
    return {"cell_acc": correct / len(empties), "acc": float(grid == solution)}
