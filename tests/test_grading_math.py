"""Answer extraction and the MATH-500 / AIME / GSM8K graders on hand-made cases."""

from fractions import Fraction

import pytest

from trl_lift.evaluation.answers import (
    answer_block,
    extract_final_answer,
    format_response,
    gsm8k_reference,
    last_boxed,
    last_number,
)
from trl_lift.evaluation.math_equivalence import grade_gsm8k, grade_math, is_equivalent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{42}", "42"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{1}{\sqrt{2}}"),
        (r"\fbox{7}", "7"),
        (r"\boxed {x^{2}}", "x^{2}"),
        (r"\boxed{3} and an unclosed \boxed{4", "3"),
        (r"no box here", None),
        (r"\boxed{unclosed", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_final_answer_prefers_box_then_answer_tag():
    assert extract_final_answer(r"<answer> 12 </answer> ... \boxed{13}") == "13"
    assert extract_final_answer("r</reasoning>\n<answer>\n 12 \n</answer>") == "12"
    assert extract_final_answer("<answer>5</answer><answer>6") == "6"  # an unclosed last block counts
    assert answer_block("no tags") is None
    assert extract_final_answer("just text 5") is None
    assert format_response("42", "6*7") == "6*7</reasoning>\n<answer>\\boxed{42}</answer>"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("She pays 3 + 4 = <<3+4=7>>7 dollars.\n#### 7", Fraction(7)),
        ("...\n#### 1,000", Fraction(1000)),
        ("...\n#### -3", Fraction(-3)),
        ("...\n#### 0.5", Fraction(1, 2)),
    ],
)
def test_gsm8k_reference(answer, expected):
    assert gsm8k_reference(answer) == expected


def test_gsm8k_reference_requires_final_line():
    with pytest.raises(ValueError):
        gsm8k_reference("no final line 7")


def test_last_number():
    assert last_number("costs $1,234.50 then 17 apples") == Fraction(17)
    assert last_number("temperature fell to -4.") == Fraction(-4)
    assert last_number("no digits") is None


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        (r"</reasoning><answer>\boxed{18}</answer>", 18, True),
        (r"\boxed{\$18}", 18, True),
        (r"\boxed{18.00}", 18, True),
        (r"\boxed{1,000}", 1000, True),
        (r"\boxed{1{,}000}", 1000, True),
        (r"\boxed{18 \text{ dollars}}", 18, True),
        (r"The answer is 18.", 18, True),  # no box, no tag: the last number
        (r"\boxed{18} wait, the answer is 19", 18, True),  # the box wins over trailing text
        (r"\boxed{19}", 18, False),
        (r"\boxed{-18}", 18, False),
        (r"I am not sure.", 18, False),
        (r"\boxed{0.5}", "0.5", True),
    ],
)
def test_grade_gsm8k(response, gold, expected):
    assert grade_gsm8k(response, gold) is expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("0.5", r"\frac{1}{2}", True),
        (r"\dfrac{1}{2}", r"\frac12", True),
        ("070", "70", True),
        (r"\left( 3, \frac{\pi}{2} \right)", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"(3, \pi/2)", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"2\sqrt{2}", r"\sqrt{8}", True),
        ("71", "70", False),
        (r"\frac{1}{3}", "0.33", False),
        (r"\text{(C)}", r"\text{(C)}", True),
        (r"\text{(B)}", r"\text{(C)}", False),
    ],
)
def test_is_equivalent(prediction, reference, expected):
    assert is_equivalent(prediction, reference) is expected


def test_grade_math_uses_last_box_and_requires_an_answer():
    assert grade_math(r"\boxed{3} no, \boxed{70}", 70)
    assert not grade_math(r"\boxed{70} no, \boxed{3}", 70)
    assert not grade_math("the answer is 70", 70)  # no box, no answer tag
    assert grade_math("</reasoning>\n<answer>70</answer>", "70")
