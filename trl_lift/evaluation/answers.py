"""Answer extraction from model responses in the LIFT paper's answer format.

The paper (Parashar et al., ICML 2026) prompts for
``<reasoning>...</reasoning><answer>...</answer>`` with the final answer in
``\\boxed{}``; graders read the *last* ``\\boxed{}`` of the response. These are
pure string functions shared by the lm-eval tasks, the tests and any reward
function.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = [
    "answer_block",
    "extract_final_answer",
    "format_response",
    "gsm8k_reference",
    "last_boxed",
    "last_number",
    "parse_number",
]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
# A number with optional sign, thousands separators and decimals: "-1,234.50", ".5".
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced.

    Args:
        text: a model response.

    Returns:
        The content between the braces (nested braces kept), or ``None`` when
        ``text`` has no complete boxed expression.
    """
    for match in reversed(list(_BOXED.finditer(text))):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
    return None


def answer_block(text: str) -> str | None:
    """Content of the last ``<answer>...</answer>`` block (an unclosed final block counts).

    Returns ``None`` when the response has no ``<answer>`` tag; the content is stripped.
    """
    blocks = _ANSWER_BLOCK.findall(text)
    return blocks[-1].strip() if blocks else None


def extract_final_answer(text: str) -> str | None:
    """The response's final answer: the last ``\\boxed{}``, else the ``<answer>`` block.

    This is the paper's rule (last boxed answer) with the answer tag as the
    fallback for responses that drop the box; ``None`` means no answer was given.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    return answer_block(text)


def parse_number(text: str) -> Fraction | None:
    """Exact value of a plain number such as ``"1,234"``, ``"-3.50"`` or ``"$18"``.

    Returns ``None`` when ``text`` (after removing ``$``, ``,`` and spaces) is not a number.
    """
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> Fraction | None:
    """Exact value of the last number written in ``text`` (``None`` if it has none)."""
    numbers = _NUMBER.findall(text)
    return parse_number(numbers[-1]) if numbers else None


def gsm8k_reference(answer: str) -> Fraction:
    """The gold number of a GSM8K ``answer`` field (the text after ``####``).

    Raises:
        ValueError: if the field has no ``#### N`` line.
    """
    _, sep, tail = answer.rpartition("####")
    value = parse_number(tail.strip()) if sep else None
    if value is None:
        raise ValueError(f"GSM8K answer has no '#### N' final line: {answer[-80:]!r}")
    return value


def format_response(answer: str, reasoning: str = "") -> str:
    """A response in the prompted format, continuing after the prompt's ``<reasoning>``.

    ``format_response("42", "6*7")`` is ``"6*7</reasoning>\\n<answer>\\boxed{42}</answer>"``:
    what a perfect model writes; the gold-answer tests feed it back to the graders.
    """
    return f"{reasoning}</reasoning>\n<answer>\\boxed{{{answer}}}</answer>"
