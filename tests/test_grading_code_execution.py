"""The code sandbox: correct programs pass; failures and adversarial programs are contained."""

import os
import socket
import time

import pytest

from trl_lift.evaluation.code_execution import run_program, run_programs

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs fork and resource limits")


def test_passing_and_failing_programs():
    assert run_program("def f(x):\n    return x + 1\nassert f(1) == 2\n").passed
    result = run_program("def f(x):\n    return x\nassert f(1) == 2, 'wrong'\n")
    assert (result.passed, result.status) == (False, "failed")
    assert "AssertionError: wrong" in result.output
    assert not run_program("def f(:\n").passed  # a syntax error


def test_infinite_loop_times_out():
    start = time.monotonic()
    result = run_program("while True:\n    pass\n", timeout_s=1.0)
    assert (result.passed, result.status) == (False, "timeout")
    assert time.monotonic() - start < 5


def test_writing_outside_the_temp_folder_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    for program in (
        f"open({str(target)!r}, 'w').write('x')",
        f"import os\nos.close(os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT))",
        f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
    ):
        result = run_program(program)
        assert not result.passed and "sandbox" in result.output
    assert not target.exists()
    keep = tmp_path / "keep.txt"
    keep.write_text("data")
    assert not run_program(f"import os\nos.remove({str(keep)!r})").passed
    assert not run_program(f"import shutil\nshutil.rmtree({str(tmp_path)!r})").passed
    assert keep.read_text() == "data"


def test_writing_inside_the_temp_folder_is_allowed():
    program = "import os, tempfile\nopen('a.txt', 'w').write('x')\nos.remove('a.txt')\ntempfile.mkstemp()\n"
    assert run_program(program).passed


def test_network_is_refused():
    with socket.socket() as server:  # a listener the program would otherwise reach
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        server.settimeout(0.5)
        result = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}))")
        assert not result.passed and "socket" in result.output
        with pytest.raises(TimeoutError):
            server.accept()


def test_large_allocation_is_contained():
    result = run_program("x = bytearray(8 * 2**30)\n", memory_mb=512)
    assert not result.passed and "MemoryError" in result.output


@pytest.mark.parametrize(
    "program",
    [
        "import sys\nsys.exit(0)\nassert False",  # leaving early is not passing
        "import os\nos._exit(0)\nassert False",
        "import os\nos.fork()",
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "import ctypes\nctypes.CDLL(None)",
        "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
    ],
)
def test_escapes_fail(program):
    assert not run_program(program).passed


def test_sandbox_survives_and_batches_in_order():
    run_program("import os\nos.kill(os.getppid(), 9)")  # refused, the server lives on
    programs = ["assert True", "assert False", "while True: pass", "assert 1 + 1 == 2"]
    results = run_programs(programs, timeout_s=1.0, max_parallel=2)
    assert [r.status for r in results] == ["passed", "failed", "timeout", "passed"]
