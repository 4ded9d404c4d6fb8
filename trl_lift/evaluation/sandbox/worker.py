"""The process inside the sandbox, and the plain-data codec both sides of its boundary share (stdlib only).

:mod:`.launcher` starts it as ``python -I -S -B -X utf8 -c <this file's source>
<config JSON>`` inside bubblewrap; the judge imports this module for
:func:`encode` and :func:`decode` only. Nothing this process says is trusted:
it is where the candidate's code runs, and the candidate can rewrite it.

Start-up, before any candidate code: drop to the unprivileged uid (when
started as the namespace's root), set the resource limits, clear the
environment, move into the private working folder, then write
``{"ready": ...}``. After that, one JSON request per line on the request pipe
and one reply per line on the reply pipe (their fds are in the config):

- ``{"op": "exec", "source": str}`` runs code in the candidate's namespace:
  ``{"ok": true}`` or ``{"error": {"type", "message"}}``;
- ``{"op": "call", "name": str, "args": [...], "kwargs": {...}}`` calls a name
  of that namespace: ``{"value": ...}``, ``{"error": ...}`` or
  ``{"unencodable": reason}`` when the result is not plain data.

Plain data is ``None``, ``bool``, ``int``, ``str`` as themselves, lists as
JSON arrays, and one-key tagged objects for the rest: ``{"f": float.hex()}``,
``{"i": hex}`` (large ints), ``{"c": [re, im]}``, ``{"t": [...]}`` (tuple),
``{"s": [...]}``, ``{"fs": [...]}``, ``{"d": [[key, value], ...]}``,
``{"b": base64}``, ``{"ba": base64}`` (bytearray) and ``{"g": name}``, a name
of the candidate's namespace passed by reference (only ever sent as an
argument). Subclasses of these types cross as their base value (a
``Counter`` as a ``dict``, a named tuple as a ``tuple``); anything else, a
generator, a function, an instance of the candidate's class, does not cross.
"""

import binascii
import builtins
import json
import os
import resource
import sys

MAX_DEPTH = 100
PLAIN_TYPES = "None, bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset"
_SAFE_INT = 2**53
_BASES = (int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset)


class Unencodable(TypeError):
    """A value that is not plain data."""


def encode(value, ref=None, depth=0):
    """``value`` as JSON-compatible data; ``ref(value)`` may name a value to pass by reference.

    Raises:
        Unencodable: ``value`` holds something that is not plain data, or nests deeper than ``MAX_DEPTH``.
    """
    if depth > MAX_DEPTH:
        raise Unencodable(f"the value nests deeper than {MAX_DEPTH} levels (or contains itself)")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_SAFE_INT < value < _SAFE_INT else {"i": hex(value)}  # no int-to-str digit limit
    if kind is float:
        return {"f": value.hex()}
    if kind is list:
        return [encode(item, ref, depth + 1) for item in value]
    if kind is tuple or kind is set or kind is frozenset:
        tag = {tuple: "t", set: "s", frozenset: "fs"}[kind]
        return {tag: [encode(item, ref, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, ref, depth + 1), encode(v, ref, depth + 1)] for k, v in value.items()]}
    if kind is complex:
        return {"c": [value.real.hex(), value.imag.hex()]}
    if kind is bytes or kind is bytearray:
        return {"b" if kind is bytes else "ba": binascii.b2a_base64(value, newline=False).decode("ascii")}
    name = ref(value) if ref is not None else None
    if name is not None:
        return {"g": name}
    for base in _BASES:
        if isinstance(value, base):
            return encode(base(value), ref, depth + 1)
    raise Unencodable(f"a {kind.__module__}.{kind.__qualname__} object is not plain data ({PLAIN_TYPES})")


def decode(data, deref=None, depth=0):
    """The value that :func:`encode` gave ``data`` for; ``deref(name)`` resolves references.

    Raises:
        ValueError: ``data`` is not something :func:`encode` produces (or a reference where none is allowed).
    """
    if depth > MAX_DEPTH:
        raise ValueError(f"plain data nests deeper than {MAX_DEPTH} levels")
    kind = type(data)
    if data is None or kind is bool or kind is str or kind is int:
        return data
    if kind is list:
        return [decode(item, deref, depth + 1) for item in data]
    if kind is dict and len(data) == 1:
        ((tag, body),) = data.items()
        if tag == "f" and type(body) is str:
            return float.fromhex(body)
        if tag == "i" and type(body) is str:
            return int(body, 16)
        if tag in ("t", "s", "fs") and type(body) is list:
            items = [decode(item, deref, depth + 1) for item in body]
            return {"t": tuple, "s": set, "fs": frozenset}[tag](items)
        if tag == "d" and type(body) is list and all(type(p) is list and len(p) == 2 for p in body):
            return {decode(k, deref, depth + 1): decode(v, deref, depth + 1) for k, v in body}
        if tag == "c" and type(body) is list and len(body) == 2 and all(type(p) is str for p in body):
            return complex(float.fromhex(body[0]), float.fromhex(body[1]))
        if tag in ("b", "ba") and type(body) is str:
            raw = binascii.a2b_base64(body.encode("ascii"))
            return raw if tag == "b" else bytearray(raw)
        if tag == "g" and type(body) is str and deref is not None:
            return deref(body)
    raise ValueError(f"not plain data: {str(data)[:80]}")


def _error(error):
    try:
        message = str(error)[:2000]
    except BaseException:  # the candidate's exception may refuse to print
        message = "<unprintable>"
    return {"error": {"type": type(error).__name__, "message": message}}


def _handle(request, namespace):
    if request.get("op") == "exec":
        exec(compile(request["source"], "<candidate>", "exec"), namespace)
        return {"ok": True}
    name = request["name"]
    if name not in namespace:
        raise NameError(f"name {name!r} is not defined")

    def deref(ref):
        if ref not in namespace:
            raise NameError(f"name {ref!r} is not defined")
        return namespace[ref]

    args = [decode(a, deref) for a in request["args"]]
    kwargs = {k: decode(v, deref) for k, v in request["kwargs"].items()}
    result = namespace[name](*args, **kwargs)
    try:
        return {"value": encode(result)}
    except Unencodable as error:
        return {"unencodable": str(error)}


def _write(fd, data):
    payload = memoryview((json.dumps(data, separators=(",", ":")) + "\n").encode())
    while payload:
        payload = payload[os.write(fd, payload) :]


def _start(config):
    """Everything done before the candidate's first line runs."""
    uid = config.get("uid")
    if uid is not None and os.getuid() == 0:  # bubblewrap as root leaves us root of the new namespace
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # leaving uid 0 clears every capability
    limits = config["limits"]
    for name, value in limits.items():
        soft = hard = int(value)
        if name == "RLIMIT_CPU":
            hard = soft + 1  # SIGXCPU at the soft limit, SIGKILL a second later
        resource.setrlimit(getattr(resource, name), (soft, hard))
    workdir = config["workdir"]
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    sys.stdin = open(os.devnull)
    status = {"uid": os.getuid(), "pid": os.getpid()}
    if os.path.exists("/proc/self/status"):
        with open("/proc/self/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        status.update({k: fields.get(k, "").strip() for k in ("CapEff", "CapPrm", "NoNewPrivs", "Seccomp")})
    return status


def serve(config):
    """Answer the requests read from ``config["request_fd"]`` until it closes."""
    replies = config["reply_fd"]
    _write(replies, {"ready": _start(config)})
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    requests = os.fdopen(config["request_fd"], "rb")
    for line in requests:
        try:
            reply = _handle(json.loads(line), namespace)
        except BaseException as error:  # the candidate's failure, whatever it is, is the answer
            reply = _error(error)
            try:
                import traceback  # only on failure: it costs start-up time

                traceback.print_exc()
            except BaseException:
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        _write(replies, reply)


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
