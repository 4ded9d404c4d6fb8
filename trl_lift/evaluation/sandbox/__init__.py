"""OS isolation for model-written code: one bubblewrap sandbox per sample, seccomp, resource limits.

:mod:`trl_lift.evaluation.code_execution` runs each HumanEval / MBPP sample's
code in a fresh :class:`Sandbox` and the dataset's tests in the trusted
process. Modules: :mod:`.launcher` (the bubblewrap command line, mounts,
limits, the fallback), :mod:`.seccomp` (the filter, compiled by libseccomp),
:mod:`.worker` (the process inside, and the plain-data codec),
:mod:`.session` (the trusted side of one sandbox).

What it guarantees (mode ``bwrap``, the default; Linux with bubblewrap >= 0.8,
unprivileged user namespaces and libseccomp):

- **Namespaces.** Every sample gets new user, PID, mount, network, IPC, UTS
  (and, where the kernel allows, cgroup) namespaces, made by bubblewrap with
  ``--unshare-all --unshare-user --die-with-parent --new-session --as-pid-1``.
- **Identity.** The worker and everything it starts run as uid/gid 65534
  with no capabilities (effective, permitted, ambient: none), ``no_new_privs``
  and the seccomp filter. Run as root, the evaluator writes the uid map itself
  so that 65534 is 65534 *outside* too (``0 -> 0`` is mapped only for
  bubblewrap's own set-up; the worker leaves uid 0 before it reads any
  candidate code); run as a user, the sandbox is that user outside. The worker
  reports its uid, capabilities, ``no_new_privs`` and seccomp mode before any
  candidate code runs, and the sandbox is refused unless they are as above.
- **Files.** A new root (tmpfs, remounted read-only) holding, read-only, only
  the interpreter's prefix (``sys.base_prefix``; the virtual environment is
  not needed: the worker is ``python -I -S`` and uses the standard library),
  the system library folders (``/usr/lib*``, ``/lib*``), ``/etc/ld.so.cache``,
  a minimal read-only ``/dev`` and the ``/proc`` of its own PID namespace.
  Writable: a private 64 MiB tmpfs at ``/tmp`` (its working folder, ``HOME``
  and ``TMPDIR``), gone with the sandbox. Absent: the user's home and keys,
  ``/root`` (but the path down to the interpreter, when it lives there), the
  project's checkout, caches, the rest of ``/etc``, ``/var``, ``/run`` and
  every socket on them. The
  environment is empty but ``HOME``, ``TMPDIR``, ``PATH``, ``LANG``.
- **Network.** Only the loopback of its own network namespace; sockets other
  than ``AF_UNIX`` are refused by the filter; the host's loopback, its
  file-system and abstract Unix sockets cannot be reached.
- **Processes and signals.** The worker is PID 1 of its own PID namespace:
  it sees and can signal only its own processes. When the sample ends (or its
  time is up) the worker is killed, and with it, by the kernel, every process
  in the namespace, detached ones included; if the evaluator dies, bubblewrap
  kills the sandbox too (``--die-with-parent``).
- **System calls** (:mod:`.seccomp`): new namespaces and mounts, ``ptrace``
  and cross-process memory access, ``bpf``, ``perf_event_open``,
  ``userfaultfd``, ``io_uring``, the keyring, module and ``kexec`` loading,
  ``reboot``, clock setting, terminal injection (``TIOCSTI``) and the other
  calls listed there are denied; foreign system-call ABIs kill the process.
- **Limits**, each process (:class:`Limits`): 1 GiB of address space, CPU
  seconds ``ceil(timeout) + 1``, 8 processes and threads of its user, files
  up to 16 MiB, 64 open files, no core dumps, no locked memory, no message
  queues; a wall-clock limit per sample (and optionally per call) after which
  the whole sandbox is killed; replies of at most 16 MiB; of its output only
  the last 8 KiB are kept.
- **Verdict.** Nothing the sandbox says is trusted: the tests run in the
  evaluator, on built-in values rebuilt from plain data (see
  :mod:`trl_lift.evaluation.code_execution`).

What it does not guarantee:

- It shares the host's kernel: a kernel vulnerability reachable through an
  allowed system call can break out (the filter is a deny-list, not an
  allow-list). For code you believe hostile rather than merely wrong, add a
  VM or gVisor around the evaluation.
- Memory and CPU are limited per process, not per sandbox (bubblewrap sets no
  cgroup): at most 8 x 1 GiB of address space plus the 64 MiB ``/tmp``, and
  8 processes' CPU, until the wall clock runs out. Machines running many
  samples at once should size ``max_parallel`` for that.
- Files it can see it can read: the interpreter's installation (including its
  own ``site-packages``) and the system libraries.
- Timing and other side channels, and the inherited but inert capability
  bits (``CapInh``/``CapBnd`` keep ``setuid``/``setgid``, which
  ``no_new_privs`` and the absence of file capabilities make unusable).
- ``TRL_LIFT_SANDBOX=unsafe-fallback`` (explicit opt-in, for machines without
  user namespaces): a plain child process with the same resource limits in a
  temporary folder, as the evaluator's own user, with **no isolation**: it can
  read and write the user's files, reach the network and signal the user's
  processes; each start issues an :class:`UnsafeSandboxWarning`. The verdict
  stays outside the candidate's process there too. Without bubblewrap and
  without that opt-in, grading stops with :class:`SandboxUnavailable`, whose
  message names the fix; it never runs unisolated silently.
"""

from .launcher import Limits, SandboxUnavailable, UnsafeSandboxWarning, sandbox_mode
from .session import CandidateError, Sandbox, SandboxError, SandboxTimeout, fresh_sandbox

__all__ = [
    "CandidateError",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxTimeout",
    "SandboxUnavailable",
    "UnsafeSandboxWarning",
    "fresh_sandbox",
    "sandbox_mode",
]
