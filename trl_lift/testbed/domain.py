"""The testbed's domain: the paper's 4x4 Sudoku, as text a tiny diffusion LM can learn.

One source of truth for the text: the fine-tuning pairs, the pretraining documents and the lm-eval
task ``lift_testbed_sudoku`` (``lm_eval_tasks/lift_testbed/``) all call :func:`prompt` and
:func:`completion`, so what the model is trained on is exactly what lm-eval asks it. The held-out
problems are the task's own (:func:`held_out`: a fixed seed); the training problems come from
other seeds with every held-out problem removed.

Puzzles use the project's generator and grader (:mod:`trl_lift.evaluation.sudoku`). The paper's
other puzzle, Countdown (three numbers up to 12, targets up to 60), was part of the testbed until
every method scored 0 on it after 1,200 steps: at this size it only halved the Sudoku compute.
The functions keep a ``task`` argument so that a task the tiny model can learn may join.
"""

from __future__ import annotations

from ..evaluation.sudoku import generate_sudoku, render_grid, score_sudoku

__all__ = [
    "CHANCE_CELL_ACC",
    "HELD_OUT_SEEDS",
    "TASKS",
    "completion",
    "held_out",
    "pretraining_documents",
    "prompt",
    "score",
    "training_pairs",
]

TASKS = ("sudoku",)
CHANCE_CELL_ACC = 0.25  # a uniformly random digit 1-4 in every empty cell
HELD_OUT_SEEDS = {"sudoku": 2026}
HELD_OUT_SIZE = 256


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise KeyError(f"unknown testbed task {task!r}; tasks are {TASKS}")


def _problems(task: str, n: int, seed: int) -> list[dict]:
    _check_task(task)
    return [p.as_doc() for p in generate_sudoku(n, seed=seed)]


def _key(task: str, doc: dict) -> str:
    return doc["puzzle"]


def held_out(task: str, n: int = HELD_OUT_SIZE) -> list[dict]:
    """The first ``n`` held-out problems of ``task`` (the lm-eval task's test split), as dataset rows."""
    return _problems(task, n, HELD_OUT_SEEDS[task])


def prompt(task: str, doc: dict) -> str:
    """The prompt: the task's name, the problem, and ``solution`` on its own line."""
    _check_task(task)
    return f"sudoku\n{render_grid(doc['puzzle'])}\nsolution\n"


def completion(task: str, doc: dict) -> str:
    """The answer: the solved grid, four rows of four digits."""
    return render_grid(doc["solution"])


def score(task: str, doc: dict, generated: str) -> dict[str, float]:
    """Grade one generation: ``cell_acc`` (correct empty cells) and ``acc`` (solved puzzles)."""
    _check_task(task)
    return score_sudoku(generated.strip(), doc["puzzle"], doc["solution"])


def training_pairs(task: str, n: int, *, seed: int) -> list[dict]:
    """``n`` prompt-completion rows of ``task`` from ``seed``, none of them a held-out problem."""
    if seed == HELD_OUT_SEEDS[task]:
        raise ValueError(f"seed {seed} is the held-out seed of {task}; train on another seed")
    excluded = {_key(task, doc) for doc in held_out(task)}
    rows: list[dict] = []
    draw = 0
    while len(rows) < n:
        for doc in _problems(task, 2 * (n - len(rows)), seed + 7919 * draw):
            if _key(task, doc) not in excluded and len(rows) < n:
                rows.append({"prompt": prompt(task, doc), "completion": completion(task, doc)})
        draw += 1
    return rows


def pretraining_documents(n: int, *, seed: int) -> list[str]:
    """``n`` plain-text documents of the domain: solved grids, each headed ``grid``.

    What pretraining teaches is the domain's token distribution (what a valid grid looks like),
    not the puzzle-to-solution mapping that fine-tuning adds: a document is an answer with no prompt.
    """
    return [f"grid\n{render_grid(doc['solution'])}" for doc in _problems("sudoku", n, seed)]
