"""One live sandbox as seen from the trusted side: run code in it, call its functions with plain data.

Every exchange waits under a deadline and reads the worker's output as it
comes (so a flood can neither block the worker nor fill our memory: only the
tail is kept). Whatever goes wrong inside, a timeout, a crash, a reply that
is too large or not plain data, kills the whole sandbox and raises
:class:`SandboxError`; the sandbox then stays dead (``failure`` says why).
"""

from __future__ import annotations

import atexit
import builtins
import json
import os
import select
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import worker
from .launcher import SANDBOX_UID, START_TIMEOUT_S, Limits, SandboxUnavailable, WorkerProcess, launch, sandbox_mode

__all__ = ["CandidateError", "Sandbox", "SandboxError", "SandboxTimeout", "fresh_sandbox"]

MAX_REPLY_BYTES = 16 * 2**20
OUTPUT_TAIL_BYTES = 8192
_SIGNALS = {
    signal.SIGXCPU: "CPU time limit",
    signal.SIGKILL: "killed (CPU time limit or out of memory)",
    signal.SIGXFSZ: "file size limit",
    signal.SIGSEGV: "segmentation fault",
}


_CONFINED = {
    "uid": SANDBOX_UID,
    "CapEff": "0000000000000000",
    "CapPrm": "0000000000000000",
    "NoNewPrivs": "1",
    "Seccomp": "2",
}


class SandboxError(RuntimeError):
    """The sandbox died, timed out or broke the protocol; the candidate fails."""


class SandboxTimeout(SandboxError):
    """A call or the whole sample ran past its wall-clock limit."""


class CandidateError(Exception):
    """The candidate's code raised an exception that is not a plain built-in one (type name and message)."""


class Sandbox:
    """A worker in a fresh sandbox; a context manager that kills it on exit.

    Args:
        limits: resource limits for everything inside (``None``: the defaults of :class:`Limits`).

    Raises:
        SandboxUnavailable: the operating system cannot provide the sandbox.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.failure: str | None = None  # why it died, if it did not simply close
        self.timed_out = False
        self.status: dict = {}
        self._tail = bytearray()
        self._buffer = bytearray()
        self._process: WorkerProcess | None = launch(limits or Limits())
        for fd in (self._process.requests, self._process.replies, self._process.output):
            os.set_blocking(fd, False)
        try:
            reply = self._receive(time.monotonic() + START_TIMEOUT_S)
        except SandboxError as error:
            raise SandboxUnavailable(f"the sandbox did not start: {error}; output: {self.output!r}") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("ready"), dict):
            self.close()
            raise SandboxUnavailable(f"the sandbox did not start: unexpected first reply {str(reply)[:200]}")
        self.status = reply["ready"]
        if self.mode == "bwrap" and self.status != {**self.status, **_CONFINED}:  # said before any candidate code
            self.close()
            raise SandboxUnavailable(f"the sandbox's worker is not confined as it must be: {self.status}")

    def alive(self) -> bool:
        """The worker is still running (a spare may have been killed while it waited)."""
        return self._process is not None and self._process.process.poll() is None

    @property
    def mode(self) -> str:
        return self._process.mode if self._process else "closed"

    @property
    def output(self) -> str:
        """The last few thousand characters the sandbox printed (stdout and stderr)."""
        return self._tail.decode("utf-8", "replace")

    def execute(self, source: str, *, deadline: float) -> None:
        """Run ``source`` at the top level of the candidate's namespace.

        Raises:
            SandboxError: see :meth:`call`; an exception of the code is raised as by :meth:`call`.
        """
        self._answer(self._exchange({"op": "exec", "source": source}, deadline))

    def call(self, name: str, args: tuple, kwargs: dict, *, deadline: float, ref=None) -> Any:
        """Call ``name`` of the candidate's namespace; arguments and result cross as plain data.

        Args:
            name: a top-level name of the candidate's code.
            args, kwargs: plain data (see :mod:`.worker`).
            deadline: ``time.monotonic()`` by which the reply must have come.
            ref: ``ref(value)`` names a value to pass by reference (a sandboxed name), else ``None``.

        Returns:
            The result, rebuilt from plain data: built-in types only.

        Raises:
            worker.Unencodable: an argument is not plain data (nothing is sent).
            SandboxTimeout, SandboxError: the sandbox is now dead.
            CandidateError, or the built-in exception the candidate raised.
        """
        message = {
            "op": "call",
            "name": name,
            "args": [worker.encode(a, ref) for a in args],
            "kwargs": {str(k): worker.encode(v, ref) for k, v in kwargs.items()},
        }
        reply = self._exchange(message, deadline)
        if "unencodable" in reply:
            self._fail(f"{name}() returned a value that is not plain data: {str(reply['unencodable'])[:300]}")
        if "value" in reply:
            try:
                return worker.decode(reply["value"])
            except (ValueError, TypeError, RecursionError, OverflowError) as error:
                self._fail(f"malformed reply from the sandbox: {error}")
        return self._answer(reply)

    def close(self) -> None:
        """Kill the sandbox (every process in it); idempotent."""
        if self._process is not None:
            process, self._process = self._process, None
            self._drain_output(process.output)
            process.kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the wire -------------------------------------------------------------------------------

    def _answer(self, reply: dict) -> Any:
        if reply.get("ok") is True:
            return None
        error = reply.get("error")
        if not isinstance(error, dict):
            self._fail(f"malformed reply from the sandbox: {str(reply)[:200]}")
        raise _rebuild(str(error.get("type", "Exception")), str(error.get("message", "")))

    def _fail(self, reason: str, kind: type[SandboxError] = SandboxError) -> None:
        if self.failure is None:
            self.failure = reason
            self.timed_out = kind is SandboxTimeout
        self.close()
        raise kind(self.failure)

    def _exchange(self, message: dict, deadline: float) -> dict:
        if self._process is None:
            raise SandboxError(self.failure or "the sandbox is closed")  # dead: every later call fails too
        pending = memoryview((json.dumps(message, separators=(",", ":")) + "\n").encode())
        while pending:
            writable = self._wait(deadline, write=True)
            if writable:
                try:
                    pending = pending[os.write(self._process.requests, pending) :]
                except BrokenPipeError:
                    self._fail(self._death_reason())
        reply = self._receive(deadline)
        if not isinstance(reply, dict):
            self._fail(f"malformed reply from the sandbox: {str(reply)[:200]}")
        return reply

    def _receive(self, deadline: float) -> Any:
        while b"\n" not in self._buffer:
            self._wait(deadline)
            try:
                chunk = os.read(self._process.replies, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                self._fail(self._death_reason())
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY_BYTES:
                self._fail(f"the sandbox's reply exceeds {MAX_REPLY_BYTES >> 20} MiB")
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        try:
            return json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as error:
            self._fail(f"malformed reply from the sandbox: {error}")

    def _wait(self, deadline: float, write: bool = False) -> bool:
        """Drain output until the reply pipe is readable (or the request pipe writable); enforce the deadline."""
        process = self._process
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail("timed out: the wall-clock limit was reached", SandboxTimeout)
            watched = [process.output] + ([] if write else [process.replies])
            readable, writable, _ = select.select(watched, [process.requests] if write else [], [], remaining)
            if process.output in readable:
                self._drain_output(process.output)
            if writable or (not write and process.replies in readable):
                return True

    def _drain_output(self, fd: int) -> None:
        for _ in range(64):  # at most 4 MiB per wake-up, so a flood cannot starve the reply pipe
            try:
                chunk = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            self._tail += chunk
            del self._tail[:-OUTPUT_TAIL_BYTES]

    def _death_reason(self) -> str:
        process = self._process
        try:
            code = process.process.wait(timeout=1.0)
        except Exception:
            return "the sandbox stopped answering"
        return f"the sandbox exited ({_describe_status(code)})"


def _describe_status(code: int) -> str:
    signum = -code if code < 0 else code - 128 if code > 128 else 0  # bubblewrap reports 128 + signal
    if signum:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"status {code}: {name}, {_SIGNALS.get(signum, 'killed by a signal')}"
    return f"status {code}"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not plain data")


_BUILTIN_EXCEPTIONS = {
    name: cls
    for name, cls in vars(builtins).items()
    if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins"
}
for _control in ("StopIteration", "StopAsyncIteration"):  # they would end the judge's loops as if done
    _BUILTIN_EXCEPTIONS.pop(_control)


def _rebuild(type_name: str, message: str) -> BaseException:
    """The candidate's exception on this side: the same built-in type when safe, else :class:`CandidateError`."""
    cls = _BUILTIN_EXCEPTIONS.get(type_name)
    if cls is not None:
        try:
            return cls(message)
        except Exception:
            pass
    return CandidateError(f"{type_name}: {message}")


class _Spares:
    """Started, never-used sandboxes per set of limits, so that starting the next ones overlaps grading.

    They are made by long-lived threads of their own: bubblewrap's ``--die-with-parent`` follows the
    thread that started it, which must outlive the sandbox.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._lock = threading.Lock()
        self._pid = -1
        self._reset()
        atexit.register(self.close)

    def _reset(self) -> None:
        self._spares: dict[Limits, deque[Future]] = {}
        self._maker = ThreadPoolExecutor(max_workers=self._count, thread_name_prefix="trl_lift_sandbox")
        self._pid = os.getpid()

    def take(self, limits: Limits) -> Sandbox:
        if sandbox_mode() != "bwrap":  # the fallback warns in the caller's thread, and is not worth a spare
            return Sandbox(limits)
        with self._lock:
            if os.getpid() != self._pid:  # a forked copy of this process: the spares and threads are the parent's
                self._reset()
            queue = self._spares.setdefault(limits, deque())
            spare = queue.popleft() if queue else None
            while len(queue) < self._count:
                queue.append(self._maker.submit(Sandbox, limits))
        if spare is not None:
            try:
                box = spare.result()
            except SandboxUnavailable:  # made when the system could not: try again now, and say why if not
                box = None
            if box is not None and box.alive():
                return box
            if box is not None:
                box.close()
        return Sandbox(limits)

    def close(self) -> None:
        """Kill the spares (at exit)."""
        with self._lock:
            spares = [future for queue in self._spares.values() for future in queue]
            self._spares = {}
        for spare in spares:
            try:
                spare.result(timeout=START_TIMEOUT_S).close()
            except Exception:
                pass


_SPARES = _Spares(count=min(4, max(2, os.cpu_count() or 2)))  # starting while one sample is graded


def fresh_sandbox(limits: Limits | None = None) -> Sandbox:
    """A sandbox that has run nothing yet, usually one started in the background while the last was used.

    Raises:
        SandboxUnavailable: the operating system cannot provide the sandbox.
    """
    return _SPARES.take(limits or Limits())
