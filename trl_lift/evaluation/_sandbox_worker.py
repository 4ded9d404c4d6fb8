"""The sandbox fork-server behind :mod:`trl_lift.evaluation.code_execution` (stdlib only).

Run as ``python -I -S -B _sandbox_worker.py``. It reads one JSON batch per
stdin line, ``{"jobs": [{"program", "timeout_s", "memory_mb"}, ...],
"max_parallel": n}``, forks one child per program (a fork costs about a
millisecond, a fresh interpreter about 100), and answers one JSON line: a
result per job, in order. Each child, before running the program:

- starts a new session and works in a fresh temporary folder (cwd, HOME, TMPDIR);
- gets resource limits: address space ``memory_mb``, CPU seconds, a 16 MiB
  file-size cap, no core dumps;
- installs an audit hook (which the program cannot remove) that refuses
  sockets, sub-processes, forks, signals to other processes, ``ctypes``,
  raising resource limits, and any write, delete, rename or mode change outside
  its folder.

The parent kills the child's process group at the wall-clock timeout. A program
passes only if it runs to the end: the child then writes a per-job random
token to a pipe, so ``sys.exit(0)`` or ``os._exit(0)`` midway is a failure.
This is defence in depth for benchmark code, not a boundary against a
determined attacker: run untrusted models in a container as well.
"""

import json
import os
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time

_FILE_LIMIT = 16 * 2**20
_BLOCKED_EVENTS = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.spawn",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "ctypes.",
    "resource.setrlimit",
    "resource.prlimit",
    "pty.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "webbrowser.",
)
_PATH_EVENTS = {
    "os.remove": 1,
    "os.rmdir": 1,
    "os.mkdir": 1,
    "os.rename": 2,
    "os.replace": 2,
    "os.link": 2,
    "os.symlink": 2,
    "os.truncate": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.chflags": 1,
    "os.utime": 1,
    "shutil.rmtree": 1,
    "shutil.move": 2,
    "shutil.copyfile": 2,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _install_guard(root):
    """Audit hook confining the current process to ``root``; cannot be removed."""
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep

    def inside(path):
        if isinstance(path, int):  # a file descriptor already opened under the guard
            return True
        path = realpath(fspath(path))
        return path == root or path.startswith(root + sep)

    def hook(event, args):
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(m in mode for m in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} is not allowed")
        elif event in _PATH_EVENTS:
            for path in args[: _PATH_EVENTS[event]]:
                if path is not None and not inside(path):
                    raise PermissionError(f"sandbox: {event} on {path!r} is not allowed")

    sys.addaudithook(hook)


def _child(program, root, memory_mb, cpu_s, token, token_fd):
    """Run ``program`` in this forked child; never returns."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(os.path.join(root, "output.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.chdir(root)
    os.environ.clear()
    os.environ.update({"HOME": root, "TMPDIR": root, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    tempfile.tempdir = root
    limits = {
        resource.RLIMIT_AS: memory_mb * 2**20,
        resource.RLIMIT_CPU: cpu_s,
        resource.RLIMIT_FSIZE: _FILE_LIMIT,
        resource.RLIMIT_CORE: 0,
    }
    for limit, value in limits.items():
        resource.setrlimit(limit, (value, value))
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    _install_guard(root)
    try:
        code = compile(program, "<candidate>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        sys.stdout.flush()
        os.write(token_fd, token)
        status = 0
    except BaseException as error:  # the program's failure is the result, whatever it is
        try:
            print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
        except BaseException:
            pass
        status = 1
    os._exit(status)


def _start(job):
    root = os.path.realpath(tempfile.mkdtemp(prefix="trl_lift_sandbox_"))
    token = secrets.token_hex(16).encode()
    read_fd, write_fd = os.pipe()
    timeout = float(job["timeout_s"])
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(job["program"], root, int(job["memory_mb"]), int(timeout) + 1, token, write_fd)
    os.close(write_fd)
    return {"pid": pid, "root": root, "token": token, "fd": read_fd, "deadline": time.monotonic() + timeout}


def _finish(run, timed_out):
    if timed_out:
        for kill in (os.killpg, os.kill):
            try:
                kill(run["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        os.waitpid(run["pid"], 0)
    os.set_blocking(run["fd"], False)
    try:
        received = os.read(run["fd"], 64)
    except BlockingIOError:
        received = b""
    os.close(run["fd"])
    try:
        with open(os.path.join(run["root"], "output.txt"), "rb") as fh:
            fh.seek(max(0, os.path.getsize(fh.name) - 2000))
            output = fh.read().decode("utf-8", "replace")
    except OSError:
        output = ""
    shutil.rmtree(run["root"], ignore_errors=True)
    passed = not timed_out and received == run["token"]
    status = "passed" if passed else "timeout" if timed_out else "failed"
    return {"passed": passed, "status": status, "output": output}


def run_batch(jobs, max_parallel):
    """Run ``jobs`` with at most ``max_parallel`` children at a time; results in job order."""
    results, running, queue = [None] * len(jobs), {}, list(enumerate(jobs))
    while queue or running:
        while queue and len(running) < max_parallel:
            index, job = queue.pop(0)
            run = _start(job)
            running[run["pid"]] = (index, run)
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid in running:
            index, run = running.pop(pid)
            results[index] = _finish(run, timed_out=False)
            continue
        now = time.monotonic()
        for pid, (index, run) in list(running.items()):
            if now >= run["deadline"]:
                del running[pid]
                results[index] = _finish(run, timed_out=True)
        time.sleep(0.001)
    return results


def main():
    for line in sys.stdin:
        request = json.loads(line)
        results = run_batch(request["jobs"], max(1, int(request.get("max_parallel", 1))))
        sys.stdout.write(json.dumps(results) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
