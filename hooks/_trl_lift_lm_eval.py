"""Start-up hook that makes the stock ``lm_eval`` command find trl-lift's model ``lift_dlm``.

lm-eval 0.4.13 discovers no model plugins: it registers its own models when ``lm_eval.models`` is
imported. ``trl_lift_lm_eval.pth`` (installed next to this module in site-packages) imports this module
at interpreter start-up; it only adds a meta-path finder that waits for ``lm_eval.models`` and, right
after that module runs, calls :func:`trl_lift.evaluation.lm_eval_registry.register` (a lazy
``"module:Class"`` entry: trl-lift's model code is imported only when the model is used). It imports
nothing beyond ``sys`` at start-up, and never raises.
"""

import sys

_WATCHED = "lm_eval.models"


def register() -> bool:
    """Register ``lift_dlm`` through trl-lift's one registration path. Returns whether it is registered."""
    try:
        from trl_lift.evaluation.lm_eval_registry import register as register_lift_dlm

        return register_lift_dlm()
    except Exception:  # trl_lift missing or broken: leave lm-eval alone
        return False


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
