"""Ships the lm-eval start-up hook and the task folder in the wheel; everything else is in pyproject.toml.

- ``hooks/``: lm-eval 0.4.13 discovers no model plugins, so ``trl_lift_lm_eval.pth`` and the tiny module it
  imports (``_trl_lift_lm_eval``) go next to the packages: the stock ``lm_eval`` command then finds
  ``--model lift_dlm`` with no other step (see hooks/_trl_lift_lm_eval.py).
- ``lm_eval_tasks/``: lm-eval discovers tasks only in its own folder (``lm_eval/tasks/**.yaml``) and in
  ``--include_path``, and has no plugin or environment variable for tasks. The tasks are therefore installed
  as ``lm_eval/tasks/trl_lift/`` (files of this wheel, removed by ``pip uninstall trl-lift``), so that
  ``lm_eval --tasks lift_gsm8k`` works as it is. An editable install gets a copy taken at install time;
  ``trl-lift eval`` includes the source folder itself when it differs (trl_lift/cli/tasks.py).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HOOK_FILES = ("hooks/_trl_lift_lm_eval.py", "hooks/trl_lift_lm_eval.pth")
TASKS_DIR = "lm_eval_tasks"
TASKS_TARGET = os.path.join("lm_eval", "tasks", "trl_lift")  # inside lm-eval's task discovery folder
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def _task_files():
    for folder, _, names in os.walk(TASKS_DIR):
        for name in names:
            if "__pycache__" not in folder and not name.endswith(".pyc"):
                source = os.path.join(folder, name)
                yield source, os.path.join(TASKS_TARGET, os.path.relpath(source, TASKS_DIR))


class build_py_with_hook(build_py):
    """``build_py`` that also places the hook files at the top of the wheel and the tasks in lm-eval's folder."""

    def run(self):
        super().run()
        for source in HOOK_FILES:
            self.copy_file(source, os.path.join(self.build_lib, os.path.basename(source)), preserve_mode=0)
        for source, target in _task_files():
            self.mkpath(os.path.dirname(os.path.join(self.build_lib, target)))
            self.copy_file(source, os.path.join(self.build_lib, target), preserve_mode=0)

    def _extra(self):
        return [(os.path.join(self.build_lib, os.path.basename(s)), s) for s in HOOK_FILES] + [
            (os.path.join(self.build_lib, t), s) for s, t in _task_files()]

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [built for built, _ in self._extra()]

    def get_output_mapping(self):
        return {**dict(super().get_output_mapping()), **dict(self._extra())}


class editable_wheel_with_hook(editable_wheel):
    """Editable installs (``pip install -e .``) get the hook and a copy of the tasks too.

    Uses setuptools' ``_install_namespaces`` step, which receives the wheel's root folder; should a
    setuptools release drop it, editable installs merely go without them (``trl-lift eval`` works).
    """

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        for source in HOOK_FILES:
            shutil.copy(source, os.path.join(installation_dir, os.path.basename(source)))
        if os.path.isdir(TASKS_DIR):
            shutil.copytree(TASKS_DIR, os.path.join(installation_dir, TASKS_TARGET), ignore=IGNORE, dirs_exist_ok=True)


setup(cmdclass={"build_py": build_py_with_hook, "editable_wheel": editable_wheel_with_hook})
