"""Registration of the lm-eval model ``lift_dlm``: the one path the start-up hook, the CLI and tests take.

The entry is lazy (``"module:Class"``): registering imports nothing of trl-lift's model code.
"""

ALIAS = "lift_dlm"
TARGET = "trl_lift.evaluation.lm_eval_model:LIFTDiffusionLM"


def register() -> bool:
    """Add ``lift_dlm`` to lm-eval's model registry (idempotent). Returns whether it is registered."""
    try:
        import lm_eval.models  # noqa: F401  (lm-eval's own table first: its get_model loads it only when empty)
        from lm_eval.api.registry import model_registry

        from ..cli.quiet import silence_known_loggers

        if ALIAS not in model_registry:
            model_registry.register(ALIAS, target=TARGET)
        silence_known_loggers()
        return True
    except Exception:  # an lm-eval without this registry API, or a frozen registry: leave lm-eval alone
        return False
