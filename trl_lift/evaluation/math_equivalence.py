"""Graders for the math benchmarks of the LIFT paper: MATH-500, AIME and GSM8K.

MATH-500 and AIME compare the last ``\\boxed{}`` answer with the reference by
mathematical equivalence through math-verify (so ``0.5`` matches
``\\frac{1}{2}`` and ``070`` matches ``70``); GSM8K compares the final number
exactly. Pure functions of strings, shared by the lm-eval tasks and the tests.
"""

from __future__ import annotations

import threading
from fractions import Fraction

from .answers import extract_final_answer, last_number, parse_number

__all__ = ["grade_gsm8k", "grade_math", "is_equivalent"]

_TIMEOUT_S = 5


def _normalise(text: str) -> str:
    return "".join(text.split()).removeprefix("$").removesuffix("$")


def is_equivalent(prediction: str, reference: str) -> bool:
    """Whether two LaTeX answers are mathematically equivalent.

    Identical strings (ignoring whitespace and surrounding ``$``) are equal
    without parsing; otherwise both sides are parsed as boxed LaTeX by
    math-verify and compared symbolically and numerically (6-digit rounding).
    math-verify's signal-based timeouts only work in the main thread, so they
    are switched off elsewhere.

    Args:
        prediction: the model's answer, without ``\\boxed{}``.
        reference: the gold answer, without ``\\boxed{}``.
    """
    if _normalise(prediction) == _normalise(reference):
        return True
    from math_verify import parse, verify  # imported lazily: sympy is slow to import

    timeout = _TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=timeout)
    pred = parse(f"\\boxed{{{prediction}}}", parsing_timeout=timeout)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=timeout))


def grade_math(response: str, reference: str | int) -> bool:
    """MATH-500 / AIME grade: the response's final answer is equivalent to ``reference``.

    Args:
        response: the generated text (after the prompt's ``<reasoning>``).
        reference: the dataset's answer (LaTeX string, or an int for AIME 2024).

    Returns:
        ``False`` when the response gives no final answer.
    """
    answer = extract_final_answer(response)
    return answer is not None and is_equivalent(answer, str(reference))


def grade_gsm8k(response: str, reference: Fraction | int | str) -> bool:
    """GSM8K grade: the final number of the response equals the reference number.

    The final answer (last ``\\boxed{}``, else the ``<answer>`` block, else the
    whole response) is read as a number if it is one, else its last number is
    taken; the comparison is exact (``"1,000.00"`` equals ``1000``).

    Args:
        response: the generated text.
        reference: the gold number (see :func:`~trl_lift.evaluation.answers.gsm8k_reference`).
    """
    gold = reference if isinstance(reference, Fraction) else Fraction(str(reference))
    answer = extract_final_answer(response)
    text = response if answer is None else answer
    value = parse_number(text)
    if value is None:
        value = last_number(text.replace("\\!", "").replace("{,}", ","))
    return value is not None and value == gold
