"""OS-level isolation for model-written code: bubblewrap namespaces, a seccomp filter, resource limits.

(Guarantees documented below; to be completed.)
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
