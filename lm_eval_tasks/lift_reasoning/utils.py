"""lm-eval glue for the LIFT reasoning tasks: prompts and per-document scores.

The grading logic lives in :mod:`trl_lift.evaluation`; these functions only
bind it to each data set's fields.
"""

from trl_lift.evaluation.answers import extract_final_answer, gsm8k_reference
from trl_lift.evaluation.countdown import check_countdown
from trl_lift.evaluation.data import load_benchmark
from trl_lift.evaluation.math_equivalence import grade_gsm8k, grade_math
from trl_lift.evaluation.pass_at_k import avg_at_k, pass_at_k
from trl_lift.evaluation.sudoku import render_grid, score_sudoku

__all__ = [
    "countdown_prompt",
    "keep_all_samples",
    "load_benchmark",
    "process_aime",
    "process_countdown",
    "process_gsm8k",
    "process_math",
    "process_sudoku",
    "sudoku_prompt",
]

AIME_KS = (8, 16)


def countdown_prompt(doc: dict) -> str:
    """The user turn of a Countdown problem."""
    numbers = ", ".join(str(n) for n in doc["numbers"])
    return (
        f"Using the numbers [{numbers}], write an arithmetic expression that equals {doc['target']}. "
        "You may use +, -, *, / and parentheses, and must use each number exactly once. "
        "Give the expression alone, without '=', as the final answer."
    )


def sudoku_prompt(doc: dict) -> str:
    """The user turn of a 4x4 Sudoku puzzle."""
    return (
        "Solve this 4x4 Sudoku. Replace each 0 with a digit from 1 to 4 so that every row, "
        "every column and every 2x2 box contains 1, 2, 3 and 4 exactly once.\n\n"
        f"{render_grid(doc['puzzle'])}\n\n"
        "Give the completed grid as the final answer: its 16 digits, row by row."
    )


def keep_all_samples(resps, docs):
    """Filter that keeps every repeated sample (lm-eval keeps only the first by default)."""
    return resps


def process_math(doc: dict, results: list[str]) -> dict[str, float]:
    """MATH-500: the last boxed answer is mathematically equivalent to ``answer``."""
    return {"acc": float(grade_math(results[0], doc["answer"]))}


def process_gsm8k(doc: dict, results: list[str]) -> dict[str, float]:
    """GSM8K: the final number equals the number after ``####``."""
    return {"acc": float(grade_gsm8k(results[0], gsm8k_reference(doc["answer"])))}


def process_aime(doc: dict, results: list[str]) -> dict[str, float]:
    """AIME: every sample graded by equivalence; acc, avg@K and pass@K for K = 8, 16.

    ``results`` holds one entry, the list of all samples (see :func:`keep_all_samples`).
    """
    reference = doc["Answer"] if "Answer" in doc else doc["answer"]
    correct = [grade_math(response, reference) for response in results[0]]
    scores = {"acc": sum(correct) / len(correct)}
    for k in AIME_KS:
        scores[f"avg@{k}"] = avg_at_k(correct, k)
        scores[f"pass@{k}"] = pass_at_k(len(correct), sum(correct), k)
    return scores


def process_countdown(doc: dict, results: list[str]) -> dict[str, float]:
    """Countdown: the final expression uses each number once and equals the target."""
    expression = extract_final_answer(results[0])
    return {"acc": float(check_countdown(expression, doc["numbers"], doc["target"]))}


def process_sudoku(doc: dict, results: list[str]) -> dict[str, float]:
    """Sudoku: cell accuracy over the empty cells and whole-puzzle accuracy."""
    return score_sudoku(extract_final_answer(results[0]), doc["puzzle"], doc["solution"])
