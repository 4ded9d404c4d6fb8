"""``trl-lift eval ARGS``: lm-eval's own command line (``run``, ``ls``, ``validate``) with ``lift_dlm``
registered and the project's tasks included (:func:`trl_lift.cli.tasks.eval_argv`)."""

from __future__ import annotations

import sys

from .tasks import eval_argv

HELP = """usage: {prog} [run|ls|validate] [lm_eval arguments]

lm-eval's command line, with the lift_dlm model registered and the project's tasks (lift_gsm8k,
lift_reasoning, lift_humaneval, ...) included. Without a subcommand it is `run`.

  {prog} --model lift_dlm --model_args pretrained=GSAI-ML/LLaDA-8B-Instruct,preset=lift_paper \\
      --tasks lift_gsm8k --apply_chat_template
  {prog} ls tasks
  {prog} validate --tasks lift_reasoning

lift_dlm's model_args are listed in the README ("lift_dlm model_args"). lm-eval's own help follows.
"""


def run(argv: list[str], prog: str = "trl-lift eval") -> int:
    from lm_eval.__main__ import cli_evaluate

    from ..evaluation.lm_eval_registry import register

    if not argv or argv[0] in ("-h", "--help"):
        print(HELP.format(prog=prog))
        argv = ["run", "--help"]
    register()
    sys.argv = ["lm_eval", *eval_argv(argv)]
    cli_evaluate()
    return 0
