"""The testbed's domain: 4x4 Sudoku and small Countdown, as text a tiny diffusion LM can learn.

One source of truth for the text: the fine-tuning pairs, the pretraining documents and the lm-eval
tasks ``lift_testbed_sudoku`` / ``lift_testbed_countdown`` (``lm_eval_tasks/lift_testbed/``) all
call :func:`prompt` and :func:`completion`, so what the model is trained on is exactly what
lm-eval asks it. The held-out problems are the tasks' own (:func:`held_out`: fixed seeds); the
training problems come from other seeds with every held-out problem removed.

Puzzles use the project's generators (:mod:`trl_lift.evaluation.sudoku`,
:mod:`trl_lift.evaluation.countdown`) and graders; Countdown is drawn small (three numbers up to
:data:`COUNTDOWN_MAX_NUMBER`, targets up to :data:`COUNTDOWN_MAX_TARGET`) so that a CPU-sized model
can learn some of it.
"""

from __future__ import annotations

from ..evaluation.countdown import check_countdown, generate_countdown
from ..evaluation.sudoku import generate_sudoku, render_grid, score_sudoku

__all__ = [
    "HELD_OUT_SEEDS",
    "TASKS",
    "completion",
    "held_out",
    "pretraining_documents",
    "prompt",
    "score",
    "training_pairs",
]

TASKS = ("sudoku", "countdown")
HELD_OUT_SEEDS = {"sudoku": 2026, "countdown": 2026}
HELD_OUT_SIZE = 256
COUNTDOWN_MAX_NUMBER = 12
COUNTDOWN_MAX_TARGET = 60


def _problems(task: str, n: int, seed: int) -> list[dict]:
    if task == "sudoku":
        return [p.as_doc() for p in generate_sudoku(n, seed=seed)]
    if task == "countdown":
        found = generate_countdown(n, seed=seed, max_number=COUNTDOWN_MAX_NUMBER, max_target=COUNTDOWN_MAX_TARGET)
        return [p.as_doc() for p in found]
    raise KeyError(f"unknown testbed task {task!r}; tasks are {TASKS}")


def _key(task: str, doc: dict) -> str:
    return doc["puzzle"] if task == "sudoku" else f"{sorted(doc['numbers'])}->{doc['target']}"


def held_out(task: str, n: int = HELD_OUT_SIZE) -> list[dict]:
    """The first ``n`` held-out problems of ``task`` (the lm-eval task's test split), as dataset rows."""
    return _problems(task, n, HELD_OUT_SEEDS[task])


def prompt(task: str, doc: dict) -> str:
    """The prompt: the task's name, the problem, and ``solution`` on its own line."""
    if task == "sudoku":
        return f"sudoku\n{render_grid(doc['puzzle'])}\nsolution\n"
    if task == "countdown":
        return f"countdown {' '.join(map(str, doc['numbers']))} target {doc['target']}\nsolution\n"
    raise KeyError(f"unknown testbed task {task!r}; tasks are {TASKS}")


def completion(task: str, doc: dict) -> str:
    """The answer: the solved grid (four rows), or one expression that reaches the target."""
    return render_grid(doc["solution"]) if task == "sudoku" else doc["solution"]


def score(task: str, doc: dict, generated: str) -> dict[str, float]:
    """Grade one generation: Sudoku ``cell_acc`` and ``acc``; Countdown ``acc``."""
    text = generated.strip()
    if task == "sudoku":
        return score_sudoku(text, doc["puzzle"], doc["solution"])
    return {"acc": float(check_countdown(text.splitlines()[0] if text else None, doc["numbers"], doc["target"]))}


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
    """``n`` plain-text documents of the domain: solved grids and correct Countdown equations.

    What pretraining teaches is the domain's token distribution (valid grids, valid arithmetic),
    not the prompt-to-answer mapping that fine-tuning adds: a document is an answer with no prompt.
    """
    half = n // 2
    grids = [f"grid\n{render_grid(doc['solution'])}" for doc in _problems("sudoku", half, seed)]
    sums = [f"{doc['solution']} = {doc['target']}" for doc in _problems("countdown", n - half, seed + 1)]
    return [text for pair in zip(grids, sums) for text in pair] + grids[len(sums):] + sums[len(grids):]
