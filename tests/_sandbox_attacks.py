"""Shared by the adversarial sandbox tests: running an attack, trusted helpers, the unprotected control."""

import os
import textwrap
import time
from pathlib import Path

import pytest

from trl_lift.evaluation.code_execution import CodeTest, run_tests
from trl_lift.evaluation.sandbox import UnsafeSandboxWarning, sandbox_mode

requires_isolation = pytest.mark.skipif(
    sandbox_mode() != "bwrap", reason="TRL_LIFT_SANDBOX=unsafe-fallback: there is no isolation to test"
)
ROOT = Path(__file__).resolve().parents[1]
PRELUDE = "import ctypes, os, shutil, signal, socket, sqlite3, subprocess, sys, time\n"


# trusted helpers the tests below use here, in the judge
JUDGE = """
import os

def snapshot(folder):
    found = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            info = os.lstat(os.path.join(parent, name))
            found[os.path.join(parent, name)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found

def marked(marker):
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as fh:
                if marker.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found
"""
_judge = {}
exec(JUDGE, _judge)
host_snapshot, marked_processes = _judge["snapshot"], _judge["marked"]


def attack(body: str, tests: str, **options):
    """``def attack(): <body>`` in the sandbox; ``tests``, with the helpers of ``JUDGE``, here."""
    source = PRELUDE + "def attack():\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    return run_tests(CodeTest(source, textwrap.dedent(tests), judge_setup=JUDGE), **options)


def unprotected(monkeypatch):
    """``attack`` with no isolation at all (the unsafe fallback), to show that an attack works."""

    def run(body, tests, **options):
        with monkeypatch.context() as patch, pytest.warns(UnsafeSandboxWarning):
            patch.setenv("TRL_LIFT_SANDBOX", "unsafe-fallback")
            return attack(body, tests, **options)

    return run


def wait_until_gone(marker: str, seconds: float = 5.0) -> list[int]:
    """Host processes whose command line holds ``marker``, once they are gone or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while (left := [p for p in marked_processes(marker) if p != os.getpid()]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
