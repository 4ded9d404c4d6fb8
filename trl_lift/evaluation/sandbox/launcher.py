"""Starting one sandboxed worker process: the bubblewrap command line, its namespaces, mounts and limits.

Everything the isolation consists of is done by the operating system:
bubblewrap creates the namespaces and the mount tree and loads the seccomp
filter of :mod:`.seccomp`; the kernel enforces the resource limits that the
worker sets on itself before it reads any candidate code. ``TRL_LIFT_SANDBOX``
chooses the mode: unset or ``bwrap`` (the default, required), or
``unsafe-fallback`` (a plain child process with resource limits and a
temporary folder, no isolation, and an ``UnsafeSandboxWarning``).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .seccomp import SeccompUnavailable, compile_filter

__all__ = ["Limits", "SandboxUnavailable", "UnsafeSandboxWarning", "WorkerProcess", "launch", "sandbox_mode"]

SANDBOX_UID = 65534  # "nobody": who a sandboxed process is, inside and (when we run as root) outside
WORKDIR = "/tmp"
START_TIMEOUT_S = 60.0
_WORKER_SOURCE = (Path(__file__).with_name("worker.py")).read_text()
_LIBRARY_DIRS = ("/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32", "/lib", "/lib32", "/lib64", "/libx32")
_FIX = (
    "install bubblewrap (`apt-get install bubblewrap`, or `bash scripts/setup.sh`) on a Linux host "
    "that allows user namespaces, or set TRL_LIFT_SANDBOX=unsafe-fallback to run model-written code "
    "WITHOUT operating-system isolation (only on a disposable machine)"
)


class SandboxUnavailable(RuntimeError):
    """The operating system cannot provide the sandbox; the message says how to fix it."""


class UnsafeSandboxWarning(RuntimeWarning):
    """Model-written code is running without operating-system isolation."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox (each process in it, unless said otherwise).

    Attributes:
        memory_mb: address space, MiB (``RLIMIT_AS``).
        cpu_s: CPU seconds (``RLIMIT_CPU``; ``SIGKILL`` a second later).
        processes: processes and threads of the sandbox's user (``RLIMIT_NPROC``).
        file_mb: largest file it may write, MiB (``RLIMIT_FSIZE``).
        open_files: open file descriptors (``RLIMIT_NOFILE``).
        tmp_mb: size of its private writable ``/tmp`` (a tmpfs), MiB.
    """

    memory_mb: int = 1024
    cpu_s: int = 11
    processes: int = 8
    file_mb: int = 16
    open_files: int = 64
    tmp_mb: int = 64

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_AS": self.memory_mb * 2**20,
            "RLIMIT_CPU": self.cpu_s,
            "RLIMIT_NPROC": self.processes,
            "RLIMIT_FSIZE": self.file_mb * 2**20,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
            "RLIMIT_MEMLOCK": 0,
            "RLIMIT_MSGQUEUE": 0,
        }


def sandbox_mode() -> str:
    """``"bwrap"`` or ``"unsafe-fallback"``, from ``TRL_LIFT_SANDBOX``.

    Raises:
        ValueError: the variable holds anything else.
    """
    mode = os.environ.get("TRL_LIFT_SANDBOX", "").strip() or "bwrap"
    if mode not in ("bwrap", "unsafe-fallback"):
        raise ValueError(f"TRL_LIFT_SANDBOX={mode!r}: use 'bwrap' (the default) or 'unsafe-fallback'")
    return mode


def _interpreter() -> str:
    """The base interpreter (not a virtual environment's): the sandbox needs only the standard library."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _mounts() -> list[str]:
    """Read-only binds of the interpreter's prefix and the system's libraries; nothing else of the host."""
    wanted = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    wanted |= {d for d in _LIBRARY_DIRS if os.path.isdir(d) and not os.path.islink(d)}
    binds: list[str] = []
    for path in sorted(wanted, key=len):  # parents first; a path inside a bound one needs no bind
        if not any(path == b or path.startswith(b.rstrip("/") + "/") for b in binds):
            binds.append(path)
    executable = _interpreter()
    if not any(executable.startswith(b.rstrip("/") + "/") for b in binds):
        binds.append(executable)
    # bubblewrap would create the parents of a bind with the host's modes (/root: 0700), which the
    # unprivileged worker could not cross; only the bound paths are inside them
    parents = sorted({str(p) for b in binds for p in Path(b).parents if str(p) != "/"}, key=len)
    args = [arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)]
    args += [arg for path in binds for arg in ("--ro-bind", path, path)]
    for path in _LIBRARY_DIRS:  # merged-/usr systems: /lib -> usr/lib
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
    return args + ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]


@dataclass
class WorkerProcess:
    """A started worker: the pipes to it and what to kill.

    Attributes:
        requests: write end of its request pipe.
        replies: read end of its reply pipe.
        output: read end of its stdout and stderr.
        process: bubblewrap (or, in the fallback, the worker itself).
        inner_pid: the worker's pid as seen from here (init of its PID namespace under bubblewrap).
        mode: ``"bwrap"`` or ``"unsafe-fallback"``.
        workdir: the fallback's temporary folder on the host (``None`` under bubblewrap).
    """

    requests: int
    replies: int
    output: int
    process: subprocess.Popen
    inner_pid: int
    mode: str
    workdir: str | None = None

    def kill(self) -> int | None:
        """Kill the worker and everything it started; returns bubblewrap's (or the worker's) exit status."""
        if self.mode == "bwrap":
            _signal(os.kill, self.inner_pid)  # init of the PID namespace: the kernel kills the rest
        else:
            _signal(os.killpg, self.process.pid)
        _signal(os.kill, self.process.pid)
        status = self.process.wait()
        for fd in (self.requests, self.replies, self.output):
            _close(fd)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return status


def _signal(kill, pid: int) -> None:
    try:
        kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _read_all(fd: int, deadline: float) -> bytes:
    chunks = []
    while time.monotonic() < deadline:
        if select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    raise SandboxUnavailable(f"bubblewrap did not report its sandbox within {START_TIMEOUT_S:.0f} s")


def _bwrap_command(as_root: bool, fds: dict[str, int], limits: Limits, config: str) -> list[str]:
    """bubblewrap's arguments: every namespace, only read-only system files, a private ``/tmp``, the filter."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (`bwrap`) is not installed: {_FIX}")
    command = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--as-pid-1"]
    command += ["--info-fd", str(fds["info"]), "--seccomp", str(fds["seccomp"])]
    if as_root:  # we write the uid map ourselves, so that the sandbox is not root outside
        command += ["--userns-block-fd", str(fds["block"]), "--cap-drop", "ALL"]
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # for the worker to leave uid 0
    else:
        command += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    command += _mounts()
    command += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.tmp_mb * 2**20)]
    command += ["--tmpfs", WORKDIR, "--remount-ro", "/", "--remount-ro", "/dev", "--chdir", WORKDIR]
    command += ["--hostname", "sandbox", "--", _interpreter(), "-I", "-S", "-B", "-X", "utf8"]
    return command + ["-c", _WORKER_SOURCE, config]


def _map_ids(pid: int) -> None:
    """Map the namespace's root to ours only for bubblewrap's set-up; the worker then becomes ``SANDBOX_UID``."""
    mapping = f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n"
    try:
        for name, text in (("uid_map", mapping), ("setgroups", "deny"), ("gid_map", mapping)):
            with open(f"/proc/{pid}/{name}", "w") as fh:
                fh.write(text)
    except OSError as error:  # e.g. a root without CAP_SETUID over its own user namespace
        raise SandboxUnavailable(f"cannot map the sandbox's user ids ({error}): {_FIX}") from None


def launch(limits: Limits) -> WorkerProcess:
    """Start a worker in a fresh sandbox.

    Args:
        limits: its resource limits.

    Returns:
        The running worker; its first reply line (``{"ready": ...}``) is still unread.

    Raises:
        SandboxUnavailable: bubblewrap, user namespaces or libseccomp are missing (the message says the fix).
    """
    mode = sandbox_mode()
    as_root = mode == "bwrap" and os.geteuid() == 0
    program = b""
    if mode == "bwrap":
        try:
            program = compile_filter()
        except SeccompUnavailable as error:
            raise SandboxUnavailable(f"{error}; without it: {_FIX}") from None
    parent: dict[str, int] = {}
    child: dict[str, int] = {}
    try:
        child["request"], parent["request"] = os.pipe()
        parent["reply"], child["reply"] = os.pipe()
        parent["output"], child["output"] = os.pipe()
        config = {"request_fd": child["request"], "reply_fd": child["reply"], "limits": limits.rlimits()}
        if mode == "unsafe-fallback":
            return _launch_fallback(config, child, parent)
        parent["info"], child["info"] = os.pipe()
        child["block"], parent["block"] = os.pipe()
        child["seccomp"] = os.memfd_create("trl_lift_seccomp")
        os.write(child["seccomp"], program)
        os.lseek(child["seccomp"], 0, os.SEEK_SET)
        config.update(uid=SANDBOX_UID if as_root else None, workdir=WORKDIR)
        process = subprocess.Popen(
            _bwrap_command(as_root, child, limits, json.dumps(config)),
            pass_fds=[fd for name, fd in child.items() if name != "output" and (as_root or name != "block")],
            stdin=subprocess.DEVNULL,
            stdout=child["output"],
            stderr=child["output"],
            env={},
            **({"extra_groups": []} if as_root else {}),
        )
    except BaseException:
        for fd in parent.values():
            _close(fd)
        raise
    finally:
        for fd in child.values():  # each exactly once: another thread may reuse a closed number
            _close(fd)
    try:
        info = _read_all(parent["info"], time.monotonic() + START_TIMEOUT_S)
        inner_pid = json.loads(info)["child-pid"] if info else None
        if inner_pid is None:
            raise SandboxUnavailable(f"bubblewrap failed: {_drain(parent['output'])} — {_FIX}")
        if as_root:
            _map_ids(inner_pid)
            os.write(parent["block"], b"1")
    except BaseException:
        process.kill()
        process.wait()
        for fd in parent.values():
            _close(fd)
        raise
    _close(parent.pop("info"))
    _close(parent.pop("block"))
    return WorkerProcess(parent["request"], parent["reply"], parent["output"], process, inner_pid, mode)


def _drain(fd: int) -> str:
    """Whatever bubblewrap printed before it gave up."""
    if select.select([fd], [], [], 1.0)[0]:
        return os.read(fd, 4000).decode("utf-8", "replace").strip()
    return "(no message)"


def _launch_fallback(config: dict, child: dict[str, int], parent: dict[str, int]) -> WorkerProcess:
    warnings.warn(
        "TRL_LIFT_SANDBOX=unsafe-fallback: model-written code runs WITHOUT operating-system isolation "
        "(no namespaces, no seccomp: it can read and write your files, reach the network and signal your "
        "processes); only resource limits and a temporary working folder apply. The verdict is still made "
        "outside the candidate's process.",
        UnsafeSandboxWarning,
        stacklevel=5,
    )
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="trl_lift_unsafe_sandbox_"))
    config.update(uid=None, workdir=workdir)
    process = subprocess.Popen(
        [_interpreter(), "-I", "-S", "-B", "-X", "utf8", "-c", _WORKER_SOURCE, json.dumps(config)],
        pass_fds=[child["request"], child["reply"]],
        stdin=subprocess.DEVNULL,
        stdout=child["output"],
        stderr=child["output"],
        cwd=workdir,
        env={},
        start_new_session=True,
    )
    return WorkerProcess(
        parent["request"], parent["reply"], parent["output"], process, process.pid, "unsafe-fallback", workdir
    )
