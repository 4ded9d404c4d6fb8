"""Ships the lm-eval start-up hook (hooks/) and the task folder into the wheel; the rest is in pyproject.toml.

lm-eval 0.4.13 discovers no model plugins, so ``trl_lift_lm_eval.pth`` and the tiny module it imports
(``_trl_lift_lm_eval``) are copied next to the packages in the wheel: the stock ``lm_eval`` command then
finds ``--model lift_dlm`` with no other step (see hooks/_trl_lift_lm_eval.py). The benchmark tasks
(``lm_eval_tasks/``, top level in the repository) are copied to ``trl_lift/lm_eval_tasks`` so that
``trl-lift eval`` and ``trl-lift tasks-dir`` find them in an installed package.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HOOK_FILES = ("hooks/_trl_lift_lm_eval.py", "hooks/trl_lift_lm_eval.pth")
TASKS_DIR = "lm_eval_tasks"


class build_py_with_hook(build_py):
    """``build_py`` that also places the hook files at the top of the wheel."""

    def run(self):
        super().run()
        for source in HOOK_FILES:
            self.copy_file(source, os.path.join(self.build_lib, os.path.basename(source)), preserve_mode=0)
        if os.path.isdir(TASKS_DIR):
            self.copy_tree(TASKS_DIR, os.path.join(self.build_lib, "trl_lift", TASKS_DIR), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        hooks = [os.path.join(self.build_lib, os.path.basename(source)) for source in HOOK_FILES]
        return super().get_outputs(include_bytecode) + hooks

    def get_output_mapping(self):
        mapping = dict(super().get_output_mapping())
        for source in HOOK_FILES:
            mapping[os.path.join(self.build_lib, os.path.basename(source))] = source
        return mapping


class editable_wheel_with_hook(editable_wheel):
    """Editable installs (``pip install -e .``) get the hook too, beside setuptools' own editable ``.pth``.

    Uses setuptools' ``_install_namespaces`` step, which receives the wheel's root folder; should a
    setuptools release drop it, editable installs merely go without the hook (``trl-lift eval`` works).
    """

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        for source in HOOK_FILES:
            shutil.copy(source, os.path.join(installation_dir, os.path.basename(source)))


setup(cmdclass={"build_py": build_py_with_hook, "editable_wheel": editable_wheel_with_hook})
