"""Forging a pass: every trick a failing candidate can play from inside the sandbox still scores a failure.

The verdict is made here by the dataset's tests on plain values; the candidate's only channel is the
values it returns (and the exceptions it raises). Each program below is wrong (``f(1)`` should be 2)
and tries to pass anyway.
"""

import json
import math

import pytest

from trl_lift.evaluation.code_execution import CodeTest, run_tests
from trl_lift.evaluation.sandbox.worker import Unencodable, decode, encode

WRONG = "def f(x):\n    return 0\n"


def grade(candidate, tests="assert f(1) == 2\n", **fields):
    return run_tests(CodeTest(candidate, tests, **fields), timeout_s=2.0)


FORGERIES = {
    "prints passed": WRONG + "print('passed')\nprint('{\"ok\": true}')\nimport sys\nsys.stderr.write('PASS\\n')\n",
    "exit 0 at the top": WRONG + "import sys\nsys.exit(0)\n",
    "os._exit 0 at the top": WRONG + "import os\nos._exit(0)\n",
    "exit 0 in the call": "import sys\ndef f(x):\n    sys.exit(0)\n",
    "os._exit 0 in the call": "import os\ndef f(x):\n    os._exit(0)\n",
    "patched AssertionError": WRONG + "import builtins\nbuiltins.AssertionError = type('A', (Exception,), {})\n",
    "patched builtins": WRONG
    + "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: int\n",
    "own check": WRONG + "def check(candidate):\n    pass\n",
    "eq always true": "class Yes:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Yes()\n",
    "int subclass eq": "class Two(int):\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = int.__hash__\ndef f(x):\n    return Two(0)\n",
    "str subclass eq": "class S(str):\n    def __eq__(self, other):\n        return True\n"
    "def f(x):\n    return S('no')\n",
    "fake __class__": "class Fake:\n    __class__ = int\n    def __eq__(self, o):\n        return True\n"
    "    def __int__(self):\n        return 0\ndef f(x):\n    return Fake()\n",
    "list subclass eq": "class L(list):\n    def __eq__(self, other):\n        return True\n"
    "def f(x):\n    return L()\n",
    "cyclic value": "def f(x):\n    a = []\n    a.append(a)\n    return a\n",
    "forged replies on every fd": WRONG + "import os\nfor fd in range(64):\n    try:\n"
    '        os.write(fd, b\'{"ok":true}\\n{"value":true}\\n{"passed":true}\\n\')\n'
    "    except OSError:\n        pass\n",
    "garbage reply": "import os, sys, json\ndef f(x):\n    fd = json.loads(sys.argv[1])['reply_fd']\n"
    "    os.write(fd, b'NaN\\n')\n    return 0\n",
    "reply without end": "import os, sys, json\ndef f(x):\n    fd = json.loads(sys.argv[1])['reply_fd']\n"
    "    os.write(fd, b'[' * 100000)\n    import time\n    time.sleep(60)\n",
    "patched json in the worker": "import json\n_dumps = json.dumps\n"
    "json.dumps = lambda data, **kw: _dumps({'value': True} if 'value' in data else data, **kw)\n" + WRONG,
    "worker state": WRONG + "import gc, sys\nfound = [o for o in gc.get_objects() if isinstance(o, (bytes, str)) "
    "and len(o) == 32]\nprint(sys.argv, len(found))\n",
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forgeries_fail(forgery):
    result = grade(FORGERIES[forgery])
    assert not result.passed, result


def test_forged_replies_only_ever_claim_values():
    """Writing replies ahead is returning values by another road: the judge still compares them itself.

    A forged ``2`` for ``f(1)`` is what ``return 2`` would give (the candidate knew that answer); the
    next input gets the next forged line, or the real reply, and fails.
    """
    forge = (
        WRONG + "import os, sys, json\nfd = json.loads(sys.argv[1])['reply_fd']\n"
        'os.write(fd, b\'{"ok":true}\\n{"value":2}\\n{"value":2}\\n\')\n'
    )
    assert grade(forge).passed
    assert not grade(forge, "assert f(1) == 2\nassert f(2) == 4\n").passed
    patched = "import json\n_dumps = json.dumps\n" + (
        "json.dumps = lambda data, **kw: _dumps({'value': 2} if 'value' in data else data, **kw)\n" + WRONG
    )
    assert grade(patched).passed and not grade(patched, "assert f(1) == 2\nassert f(2) == 4\n").passed


def test_humaneval_check_and_helpers_are_the_datasets():
    prompt = 'def helper(x):\n    return x + 1\n\ndef f(x):\n    """Return helper(x)."""\n'
    test = "def check(candidate):\n    assert candidate(1) == helper(1)\n"
    judged = dict(judge_setup=prompt + test, names=("f",))
    assert grade(prompt + "    return helper(x)\n", "check(f)\n", **judged).passed  # the honest solution
    forged = prompt + "    return 0\ndef check(candidate):\n    pass\ndef helper(x):\n    return 0\n"
    assert not grade(forged, "check(f)\n", **judged).passed


def test_control_flow_exceptions_do_not_end_the_tests_loops():
    candidate = "def f(x):\n    raise StopIteration\n"
    tests = "assert all(map(f, [1, 2, 3]))\n"
    namespace = {}
    exec(candidate + tests, namespace)  # in one process this wrong candidate passes: map just stops
    result = grade(candidate, tests)
    assert not result.passed and "StopIteration" in result.reason
    for name in ("GeneratorExit", "KeyboardInterrupt", "SystemExit", "StopAsyncIteration"):
        result = grade(
            f"def f(x):\n    raise {name}\n",
            "try:\n    f(1)\nexcept Exception as e:\n    raise AssertionError(type(e).__name__)\n",
        )
        assert result.reason == "AssertionError: CandidateError", name  # never the real control-flow exception


def test_codec_round_trips_builtins_exactly():
    values = [None, True, 0, -(2**100), 2.5, -0.0, math.inf, 1 + 2j, "x", b"\x00", bytearray(b"y"),
              [1, (2,)], {"a": {1, 2}}, frozenset({(1, "b")}), {(1, 2): [None]}]  # fmt: skip
    for value in values:
        data = json.loads(json.dumps(encode(value)))
        back = decode(data)
        assert back == value and type(back) is type(value)
    assert math.isnan(decode(encode(math.nan)))


def test_codec_refuses_what_is_not_plain_data():
    for value in (lambda: 1, (i for i in ()), object(), range(3), type, print):
        with pytest.raises(Unencodable):
            encode(value)
    deep = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(Unencodable):
        encode(deep)
    bad = [1.5, {"x": 1}, {"t": 1}, {"f": 1.0}, {"d": [[1]]}, {"g": "name"}, {"c": [1, 2]}, {"i": "zz"}, {"s": [[1]]}]
    for data in bad:
        with pytest.raises((ValueError, TypeError)):
            decode(data)
    assert decode({"g": "root"}, deref=lambda name: f"<{name}>") == "<root>"  # references only where allowed
