"""The sandbox's seccomp filter, compiled to BPF by the system's libseccomp.

bubblewrap loads it (``--seccomp FD``) as the last step before it starts the
worker, so it binds the worker, the candidate's code and every process they
start. It is a deny-list over a default of *allow*: the namespaces already
confine what a sandboxed process can reach; the filter removes the kernel
interfaces that a benchmark program never needs and that an escape would
start from. Denied calls fail with ``EPERM`` (``clone3``: ``ENOSYS``, so the C
library falls back to ``clone``, whose flags a filter can inspect; sockets
other than ``AF_UNIX``: ``EAFNOSUPPORT``). System calls of another ABI
(32-bit ``int 0x80``, x32) kill the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

__all__ = ["DENIED_SYSCALLS", "SeccompUnavailable", "compile_filter"]

DENIED_SYSCALLS = (
    # new namespaces and mounts: the sandbox's walls are made of these
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # reading or steering other processes, kernel tracing and programmable kernel interfaces
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "perf_event_open",
    "bpf", "userfaultfd", "lookup_dcookie", "io_uring_setup", "io_uring_enter", "io_uring_register",
    # the kernel keyring is not namespaced
    "keyctl", "add_key", "request_key",
    # administration (these need capabilities the sandbox lacks; denied so no kernel path is reached)
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "syslog", "acct", "quotactl", "quotactl_fd", "nfsservctl", "uselib",
    "vhangup", "iopl", "ioperm", "modify_ldt", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "sethostname", "setdomainname", "name_to_handle_at", "open_by_handle_at",
    "fanotify_init", "mbind", "migrate_pages", "move_pages", "set_mempolicy",
)  # fmt: skip
_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_TERMINAL_IOCTLS = (0x5412, 0x541C)  # TIOCSTI (type into a terminal), TIOCLINUX
_AF_UNIX = 1

# libseccomp's ABI (seccomp.h): actions, comparison operators, filter attributes.
_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_PROCESS = 0x80000000
_CMP_NE, _CMP_MASKED_EQ = 1, 7
_ATTR_ACT_BADARCH = 2


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


class SeccompUnavailable(RuntimeError):
    """The system's libseccomp cannot be loaded or refuses the filter."""


def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as error:
        raise SeccompUnavailable(
            f"libseccomp is not installed ({error}); install it with `apt-get install libseccomp2` "
            "(or run scripts/setup.sh)"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
    ]  # fmt: skip
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.lru_cache(maxsize=1)
def compile_filter() -> bytes:
    """The filter as a BPF program (``struct sock_filter`` array) for ``bwrap --seccomp``.

    Returns:
        The program's bytes, compiled once per process.

    Raises:
        SeccompUnavailable: libseccomp is missing or rejects a rule.
    """
    lib = _library()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:

        def rule(action: int, name: str, *conditions: tuple[int, int, int, int]) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == -1:  # unknown to this libseccomp: the kernel cannot have it either
                return
            array = (_ArgCmp * max(1, len(conditions)))(*[_ArgCmp(*c) for c in conditions])
            code = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
            if code < 0:
                raise SeccompUnavailable(f"libseccomp rejected the rule for {name}: {os.strerror(-code)}")

        if lib.seccomp_attr_set(ctx, _ATTR_ACT_BADARCH, _ACT_KILL_PROCESS) < 0:
            raise SeccompUnavailable("libseccomp cannot set the action for foreign system-call ABIs")
        eperm = _errno_action(errno.EPERM)
        for name in DENIED_SYSCALLS:
            rule(eperm, name)
        for flag in _NAMESPACE_FLAGS:  # clone's first argument holds its flags on every Linux ABI we run on
            rule(eperm, "clone", (0, _CMP_MASKED_EQ, flag, flag))
        rule(_errno_action(errno.ENOSYS), "clone3")  # its flags sit in memory a filter cannot read
        for request in _TERMINAL_IOCTLS:
            rule(eperm, "ioctl", (1, _CMP_MASKED_EQ, 0xFFFFFFFF, request))
        rule(_errno_action(errno.EAFNOSUPPORT), "socket", (0, _CMP_NE, _AF_UNIX, 0))
        fd = os.memfd_create("trl_lift_seccomp")  # a pipe could fill up and block the export
        try:
            if lib.seccomp_export_bpf(ctx, fd) < 0:
                raise SeccompUnavailable("libseccomp could not export the filter")
            return os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
