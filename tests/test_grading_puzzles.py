"""Countdown and 4x4 Sudoku: generators (seeded, valid) and checkers on hand-made cases."""

from fractions import Fraction

import pytest

from trl_lift.evaluation.countdown import check_countdown, evaluate_expression, generate_countdown
from trl_lift.evaluation.sudoku import count_solutions, generate_sudoku, parse_grid, render_grid, score_sudoku


@pytest.mark.parametrize(
    ("expression", "numbers", "target", "expected"),
    [
        ("(3 + 5) * 2", [3, 5, 2], 16, True),
        ("2*(5+3)", [3, 5, 2], 16, True),
        ("(3 + 5) * 2 = 16", [3, 5, 2], 16, True),
        ("(3 + 5) * 2 = 17", [3, 5, 2], 16, False),  # a wrong restated target
        (r"(3 + 5) \times 2", [3, 5, 2], 16, True),
        ("(3 + 5) × 2", [3, 5, 2], 16, True),
        ("7 / 2 * 2", [7, 2, 2], 7, True),  # exact, not floating-point
        ("3 * 5 + 2", [3, 5, 2], 16, False),  # wrong value
        ("(3 + 5) * 2", [3, 5, 2, 1], 16, False),  # a number left unused
        ("(3 + 5) * 2 * 1", [3, 5, 2], 16, False),  # a number not given
        ("(3 + 3) + 10", [3, 10, 2], 16, False),  # a number used twice
        ("35 - 19", [3, 5, 19], 16, False),  # digits glued into a new number
        ("2 ** 4", [2, 4], 16, False),  # no powers
        ("16 / (2 - 2) + 16", [16, 2, 2, 16], 16, False),  # division by zero
        ("__import__('os').system('true')", [1], 1, False),  # never evaluated
        ("(3 + 5 * 2", [3, 5, 2], 13, False),
        ("", [3], 3, False),
        (None, [3], 3, False),
    ],
)
def test_check_countdown(expression, numbers, target, expected):
    assert check_countdown(expression, numbers, target) is expected


def test_evaluate_expression_is_exact():
    value, used = evaluate_expression("1/3 + 1/3 + 1/3 - -1")
    assert value == Fraction(2)
    assert used == [1, 3, 1, 3, 1, 3, 1]


def test_countdown_generator_is_seeded_and_solvable():
    problems = generate_countdown(256, seed=2026)
    assert problems == generate_countdown(256, seed=2026)
    assert problems != generate_countdown(256, seed=1)
    assert len(problems) == 256
    for p in problems:
        assert len(p.numbers) == 3 and 1 <= p.target <= 1000
        assert check_countdown(p.solution, list(p.numbers), p.target)


SOLUTION = "1234341221434321"
PUZZLE = "1034301221004301"  # 5 empty cells


def test_score_sudoku_hand_made():
    assert count_solutions(SOLUTION) == 1
    assert score_sudoku(render_grid(SOLUTION), PUZZLE, SOLUTION) == {"cell_acc": 1.0, "acc": 1.0}
    one_wrong = SOLUTION[:1] + "1" + SOLUTION[2:]  # cell 1 is empty in the puzzle: 4 of 5 right
    assert score_sudoku(one_wrong, PUZZLE, SOLUTION) == {"cell_acc": 0.8, "acc": 0.0}
    given_changed = "2" + SOLUTION[1:]  # a given cell overwritten: empties all right, puzzle wrong
    assert score_sudoku(given_changed, PUZZLE, SOLUTION) == {"cell_acc": 1.0, "acc": 0.0}
    assert score_sudoku("1234 3412", PUZZLE, SOLUTION) == {"cell_acc": 0.0, "acc": 0.0}
    assert score_sudoku(None, PUZZLE, SOLUTION) == {"cell_acc": 0.0, "acc": 0.0}


def test_parse_grid_layouts():
    assert parse_grid("1 2 3 4\n3 4 1 2\n2 1 4 3\n4 3 2 1") == SOLUTION
    assert parse_grid(r"1234 \\ 3412 \\ 2143 \\ 4321") == SOLUTION
    assert parse_grid("| 1 | 2 | 3 | 4 |\n|3|4|1|2|\n[2,1,4,3]\n4321") == SOLUTION
    assert parse_grid(SOLUTION.replace("4", "0", 1)) is None  # an empty cell left
    assert parse_grid(SOLUTION + "1") is None


def test_sudoku_generator_is_seeded_and_unique():
    problems = generate_sudoku(256, seed=2026)
    assert problems == generate_sudoku(256, seed=2026)
    assert len({p.puzzle for p in problems}) == 256
    for p in problems:
        assert count_solutions(p.puzzle) == 1
        assert count_solutions(p.solution) == 1 and "0" not in p.solution
        assert all(a in ("0", b) for a, b in zip(p.puzzle, p.solution))
        assert 6 <= p.puzzle.count("0") <= 10
