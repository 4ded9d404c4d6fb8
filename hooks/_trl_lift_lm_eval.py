"""Start-up hook that makes the stock ``lm_eval`` command find trl-lift's model ``lift_dlm``.

lm-eval 0.4.13 discovers no model plugins: it registers its own models when ``lm_eval.models`` is
imported. ``trl_lift_lm_eval.pth`` (installed next to this module in site-packages) imports this module
at interpreter start-up; it only adds a meta-path finder that waits for ``lm_eval.models`` and, right
after that module runs, calls :func:`trl_lift.evaluation.lm_eval_registry.register` (a lazy
``"module:Class"`` entry: trl-lift's model code is imported only when the model is used). It imports
nothing beyond ``sys`` at start-up, and never raises. The project's tasks need no hook: the wheel
installs them in lm-eval's own task folder (setup.py); the hook only says so when that folder belongs
to another lm-eval than the one running.
"""

import sys

_WATCHED = "lm_eval.models"


def register() -> bool:
    """Register ``lift_dlm`` through trl-lift's one registration path. Returns whether it is registered."""
    try:
        from trl_lift.evaluation.lm_eval_registry import register as register_lift_dlm

        registered = register_lift_dlm()
        _warn_if_tasks_unreachable()
        return registered
    except Exception:  # trl_lift missing or broken: leave lm-eval alone
        return False


def _warn_if_tasks_unreachable() -> None:
    """Say so when trl-lift's tasks were installed into an ``lm_eval`` folder other than the imported lm-eval's.

    The wheel puts them in ``lm_eval/tasks/trl_lift`` of its own site folder (setup.py); with lm-eval
    installed elsewhere (``pip install --user``, a venv over another environment's packages) lm-eval does
    not see them.
    """
    import os

    import lm_eval

    if os.path.isdir(os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "trl_lift")):
        return
    for entry in sys.path:
        stray = os.path.join(entry, "lm_eval", "tasks", "trl_lift")
        if entry and os.path.isdir(stray):
            print(f"trl-lift: the lift_* tasks were installed at {stray}, beside another lm-eval than the one in use "
                  f"({os.path.dirname(lm_eval.__file__)}), so `--tasks lift_...` cannot find them: install trl-lift "
                  "where lm-eval is, or use `trl-lift eval`, or add `--include_path \"$(trl-lift tasks-dir)\"`.",
                  file=sys.stderr)
            return


class _LmEvalModelsFinder:
    """Finds nothing itself; when ``lm_eval.models`` is imported, wraps its loader to call :func:`register`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _WATCHED:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            register()

        loader.exec_module = exec_and_register
        return spec


def install() -> None:
    """Register now if lm-eval's models are loaded, else watch for them (called from the ``.pth``)."""
    if _WATCHED in sys.modules:
        register()
    elif not any(isinstance(f, _LmEvalModelsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LmEvalModelsFinder())
