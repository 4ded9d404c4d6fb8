"""Choosing the sandbox: bubblewrap or a clear error, and the explicit, loudly warned unsafe fallback."""

import os

import pytest

from trl_lift.evaluation.code_execution import CodeTest, run_tests
from trl_lift.evaluation.sandbox import Sandbox, SandboxUnavailable, UnsafeSandboxWarning, sandbox_mode


def test_missing_bubblewrap_is_an_error_that_names_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    monkeypatch.delenv("TRL_LIFT_SANDBOX", raising=False)
    with pytest.raises(SandboxUnavailable) as error:
        Sandbox()  # (not run_tests: a spare started earlier, with bubblewrap, would still serve it)
    message = str(error.value)
    assert "bubblewrap" in message and "apt-get install bubblewrap" in message and "scripts/setup.sh" in message
    assert "TRL_LIFT_SANDBOX=unsafe-fallback" in message and "WITHOUT operating-system isolation" in message


def test_an_unknown_mode_is_an_error(monkeypatch):
    monkeypatch.setenv("TRL_LIFT_SANDBOX", "none")
    with pytest.raises(ValueError, match="TRL_LIFT_SANDBOX='none': use 'bwrap'"):
        sandbox_mode()


def test_the_fallback_warns_keeps_the_verdict_outside_and_cleans_up(monkeypatch):
    monkeypatch.setenv("TRL_LIFT_SANDBOX", "unsafe-fallback")
    with pytest.warns(UnsafeSandboxWarning, match="WITHOUT operating-system isolation"):
        assert run_tests(CodeTest("def f(x):\n    return x + 1\n", "assert f(1) == 2\n")).passed
    forged = "class Yes:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Yes()\n"
    with pytest.warns(UnsafeSandboxWarning):
        assert not run_tests(CodeTest(forged, "assert f(1) == 2\n")).passed  # still judged on plain data here
    with pytest.warns(UnsafeSandboxWarning):
        box = Sandbox()
    folder = box._process.workdir
    assert box.mode == "unsafe-fallback" and os.path.isdir(folder)
    box.close()
    assert not os.path.exists(folder)
