"""Grading model-written code with a benchmark's own tests, the verdict made outside the sandbox.

HumanEval and MBPP (the LIFT paper's appendix) are graded by running the
task's tests against the model's code. Here the two never share a process:

- the candidate's code (untrusted) runs in a fresh :class:`~.sandbox.Sandbox`
  per sample, isolated by the operating system (see :mod:`.sandbox`);
- the dataset's test code (trusted: HumanEval's ``check``, MBPP's asserts)
  runs in *this* process, where each name it takes from the candidate is a
  proxy: calling it sends the arguments into the sandbox as plain data and
  rebuilds the result here from plain data, as built-in types.

So every comparison an ``assert`` makes is between built-in values in a
process the candidate never ran in: an object whose ``__eq__`` always returns
True cannot cross (it arrives as its plain value or not at all), and a
printed "passed", an exit status, a patched ``AssertionError`` or a stolen
token mean nothing, because the sample passes exactly when the trusted tests
run to their end here and the sandbox never failed (a timeout, a crash or a
result that is not plain data fails the sample even if the tests caught the
exception). No ``evaluate.load``, nothing fetched. lm-eval still asks for
``--confirm_run_unsafe_code`` for tasks that use this.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import math
import random
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from .sandbox import Limits, Sandbox, fresh_sandbox
from .sandbox.worker import PLAIN_TYPES, Unencodable

__all__ = ["CodeTest", "ExecutionResult", "Remote", "run_tests", "run_tests_many"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
_OUTPUT_CHARS = 2000
_RANDOM_LOCK = threading.Lock()


@dataclass(frozen=True)
class CodeTest:
    """One sample to grade.

    Attributes:
        candidate: the untrusted code (the model's completion, after any prompt it completes); runs in the
            sandbox.
        tests: the dataset's test code; runs in this process. It passes when it runs to its end.
        judge_setup: dataset code run in this process before ``tests`` (HumanEval: the prompt, for its
            helper functions, and the ``test`` field that defines ``check``).
        sandbox_setup: dataset code run in the sandbox after the candidate (MBPP's ``test_setup_code``,
            which builds objects of the candidate's classes); what it defines reaches the tests by reference.
        reference: the dataset's correct solution, never run: the names it (or ``sandbox_setup``) defines at
            its top level are the ones the tests take from the candidate, builtins included (MBPP 126 asks
            for a function called ``sum``). Without it: every name the tests read that is not a builtin.
        names: the names the tests take from the candidate, overriding ``reference``. Names the tests read
            that neither they, ``judge_setup`` nor the candidate provide are standard-library modules when
            they are one (imported here), else unbound.
    """

    candidate: str
    tests: str
    judge_setup: str = ""
    sandbox_setup: str = ""
    reference: str = ""
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one sample.

    Attributes:
        passed: the trusted tests ran to their end and the sandbox never failed.
        status: ``"passed"``, ``"failed"`` or ``"timeout"``.
        reason: why it did not pass (the exception the tests raised, or the sandbox's failure); ``""`` if it did.
        output: the last 2,000 characters the sandboxed code printed.
    """

    passed: bool
    status: str
    reason: str
    output: str


class Remote:
    """A name of the candidate's code as the trusted tests see it: calling it is a call into the sandbox.

    Nothing else can be done with it here: it has no attributes, compares equal only to itself and, passed
    as an argument to another call, stands for the same sandboxed object.
    """

    __slots__ = ("_box", "_name", "_deadline")

    def __init__(self, box: Sandbox, name: str, deadline) -> None:
        self._box, self._name, self._deadline = box, name, deadline

    def __call__(self, *args, **kwargs):
        box = self._box

        def ref(value):
            return value._name if isinstance(value, Remote) and value._box is box else None

        try:
            return box.call(self._name, args, kwargs, deadline=self._deadline(), ref=ref)
        except Unencodable as error:
            raise TypeError(
                f"the tests pass a value that is not plain data to {self._name}(): {error}; only {PLAIN_TYPES} "
                "(and the candidate's own names) cross into the sandbox"
            ) from None

    def __repr__(self) -> str:
        return f"<sandboxed {self._name}>"


def _top_level_names(source: str) -> set[str]:
    """Functions, classes and variables a module defines (not its imports)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _names_from_candidate(test: CodeTest, defined: dict) -> tuple[tuple[str, ...], set[str]]:
    """The names the tests read but do not define: the candidate's, and standard-library modules (ours)."""
    loaded, stored = set(), set()
    for node in ast.walk(ast.parse(test.tests)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else stored).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            stored.update((a.asname or a.name).split(".")[0] for a in node.names)
    free = loaded - stored - set(defined)
    if test.reference:  # the dataset's solution says which names are the candidate's, even `sum`
        names = free & (_top_level_names(test.reference) | _top_level_names(test.sandbox_setup))
    else:  # never a builtin: a candidate's `set` would decide both sides of `set(f(x)) == set(y)`
        names = free - set(dir(builtins)) - set(sys.stdlib_module_names)
    modules = (free - names) & set(sys.stdlib_module_names)  # `math.isclose(...)` means the real math
    return tuple(sorted(names)), modules


@contextmanager
def _own_random(sources: Sequence[str]):
    """Seed ``random`` for tests that use it (reproducible verdicts) and give the caller its state back."""
    if not any("random" in s for s in sources):
        yield
        return
    with _RANDOM_LOCK:
        state = random.getstate()
        random.seed(0)
        try:
            yield
        finally:
            random.setstate(state)


def run_tests(
    test: CodeTest,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    call_timeout_s: float | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> ExecutionResult:
    """Grade one sample: its code in a fresh sandbox, the dataset's tests here.

    Args:
        test: the candidate's code and the dataset's tests.
        timeout_s: wall-clock limit for the whole sample (the candidate's top level and every call), seconds;
            each process inside also gets ``ceil(timeout_s) + 1`` CPU seconds.
        call_timeout_s: wall-clock limit per call into the sandbox; ``None``: only ``timeout_s``.
        memory_mb: address-space limit per sandboxed process, MiB.

    Returns:
        The verdict, with the reason and the sandbox's output.

    Raises:
        SyntaxError: the dataset's test code (``tests`` or ``judge_setup``) does not compile; any exception
            ``judge_setup`` raises is raised too (it is the dataset's code).
        SandboxUnavailable: the operating system cannot provide the sandbox (the message names the fix).
    """
    tests = compile(test.tests, "<tests>", "exec")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(test.judge_setup, "<judge setup>", "exec"), namespace)  # dataset code: its errors are the caller's
    names, modules = (test.names, set()) if test.names is not None else _names_from_candidate(test, namespace)
    namespace.update({name: importlib.import_module(name) for name in modules})
    limits = Limits(memory_mb=memory_mb, cpu_s=math.ceil(timeout_s) + 1)
    with fresh_sandbox(limits) as box:
        deadline = time.monotonic() + timeout_s

        def call_deadline() -> float:
            return deadline if call_timeout_s is None else min(deadline, time.monotonic() + call_timeout_s)

        reason = ""
        try:
            box.execute(test.candidate, deadline=call_deadline())
            if test.sandbox_setup:
                box.execute(test.sandbox_setup, deadline=call_deadline())
            namespace.update({name: Remote(box, name, call_deadline) for name in names})
            with _own_random([test.tests, test.judge_setup]):
                exec(tests, namespace)
        except (Exception, SystemExit, GeneratorExit) as error:  # the tests failed; KeyboardInterrupt is the user's
            reason = f"{type(error).__name__}: {error}"
        if box.failure is not None:  # the root cause, even when the tests swallowed the exception
            reason = box.failure
        timed_out = box.timed_out
    output = box.output[-_OUTPUT_CHARS:]
    if not reason:
        return ExecutionResult(True, "passed", "", output)
    return ExecutionResult(False, "timeout" if timed_out else "failed", reason[:_OUTPUT_CHARS], output)


def run_tests_many(tests: Sequence[CodeTest], *, max_parallel: int = 1, **options) -> list[ExecutionResult]:
    """Grade many samples, ``max_parallel`` sandboxes at a time; results in order. Options as :func:`run_tests`."""
    if max_parallel <= 1 or len(tests) <= 1:
        return [run_tests(t, **options) for t in tests]
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        return list(pool.map(lambda t: run_tests(t, **options), tests))
