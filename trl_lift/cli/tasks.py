"""Where the project's lm-eval tasks are, and lm-eval arguments that include them: ``trl-lift tasks-dir``.

An installed trl-lift ships its tasks inside lm-eval's own task folder (``lm_eval/tasks/trl_lift/``,
see setup.py), the one folder the stock ``lm_eval`` command scans, so ``--tasks lift_gsm8k`` works
with no ``--include_path``. A source checkout (or an editable install, whose copy there is a
snapshot taken at install time) has them in ``lm_eval_tasks/``; ``trl-lift eval`` then adds that
folder with ``--include_path`` so that edits to it count.
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import sys
from pathlib import Path

TASKS_ENV = "TRL_LIFT_TASKS"
SUBCOMMANDS = ("run", "ls", "validate")


def installed_tasks_dir() -> Path | None:
    """``lm_eval/tasks/trl_lift`` when an installed trl-lift put its tasks there, else ``None`` (imports nothing)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "tasks" / "trl_lift"
    return folder if folder.is_dir() else None


def tasks_dir() -> Path | None:
    """The project's task folder: ``$TRL_LIFT_TASKS``, else a source checkout's ``lm_eval_tasks``, else the
    copy in lm-eval's task folder; ``None`` when there is none."""
    if os.environ.get(TASKS_ENV):
        return Path(os.environ[TASKS_ENV])
    source = Path(__file__).resolve().parents[2] / "lm_eval_tasks"
    if source.is_dir():
        return source
    return installed_tasks_dir()


def _same_tree(a: Path, b: Path) -> bool:
    """Whether two task folders hold the same task files (YAML and Python), byte for byte."""
    def files(root: Path) -> set:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                and (p.suffix in (".yaml", ".py") or p.name.endswith("_yaml"))}
    names = files(a)
    return names == files(b) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def eval_argv(args: list[str]) -> list[str]:
    """lm-eval's arguments for ``trl-lift eval args``: the subcommand first (``run`` unless ``ls`` or
    ``validate`` is given), then ``args``, then ``--include_path`` to the task folder unless it is given,
    or lm-eval finds the same tasks by itself."""
    args = list(args)
    command, rest = (args[0], args[1:]) if args[:1] and args[0] in SUBCOMMANDS else ("run", args)
    given = any(a == "--include_path" or a.startswith("--include_path=") for a in rest)
    if given or any(a in ("-h", "--help") for a in rest):
        return [command, *rest]
    if tasks_dir() is None:
        print(f"trl-lift: no lm_eval_tasks folder found (set {TASKS_ENV}); the lift_* tasks are unavailable.",
              file=sys.stderr)
        return [command, *rest]
    folder = include_path()
    return [command, *rest] if folder is None else [command, *rest, "--include_path", folder]


def include_path() -> str | None:
    """The task folder to pass as lm-eval's ``include_path`` (``TaskManager(include_path=...)``), or ``None``
    when there is none or lm-eval already scans the same tasks in its own folder (adding them again warns
    once per task)."""
    folder = tasks_dir()
    if folder is None:
        return None
    installed = installed_tasks_dir()
    if installed is not None and (folder.resolve() == installed.resolve() or _same_tree(folder, installed)):
        return None
    return str(folder)


def run(argv: list[str], prog: str = "trl-lift tasks-dir") -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(f"usage: {prog}\n\nPrint the folder of the project's lm-eval tasks (lift_gsm8k, lift_reasoning, ...):\n"
              f"${TASKS_ENV} if set, else a source checkout's lm_eval_tasks/, else the copy an installed trl-lift put\n"
              "in lm-eval's own task folder (lm_eval/tasks/trl_lift), which the stock lm_eval command scans.")
        return 0
    if argv:
        print(f"usage: {prog}   (takes no arguments)", file=sys.stderr)
        return 2
    folder = tasks_dir()
    if folder is None:
        print(f"trl-lift: no lm_eval_tasks folder found (set {TASKS_ENV}).", file=sys.stderr)
        return 1
    print(folder)
    return 0
