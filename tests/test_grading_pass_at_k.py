"""avg@K and unbiased pass@K against hand-computed values."""

import pytest

from trl_lift.evaluation.pass_at_k import avg_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (16, 0, 8, 0.0),
        (16, 16, 8, 1.0),
        (16, 1, 8, 0.5),  # 1 - C(15,8)/C(16,8) = 1 - 6435/12870
        (16, 1, 16, 1.0),
        (16, 2, 8, 1 - 3003 / 12870),  # C(14,8) = 3003
        (16, 9, 8, 1.0),  # fewer than 8 wrong samples: every draw of 8 has a correct one
        (4, 1, 1, 0.25),
        (5, 2, 2, 1 - 3 / 10),  # C(3,2)/C(5,2)
        (8, 3, 8, 1.0),
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_avg_at_k():
    samples = [1, 0, 0, 1, 1, 0, 0, 0] + [1] * 8
    assert avg_at_k(samples, 8) == 3 / 8
    assert avg_at_k(samples, 16) == 11 / 16
    assert avg_at_k([True, False], 1) == 1.0


@pytest.mark.parametrize(("n", "c", "k"), [(8, 9, 1), (8, -1, 1), (8, 1, 9), (8, 1, 0)])
def test_pass_at_k_rejects_bad_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_avg_at_k_needs_k_samples():
    with pytest.raises(ValueError):
        avg_at_k([1, 0, 1], 8)
