"""Start-up hook that makes the stock ``lm_eval`` command find trl-lift's model ``lift_dlm``.

lm-eval 0.4.13 discovers no model plugins: it registers its own models when ``lm_eval.models`` is
imported. ``trl_lift_lm_eval.pth`` (installed next to this module in site-packages) imports this module
at interpreter start-up; it only adds a meta-path finder that waits for ``lm_eval.models`` and, right
after that module runs, registers ``lift_dlm`` as a lazy ``"module:Class"`` entry (trl_lift itself is
imported only when the model is used). It imports nothing beyond ``sys`` at start-up, and never raises.
"""

import sys

_WATCHED = "lm_eval.models"
ALIAS = "lift_dlm"
TARGET = "trl_lift.lm_eval_model:LIFTDiffusionLM"


def register() -> bool:
    """Add ``lift_dlm`` to lm-eval's model registry (idempotent). Returns whether it is registered."""
    try:
        from lm_eval.api.registry import model_registry

        if ALIAS not in model_registry:
            model_registry.register(ALIAS, target=TARGET)
        return True
    except Exception:  # an lm-eval without this registry API, or a frozen registry: leave lm-eval alone
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
