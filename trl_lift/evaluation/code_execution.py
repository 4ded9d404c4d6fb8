"""Running generated programs against a benchmark's tests, sandboxed and offline.

HumanEval and MBPP (the LIFT paper's appendix) are graded by executing the
model's code with the task's tests. The stock lm-eval tasks fetch their
executor with ``evaluate.load("code_eval")``, which needs the hub; this module
needs nothing but the standard library. Programs run in children of a small
fork-server (``_sandbox_worker.py``, started once per process with
``python -I -S -B``) under time and memory limits, with no network, no
sub-processes and writes confined to a fresh temporary folder; see that
module for the exact guards. Running model-written code is still a risk: the
lm-eval tasks that call this are marked ``unsafe_code: true``, so lm-eval
refuses them without ``--confirm_run_unsafe_code``.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ExecutionResult", "run_program", "run_programs"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
_WORKER = Path(__file__).with_name("_sandbox_worker.py")


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one program.

    Attributes:
        passed: the program ran to its end without an exception.
        status: ``"passed"``, ``"failed"`` (an exception, a refused operation, a
            limit hit, an early exit) or ``"timeout"``.
        output: the last 2,000 characters of its stdout and stderr.
    """

    passed: bool
    status: str
    output: str


class _Server:
    """The fork-server process, started lazily and restarted if it dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        atexit.register(self.close)

    def _ensure(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                close_fds=True,
            )
        return self._process

    def run(self, jobs: list[dict], max_parallel: int) -> list[dict]:
        with self._lock:
            process = self._ensure()
            process.stdin.write(json.dumps({"jobs": jobs, "max_parallel": max_parallel}) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
            if not line:
                self.close()
                raise RuntimeError("the code-execution sandbox exited unexpectedly")
            return json.loads(line)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=30)
        self._process = None


_SERVER = _Server()


def run_programs(
    programs: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_parallel: int = 1,
) -> list[ExecutionResult]:
    """Run each program (candidate code followed by its tests) in the sandbox.

    Args:
        programs: complete Python sources; a program passes when it runs to the
            end, so tests are plain ``assert`` statements or a ``check(...)`` call.
        timeout_s: wall-clock limit per program, seconds (CPU time is capped a
            second later).
        memory_mb: address-space limit per program, MiB.
        max_parallel: programs run at the same time.

    Returns:
        One :class:`ExecutionResult` per program, in order.
    """
    jobs = [{"program": p, "timeout_s": timeout_s, "memory_mb": memory_mb} for p in programs]
    return [ExecutionResult(**r) for r in _SERVER.run(jobs, max_parallel)] if jobs else []


def run_program(
    program: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB
) -> ExecutionResult:
    """Run one program in the sandbox; see :func:`run_programs`."""
    return run_programs([program], timeout_s=timeout_s, memory_mb=memory_mb)[0]
