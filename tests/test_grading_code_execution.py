"""Grading code with the dataset's tests here and the candidate in the sandbox: correct code passes, wrong fails.

The adversarial programs live in ``test_sandbox_isolation.py`` (the operating system's walls) and
``test_sandbox_verdict.py`` (forging a pass).
"""

import math
import time

import pytest

from trl_lift.evaluation.code_execution import CodeTest, run_tests, run_tests_many
from trl_lift.evaluation.pass_at_k import pass_at_k


def grade(candidate, tests, *, timeout_s=10.0, call_timeout_s=None, **fields):
    return run_tests(CodeTest(candidate, tests, **fields), timeout_s=timeout_s, call_timeout_s=call_timeout_s)


def test_passing_and_failing_programs():
    assert grade("def f(x):\n    return x + 1\n", "assert f(1) == 2\n").passed
    result = grade("def f(x):\n    return x\n", "assert f(1) == 2, 'wrong'\n")
    assert (result.passed, result.status, result.reason) == (False, "failed", "AssertionError: wrong")
    result = grade("def f(:\n", "assert f(1) == 2\n")  # a syntax error in the candidate
    assert not result.passed and result.reason.startswith("SyntaxError")
    result = grade("def g(x):\n    return x\n", "assert f(1) == 1\n")  # the function the tests call is missing
    assert not result.passed and "NameError" in result.reason and "'f'" in result.reason


def test_plain_data_crosses_both_ways_exactly():
    values = (
        None, True, -7, 2**200, -(2**70), 0.1, -0.0, math.inf, 1e-310, 3 - 4j, "é\n\x00", b"\x00\xff", bytearray(b"ab"),
        [1, [2, (3, {4: frozenset({5})})]], {(1, 2): {"k": [None]}}, set(), (), {1.5, "a"},
    )  # fmt: skip
    candidate = "def echo(*args, **kwargs):\n    return [args, kwargs, [type(a).__name__ for a in args]]\n"
    names = [type(v).__name__ for v in values]
    tests = f"values = {values!r}\nassert echo(*values, key=values) == [values, {{'key': values}}, {names!r}]\n"
    tests += "assert math.isnan(echo(float('nan'))[0][0])\n"  # nan != nan, but it crosses as nan
    assert grade(candidate, tests, judge_setup="import math\nfrom math import inf\n").passed
    tests = "assert echo(1.0)[0][0] == 1 and type(echo(True)[0][0]) is bool and echo((1,))[0][0] != [1]\n"
    assert grade(candidate, tests).passed


def test_subclasses_of_plain_types_cross_as_their_base_value():
    candidate = (
        "from collections import Counter, namedtuple, OrderedDict\nP = namedtuple('P', 'x y')\n"
        "def f():\n    return Counter('aab'), P(1, 2), OrderedDict(a=1)\n"
    )
    assert grade(candidate, "assert f() == ({'a': 2, 'b': 1}, (1, 2), {'a': 1})\nassert type(f()[0]) is dict\n").passed


def test_candidate_helpers_state_and_exceptions_the_tests_expect():
    candidate = (
        "calls = []\ndef helper(x):\n    calls.append(x)\n    return x * 2\n"
        "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return helper(x)\n"
        "def count():\n    return len(calls)\n"
    )
    tests = (
        "assert f(2) == 4 and f(3) == 6\nassert count() == 2\n"
        "try:\n    f(-1)\n    raise AssertionError('no error')\n"
        "except ValueError as e:\n    assert str(e) == 'negative'\n"
    )
    assert grade(candidate, tests).passed


def test_humaneval_shape_prompt_helpers_run_in_the_judge():
    prompt = 'def double(x):\n    return 2 * x\n\ndef quad(x):\n    """Four times x."""\n'
    test = "def check(candidate):\n    assert candidate(3) == double(double(3))\n    assert candidate(0) == 0\n"
    judged = dict(judge_setup=prompt + test, names=("quad",))
    assert grade(prompt + "    return double(double(x))\n", "check(quad)\n", **judged).passed
    assert not grade(prompt + "    return 3 * x\n", "check(quad)\n", **judged).passed
    # the candidate redefining a prompt helper changes its own function, never the judge's expectations
    wrong = prompt + "    return 3 * x\ndef double(x):\n    return 1.5 * x\n"
    assert not grade(wrong, "check(quad)\n", **judged).passed


def test_mbpp_shape_setup_objects_cross_by_reference():
    candidate = (
        "class Node:\n    def __init__(self, v):\n        self.v, self.kids = v, []\n"
        "def size(n):\n    return 1 + sum(size(k) for k in n.kids)\n"
    )
    setup = "root = Node(1)\nroot.kids = [Node(2), Node(3)]\nroot.kids[0].kids.append(Node(4))\n"
    tests = "assert size(root) == 4\nassert size(root.kids) == 2\n"  # the second line reads an attribute here
    result = grade(candidate, tests.splitlines()[0], sandbox_setup=setup)
    assert result.passed, result
    result = grade(candidate, tests, sandbox_setup=setup)
    assert not result.passed and "AttributeError" in result.reason  # a reference is not an object here
    result = grade("def size(n):\n    return n\n", "assert size(root) == 4\n", sandbox_setup=setup)
    assert not result.passed  # the candidate's class is missing, so is root


def test_which_names_the_tests_take_from_the_candidate():
    candidate = "def sum(a, b):\n    return a * b\ndef set(x):\n    return 1\n"
    # without a reference a builtin stays the builtin: a candidate's `set` would decide both sides
    assert not grade(candidate, "assert sum(2, 3) == 6\n").passed
    assert not grade(candidate, "assert set([1, 2]) == set([3])\n").passed
    # the dataset's solution says `sum` is the function under test (MBPP 126)
    assert grade(candidate, "assert sum(2, 3) == 6\n", reference="def sum(a, b):\n    pass\n").passed
    # a standard-library module the tests name is ours, not the candidate's
    tests = "assert math.isclose(f(), 0.3)\n"
    assert grade("import math\nmath = None\ndef f():\n    return 0.1 + 0.2\n", tests).passed


def test_non_plain_values_fail_with_a_reason():
    result = grade("def f():\n    return (i for i in range(3))\n", "assert list(f()) == [0, 1, 2]\n")
    assert not result.passed and "generator object is not plain data" in result.reason
    result = grade("class A:\n    pass\ndef f():\n    return A()\n", "assert f() is not None\n")
    assert not result.passed and "__main__.A object is not plain data" in result.reason
    result = grade("def f():\n    return [1]\nx = f()\n", "assert f() == [1]\n")
    assert result.passed  # a sanity check of the pair above
    result = grade("def apply(g, x):\n    return g(x)\n", "assert apply(lambda v: v + 1, 1) == 2\n")
    assert not result.passed and "the tests pass a value that is not plain data to apply()" in result.reason


def test_timeouts_whole_sample_and_per_call():
    start = time.monotonic()
    result = grade("while True:\n    pass\n", "pass\n", timeout_s=1.0)
    assert (result.passed, result.status) == (False, "timeout") and time.monotonic() - start < 5
    slow = "import time\ndef f(s):\n    time.sleep(s)\n    return s\n"
    assert grade(slow, "assert f(0.1) == 0.1\nassert f(0.1) == 0.1\n", call_timeout_s=1.0).passed
    result = grade(slow, "assert f(0.1) == 0.1\nassert f(3) == 3\n", call_timeout_s=0.5, timeout_s=10.0)
    assert result.status == "timeout"
    # a timeout fails the sample even when the tests swallow the exception
    result = grade(slow, "try:\n    f(3)\nexcept Exception:\n    pass\n", timeout_s=0.5)
    assert result.status == "timeout"


def test_output_is_kept_and_bounded():
    result = grade("print('hello')\ndef f():\n    print('x' * 100000)\n    return 1\n", "assert f() == 2\n")
    assert not result.passed and result.output.endswith("x" * 100 + "\n") and len(result.output) == 2000
    assert grade("print('hello')\n", "pass\n").output == "hello\n"


def test_batches_in_order_and_pass_at_k():
    correct = "def f(x):\n    return x * x\n"
    samples = [correct, "def f(x):\n    return x + x\n", correct, "while True: pass\n", "def f(x):\n    return 4\n"]
    tests = [CodeTest(s, "assert f(2) == 4\nassert f(3) == 9\n") for s in samples]
    results = run_tests_many(tests, max_parallel=2, timeout_s=2.0)
    assert [r.status for r in results] == ["passed", "failed", "passed", "timeout", "failed"]
    n, c = len(results), sum(r.passed for r in results)
    assert pass_at_k(n, c, 1) == pytest.approx(2 / 5)
    assert pass_at_k(n, c, 2) == pytest.approx(1 - (3 * 2) / (5 * 4))


def test_the_tests_own_errors_are_the_callers():
    with pytest.raises(SyntaxError):
        grade("def f():\n    return 1\n", "assert f( == 1\n")
    with pytest.raises(ZeroDivisionError):
        grade("def f():\n    return 1\n", "assert f() == 1\n", judge_setup="1 / 0\n")
