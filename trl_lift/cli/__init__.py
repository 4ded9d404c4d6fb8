"""The ``trl-lift`` command line: ``sft``, ``generate``, ``convert``, ``eval`` and ``tasks-dir``.

Each subcommand is a module of this package (``trl-lift COMMAND --help`` prints its full help);
:mod:`.main` dispatches. ``python -m trl_lift.cli`` is the same command, which is how
``accelerate launch -m trl_lift.cli sft ...`` runs training on several processes.
"""

from .main import main
from .tasks import TASKS_ENV, eval_argv, installed_tasks_dir, tasks_dir

__all__ = ["TASKS_ENV", "eval_argv", "installed_tasks_dir", "main", "tasks_dir"]
