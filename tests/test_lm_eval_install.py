"""A fresh install: the stock ``lm_eval`` command finds ``lift_dlm`` with no other step.

The project is built and installed (pip, no build isolation, no dependencies) into a throwaway venv
that sees the system's packages; the commands run there in subprocesses, offline. The venv holds its own
copy of lm-eval's code (not its 200 task folders), as a user's environment would: the wheel installs
the project's tasks into lm-eval's task folder, where the stock command finds them.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from test_lm_eval_model import make_lora_adapter, write_tasks

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def install_in_venv(root, *, editable: bool = False):
    """Install a copy of the project into a fresh venv under ``root`` (seeing the system's packages, with
    lm-eval's code copied into it, its own task folders left out)."""
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("hooks", "trl_lift", "lm_eval_tasks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    # See this interpreter's packages (torch, lm-eval, ...) whether it is a venv or not: a path file lists its
    # site folders (lines of a path file are added to sys.path; the path files inside them are not run).
    parent = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (site_packages(python) / "parent_env.pth").write_text("\n".join(sorted(parent)) + "\n")
    lm_eval_code = Path(importlib.util.find_spec("lm_eval").origin).parent
    shutil.copytree(lm_eval_code, site_packages(python) / "lm_eval", ignore=_lm_eval_code_only(lm_eval_code))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-build-isolation", *(["-e"] if editable else []), str(source)], check=True, env=ENV, cwd=root)
    return python


def _lm_eval_code_only(package: Path):
    def ignore(folder, names):
        stock_tasks = Path(folder) == package / "tasks"
        return [n for n in names if n == "__pycache__" or (stock_tasks and (Path(folder) / n).is_dir())]
    return ignore


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return install_in_venv(tmp_path_factory.mktemp("install"))


def site_packages(python) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def test_hook_is_installed_and_imports_nothing_at_start_up(venv):
    purelib = site_packages(venv)
    assert (purelib / "trl_lift_lm_eval.pth").is_file() and (purelib / "_trl_lift_lm_eval.py").is_file()
    assert purelib != Path(sysconfig.get_paths()["purelib"])
    probe = ("import sys; print(sorted(m for m in ('_trl_lift_lm_eval', 'trl_lift', 'lm_eval', 'torch') "
             "if m in sys.modules))")
    out = subprocess.run([str(venv), "-c", probe], check=True, capture_output=True, text=True, env=ENV)
    assert json.loads(out.stdout.replace("'", '"')) == ["_trl_lift_lm_eval"]


def run_lm_eval(command, tmp_path, model_args, task):
    out = tmp_path / task
    proc = subprocess.run([*command, "--model", "lift_dlm", "--model_args", model_args, "--tasks", task,
                           "--include_path", str(write_tasks(tmp_path)), "--output_path", str(out),
                           "--batch_size", "2"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = list(out.rglob("results_*.json"))
    return json.loads(result.read_text())


def test_python_m_lm_eval_with_lora_adapter(venv, tmp_path, llada_checkpoint, adapters):
    args = f"pretrained={llada_checkpoint[0]},peft={adapters[0]},block_length=8,steps=8,mc_num=2,dtype=float32"
    results = run_lm_eval([str(venv), "-m", "lm_eval"], tmp_path, args, "tiny_gen")
    info = results["config"]["lift_dlm"]
    assert info["peft"] == adapters[0] and info["sampler_model_args"] == {"block_length": 8, "steps": 8}
    assert info["sampler_configs_used"][0]["sampler"]["gen_length"] == 16
    assert "exact_match,none" in results["results"]["tiny_gen"]


def test_stock_lm_eval_script_on_dream(venv, tmp_path, dream_checkpoint):
    script = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or shutil.which("lm_eval")
    assert script, "lm-eval's console script is not installed beside this interpreter nor on PATH"
    args = f"pretrained={dream_checkpoint[0]},block_length=8,steps=8,mc_num=2,dtype=float32"
    results = run_lm_eval([str(venv), script], tmp_path, args, "tiny_mc")  # the script, run by the venv's Python
    assert results["config"]["lift_dlm"]["family"] == "dream"
    assert "acc,none" in results["results"]["tiny_mc"]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, llada_checkpoint, llada_tokenizer):
    return make_lora_adapter(tmp_path_factory.mktemp("peft"), llada_checkpoint[0], llada_tokenizer)


def test_trl_lift_eval_adds_the_task_folder(tmp_path, monkeypatch, llada_checkpoint):
    from trl_lift import cli

    monkeypatch.delenv(cli.TASKS_ENV, raising=False)
    assert cli.tasks_dir() == ROOT / "lm_eval_tasks"  # a source checkout
    source = ROOT / "lm_eval_tasks"
    if cli.installed_tasks_dir() is None:  # a checkout on the path without an install: the folder is added
        assert cli.eval_argv(["--tasks", "x"]) == ["run", "--tasks", "x", "--include_path", str(source)]
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setenv(cli.TASKS_ENV, str(mine))  # a folder lm-eval does not scan: added, after the subcommand's args
    assert cli.eval_argv(["--tasks", "x"]) == ["run", "--tasks", "x", "--include_path", str(mine)]
    assert cli.eval_argv(["ls", "tasks"]) == ["ls", "tasks", "--include_path", str(mine)]
    assert cli.eval_argv(["validate", "--tasks", "x"]) == ["validate", "--tasks", "x", "--include_path", str(mine)]
    assert cli.eval_argv(["--include_path", "a", "--tasks", "x"]) == ["run", "--include_path", "a", "--tasks", "x"]
    monkeypatch.delenv(cli.TASKS_ENV)
    # The command itself (this interpreter's editable install may have no start-up hook: it registers lift_dlm).
    tasks = write_tasks(tmp_path / "tasks" if (tmp_path / "tasks").mkdir() is None else None)
    proc = subprocess.run(
        [sys.executable, "-m", "trl_lift.cli", "eval", "--model", "lift_dlm", "--model_args",
         f"pretrained={llada_checkpoint[0]},block_length=8,steps=8,mc_num=2,dtype=float32", "--tasks", "tiny_mc",
         "--output_path", str(tmp_path / "out"), "--device", "cpu"],
        capture_output=True, text=True, env={**ENV, cli.TASKS_ENV: str(tasks)}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = list((tmp_path / "out").rglob("results_*.json"))
    assert json.loads(result.read_text())["config"]["lift_dlm"]["mc_num"] == 2


def test_stock_lm_eval_finds_the_projects_tasks_with_no_include_path(venv, tmp_path, llada_checkpoint):
    purelib = site_packages(venv)
    installed = purelib / "lm_eval" / "tasks" / "trl_lift"
    assert (installed / "lift_reasoning" / "lift_gsm8k.yaml").read_bytes() == (
        ROOT / "lm_eval_tasks" / "lift_reasoning" / "lift_gsm8k.yaml").read_bytes()
    from test_tasks_lm_eval import DATA_DIR as data, NO_DATA

    if not (data / "gsm8k" / "test.jsonl").is_file():  # as every other data test: skipped, with the fix
        pytest.skip(NO_DATA)
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(venv), "-m", "lm_eval", "--model", "lift_dlm", "--tasks", "lift_gsm8k", "--limit", "2",
         "--model_args", f"pretrained={llada_checkpoint[0]},block_length=8,steps=8,dtype=float32",
         "--gen_kwargs", "max_gen_toks=16", "--output_path", str(out)],
        capture_output=True, text=True, env={**ENV, "TRL_LIFT_DATA_DIR": str(data)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = list(out.rglob("results_*.json"))
    results = json.loads(result.read_text())
    assert results["n-samples"]["lift_gsm8k"] == {"original": 1319, "effective": 2}
    assert "acc,none" in results["results"]["lift_gsm8k"]


def test_editable_install_gets_the_hook_too(tmp_path):
    python = install_in_venv(tmp_path, editable=True)
    purelib = site_packages(python)
    assert (purelib / "trl_lift_lm_eval.pth").is_file() and (purelib / "_trl_lift_lm_eval.py").is_file()
    assert any(path.name.startswith("__editable__") for path in purelib.iterdir())
    assert (purelib / "lm_eval" / "tasks" / "trl_lift" / "lift_reasoning.yaml").is_file()  # the tasks' snapshot
    probe = "import lm_eval.models; from lm_eval.api.registry import get_model; print(get_model('lift_dlm').__name__)"
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, env=ENV)
    assert out.stdout.strip() == "LIFTDiffusionLM"


def test_hook_names_the_fix_when_the_tasks_sit_beside_another_lm_eval(tmp_path, monkeypatch, capsys):
    import types

    spec = importlib.util.spec_from_file_location("_hook_under_test", ROOT / "hooks" / "_trl_lift_lm_eval.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    running = tmp_path / "system" / "lm_eval"
    running.mkdir(parents=True)
    (tmp_path / "user" / "lm_eval" / "tasks" / "trl_lift").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "lm_eval", types.SimpleNamespace(__file__=str(running / "__init__.py")))
    monkeypatch.setattr(sys, "path", [str(tmp_path / "user"), *sys.path])
    hook._warn_if_tasks_unreachable()
    message = capsys.readouterr().err
    assert str(tmp_path / "user" / "lm_eval" / "tasks" / "trl_lift") in message and "trl-lift tasks-dir" in message
    (running / "tasks" / "trl_lift").mkdir(parents=True)  # the running lm-eval has them: silence
    hook._warn_if_tasks_unreachable()
    assert capsys.readouterr().err == ""
