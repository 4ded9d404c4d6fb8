"""Countdown: a seeded problem generator and an exact-arithmetic checker.

One of the LIFT paper's reasoning sets (256 problems, three numbers each):
combine the given numbers with ``+ - * /`` and parentheses, each number used
exactly once, to reach the target. The checker parses the expression with a
small recursive-descent parser over :class:`fractions.Fraction` (never
``eval``), so ``7/2*2`` is exactly 7 and division by zero is a wrong answer.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["CountdownProblem", "check_countdown", "evaluate_expression", "generate_countdown"]

DEFAULT_SEED = 2026
_MAX_TOKENS = 64  # longest expression the checker reads: a few numbers need far fewer tokens
_TOKEN = re.compile(r"\s*(?:(\d+)|(.))")
# LaTeX and Unicode spellings of the operators that models write.
_SPELLINGS = {"\\times": "*", "\\cdot": "*", "\\div": "/", "×": "*", "÷": "/", "−": "-", "\\left": "", "\\right": ""}


@dataclass(frozen=True)
class CountdownProblem:
    """One Countdown problem: reach ``target`` with ``numbers``; ``solution`` is one way."""

    numbers: tuple[int, ...]
    target: int
    solution: str

    def as_doc(self) -> dict:
        """The problem as a dataset row: ``numbers`` (list), ``target``, ``solution``."""
        return {"numbers": list(self.numbers), "target": self.target, "solution": self.solution}


def _bracket(text: str) -> str:
    return text if text.isdigit() else f"({text})"


def _random_expression(numbers: list[int], rng: random.Random) -> tuple[str, Fraction]:
    """A random fully parenthesised expression using every number once, and its value."""
    if len(numbers) == 1:
        return str(numbers[0]), Fraction(numbers[0])
    split = rng.randint(1, len(numbers) - 1)
    left_text, left = _random_expression(numbers[:split], rng)
    right_text, right = _random_expression(numbers[split:], rng)
    op = rng.choice("+-*/")
    if op == "/" and right == 0:
        op = "+"
    value = {"+": left + right, "-": left - right, "*": left * right, "/": left / right if right else 0}[op]
    return f"{_bracket(left_text)} {op} {_bracket(right_text)}", value


def generate_countdown(
    num_problems: int = 256,
    *,
    seed: int = DEFAULT_SEED,
    num_count: int = 3,
    max_number: int = 100,
    max_target: int = 1000,
) -> list[CountdownProblem]:
    """Seeded Countdown problems, each solvable by construction.

    Each problem draws ``num_count`` numbers in ``[1, max_number]``, combines
    them with random operators and bracketing, and keeps the result when it is
    an integer in ``[1, max_target]`` that is not one of the numbers. The same
    ``seed`` always gives the same problems (Python's ``random.Random``).

    Args:
        num_problems: problems to generate.
        seed: the generator's seed; :data:`DEFAULT_SEED` is the one the tasks use.
        num_count: numbers per problem.
        max_number: largest number drawn.
        max_target: largest target kept.
    """
    rng = random.Random(seed)
    problems: list[CountdownProblem] = []
    while len(problems) < num_problems:
        numbers = [rng.randint(1, max_number) for _ in range(num_count)]
        text, value = _random_expression(rng.sample(numbers, len(numbers)), rng)
        if value.denominator == 1 and 1 <= value <= max_target and int(value) not in numbers:
            problems.append(CountdownProblem(tuple(numbers), int(value), text))
    return problems


class _Parser:
    """Recursive descent over ``expr := term (('+'|'-') term)*``, ``term := factor (('*'|'/') factor)*``,
    ``factor := '-' factor | number | '(' expr ')'``."""

    def __init__(self, text: str):
        self.tokens: list[str] = []
        for number, symbol in _TOKEN.findall(text):
            if symbol and symbol.isspace():
                continue
            self.tokens.append(number or symbol)
        if len(self.tokens) > _MAX_TOKENS:
            raise ValueError("expression too long")
        self.pos = 0
        self.numbers: list[int] = []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end of expression")
        self.pos += 1
        return token

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op, right = self.take(), self.factor()
            if op == "/" and right == 0:
                raise ZeroDivisionError("division by zero")
            value = value * right if op == "*" else value / right
        return value

    def factor(self) -> Fraction:
        token = self.take()
        if token == "-":
            return -self.factor()
        if token.isdigit():
            self.numbers.append(int(token))
            return Fraction(int(token))
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        raise ValueError(f"unexpected token {token!r}")


def evaluate_expression(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the numbers it uses, in order.

    Accepts integers, ``+ - * /``, unary minus, parentheses, and the LaTeX or
    Unicode operators ``\\times \\cdot \\div × ÷``; brackets ``[] {}`` count as
    parentheses.

    Raises:
        ValueError: on anything else (names, decimals, ``**``, unbalanced brackets).
        ZeroDivisionError: on division by zero.
    """
    for spelling, op in _SPELLINGS.items():
        expression = expression.replace(spelling, op)
    expression = expression.translate(str.maketrans("[]{}", "()()"))
    parser = _Parser(expression)
    value = parser.expr()
    if parser.peek() is not None:
        raise ValueError(f"trailing input at token {parser.peek()!r}")
    return value, parser.numbers


def check_countdown(expression: str | None, numbers: list[int], target: int) -> bool:
    """Whether ``expression`` uses each of ``numbers`` exactly once and equals ``target``.

    A trailing ``= target`` (``"(3 + 5) * 2 = 16"``) is allowed and ignored
    when it restates the target; anything unparsable, or no expression, is wrong.
    """
    if expression is None:
        return False
    left, sep, right = expression.partition("=")
    if sep:
        try:
            if evaluate_expression(right)[0] != target:
                return False
        except (ValueError, ZeroDivisionError):
            return False
    try:
        value, used = evaluate_expression(left)
    except (ValueError, ZeroDivisionError):
        return False
    return value == target and Counter(used) == Counter(int(n) for n in numbers)
