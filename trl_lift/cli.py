"""The ``trl-lift`` command. ``trl-lift eval ARGS`` is ``lm_eval ARGS`` with the project's tasks added.

    trl-lift eval --model lift_dlm --model_args pretrained=GSAI-ML/LLaDA-8B-Instruct --tasks lift_gsm8k

runs lm-eval's own command line with ``--include_path`` set to the project's task folder
(``lm_eval_tasks/``, see :func:`tasks_dir`) and with the ``lift_dlm`` model registered. With the plain
``lm_eval`` command, add the folder yourself: ``lm_eval --include_path "$(trl-lift tasks-dir)" ...``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TASKS_ENV = "TRL_LIFT_TASKS"
USAGE = """usage: trl-lift eval [lm_eval arguments]   run lm-eval with lift_dlm and the project's tasks
       trl-lift tasks-dir                  print the project's lm-eval task folder"""


def tasks_dir() -> Path | None:
    """The project's lm-eval task folder: ``$TRL_LIFT_TASKS``, else ``lm_eval_tasks`` inside the installed
    package, else next to it (a source checkout or an editable install); ``None`` when none exists."""
    if os.environ.get(TASKS_ENV):
        return Path(os.environ[TASKS_ENV])
    package = Path(__file__).resolve().parent
    for candidate in (package / "lm_eval_tasks", package.parent / "lm_eval_tasks"):
        if candidate.is_dir():
            return candidate
    return None


def eval_argv(args: list[str]) -> list[str]:
    """lm-eval's arguments for ``trl-lift eval args``: ``--include_path`` added unless given."""
    given = any(a == "--include_path" or a.startswith("--include_path=") for a in args)
    folder = tasks_dir()
    if given or folder is None:
        if folder is None and not given:
            print("trl-lift: no lm_eval_tasks folder found (set TRL_LIFT_TASKS); running without it.", file=sys.stderr)
        return list(args)
    return ["--include_path", str(folder), *args]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tasks-dir"]:
        folder = tasks_dir()
        if folder is None:
            print("trl-lift: no lm_eval_tasks folder found (set TRL_LIFT_TASKS).", file=sys.stderr)
            return 1
        print(folder)
        return 0
    if argv[:1] != ["eval"] or len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    from lm_eval.__main__ import cli_evaluate

    from .evaluation.lm_eval_registry import register

    register()

    command = eval_argv(argv[1:])
    if command and command[0] not in ("run", "ls", "validate"):
        command = ["run", *command]  # lm-eval inserts it only for sys.argv-style calls of 3+ words
    sys.argv = ["lm_eval", *command]
    cli_evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
