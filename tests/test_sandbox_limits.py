"""Adversarial programs against the evaluator and the machine: signals, the process tree's lifetime,
resource exhaustion. Each fails, the evaluator and every other process live on, nothing is left behind.
"""

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _sandbox_attacks import ROOT, attack, marked_processes, requires_isolation, unprotected, wait_until_gone

from trl_lift.evaluation.sandbox import Sandbox

pytestmark = requires_isolation


@pytest.fixture
def unsandboxed(monkeypatch):
    return unprotected(monkeypatch)


def test_signals_reach_nothing_outside(unsandboxed):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = Sandbox()
    other.execute("def alive():\n    return 'yes'\n", deadline=time.monotonic() + 10)
    targets = [os.getpid(), os.getppid(), sleeper.pid, other._process.inner_pid, other._process.process.pid]
    body = f"""
    errors = []
    libc = ctypes.CDLL(None)
    for pid in {targets!r} + [-1, 0]:
        for kill in (os.kill, lambda p, s: libc.kill(p, s)):
            try:
                kill(pid, signal.SIGKILL)
            except OSError as error:
                errors.append(error.errno)
    for pgid in {[os.getpgid(0), os.getpgid(sleeper.pid)]!r}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError as error:
            errors.append(error.errno)
    try:
        subprocess.run(['pkill', '-9', '-f', 'time.sleep'])
    except OSError:  # no pkill in the sandbox
        pass
    return 'sent'
    """
    sleeper_killed = f"""
    attack()
    for _ in range(50):  # a signal takes a moment to land
        if open('/proc/{sleeper.pid}/stat').read().split()[2] == 'Z':
            break
        time.sleep(0.02)
    else:
        raise AssertionError('the sleeper lives')
    """
    try:
        result = attack(body, sleeper_killed)
        assert (result.passed, result.reason) == (False, "AssertionError: the sleeper lives")
        assert sleeper.poll() is None
        assert other.call("alive", (), {}, deadline=time.monotonic() + 10) == "yes"
        assert attack("return 1", "assert attack() == 1\n").passed  # and new sandboxes still start
        # without isolation the same program kills the sleeper (only that: it is the harmless target)
        only_sleeper = f"os.kill({sleeper.pid}, signal.SIGKILL)\nreturn 'sent'"
        assert unsandboxed(only_sleeper, sleeper_killed).passed
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
    finally:
        other.close()
        sleeper.kill()
        sleeper.wait()


def test_the_whole_tree_dies_with_the_sample_and_with_the_evaluator():
    marker = f"trl_lift_marker_{secrets.token_hex(4)}"
    sleep = f"import time; time.sleep(120)  # {marker}"
    detach = f"""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, '-c', {sleep!r}])
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.5)
    return 'detached'
    """
    tests = f"assert attack() == 'detached'\nassert marked({marker!r}), 'no grandchild'\nassert False, 'done'\n"
    result = attack(detach, tests)
    assert result.reason == "AssertionError: done"  # the detached grandchild ran (seen from here)...
    assert wait_until_gone(marker) == []  # ...and is gone with its sandbox
    evaluator = textwrap.dedent(f"""
        import os, sys, time
        from trl_lift.evaluation.sandbox import Sandbox
        box = Sandbox()
        box.execute("import os, sys\\nos.posix_spawn(sys.executable, [sys.executable, '-c', {sleep!r}], {{}})\\n",
                    deadline=time.monotonic() + 10)
        print('ready', flush=True)
        time.sleep(120)
    """)
    process = subprocess.Popen(  # the script on stdin: only the sleeper's command line holds the marker
        [sys.executable, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    process.stdin.write(evaluator)
    process.stdin.close()
    try:
        assert process.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 5
        while not marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marked_processes(marker)
        process.kill()  # the evaluator dies without cleaning up
        process.wait()
        assert wait_until_gone(marker) == []
    finally:
        process.kill()
        process.wait()


# -- resource exhaustion ----------------------------------------------------------------------------

EXHAUSTION = {
    "memory": ("x = bytearray(8 << 30)\nreturn 1", "MemoryError"),
    "memory in many processes": ("for _ in range(64):\n    if os.fork() == 0:\n        bytearray(200 << 20)\n"
                                 "        time.sleep(5)\n        os._exit(0)\nreturn 1", "BlockingIOError"),
    "threads": ("import threading\nfor _ in range(100):\n    threading.Thread(target=time.sleep, args=(5,)).start()",
                "can't start new thread"),
    "giant file": ("open('big', 'wb').write(b'x' * (100 << 20))\nreturn 1", "File too large"),
    "many files": ("for i in range(10):\n    open(f'f{i}', 'wb').write(b'x' * (15 << 20))\nreturn 1",
                   "No space left on device"),
    "open files": ("return [open('/dev/null') for _ in range(100)]", "Too many open files"),
    "giant reply": ("return 'x' * (32 << 20)", "reply exceeds 16 MiB"),
}  # fmt: skip


@pytest.mark.parametrize("kind", EXHAUSTION)
def test_exhaustion_is_contained_by_limits(kind):
    body, reason = EXHAUSTION[kind]
    result = attack(body, "assert attack() == 1\n")
    assert not result.passed and reason in result.reason + result.output, result


@pytest.mark.parametrize("kind", ["infinite loop", "fork bomb", "output flood", "sleep"])
def test_runaway_programs_time_out_and_leave_nothing(kind):
    marker = f"trl_lift_marker_{secrets.token_hex(4)}"
    body = {
        "infinite loop": "while True:\n    pass",
        "fork bomb": f"while True:\n    try:\n        os.posix_spawn(sys.executable, [sys.executable, '-c', "
        f"'import time; time.sleep(60)  # {marker}'], {{}})\n    except OSError:\n        pass",
        "output flood": "while True:\n    print('x' * 10000)",
        "sleep": "time.sleep(60)",
    }[kind]
    start = time.monotonic()
    result = attack(body, "assert attack() == 1\n", timeout_s=2.0)
    assert (result.passed, result.status) == (False, "timeout")
    assert time.monotonic() - start < 6
    assert len(result.output) <= 2000
    assert wait_until_gone(marker) == []
    assert attack("return 1", "assert attack() == 1\n").passed  # the evaluator is fine
