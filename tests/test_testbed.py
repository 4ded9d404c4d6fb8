"""The CPU testbed: its lm-eval tasks, its data split, the main command's pipeline and the quick study.

The two end-to-end tests train real (tiny) models; they share one pretrained base through
``$TRL_LIFT_CACHE`` pointed at a session folder, so the base is built once per session.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.tasks import TaskManager

from trl_lift.cli.tasks import include_path
from trl_lift.testbed import domain
from trl_lift.testbed.experiment import METHODS
from trl_lift.testbed.report import METRICS

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Answers(LM):
    """Answers every request with ``answer(task, doc)`` and keeps the contexts it was given."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer
        self.contexts: dict[str, list[str]] = {}

    def generate_until(self, requests):
        out = []
        for request in requests:
            self.contexts.setdefault(request.task_name, []).append(request.args[0])
            out.append(self.answer(request.task_name.removeprefix("lift_testbed_"), request.doc))
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.fixture(scope="module")
def task_manager():
    return TaskManager(include_path=include_path())


def _evaluate(task_manager, model, limit=6):
    return simple_evaluate(model=model, tasks=["lift_testbed"], task_manager=task_manager, limit=limit,
                           bootstrap_iters=0, verbosity="ERROR")["results"]


def test_lm_eval_sees_exactly_the_fine_tuning_prompt(task_manager):
    model = Answers(domain.completion)
    _evaluate(task_manager, model, limit=3)
    for task in domain.TASKS:
        docs = domain.held_out(task, 3)
        assert model.contexts[f"lift_testbed_{task}"] == [domain.prompt(task, doc) for doc in docs]
    first = domain.held_out("sudoku", 1)[0]
    assert domain.prompt("sudoku", first) == "sudoku\n" + "\n".join(
        first["puzzle"][i:i + 4] for i in range(0, 16, 4)) + "\nsolution\n"


def test_gold_answers_score_one_and_a_copied_puzzle_scores_zero(task_manager):
    gold = _evaluate(task_manager, Answers(domain.completion))
    assert gold["lift_testbed_sudoku"]["cell_acc,none"] == gold["lift_testbed_sudoku"]["acc,none"] == 1.0

    def copy_puzzle(task, doc):  # the givens are right, every empty cell is a 0: no readable grid
        return domain.render_grid(doc["puzzle"])

    copied = _evaluate(task_manager, Answers(copy_puzzle))
    assert copied["lift_testbed_sudoku"]["cell_acc,none"] == 0.0


def test_one_wrong_cell_costs_its_share_of_the_empty_cells():
    doc = domain.held_out("sudoku", 1)[0]
    empty = [i for i, ch in enumerate(doc["puzzle"]) if ch == "0"]
    wrong = list(doc["solution"])
    wrong[empty[0]] = "1" if wrong[empty[0]] != "1" else "2"
    scores = domain.score("sudoku", doc, domain.render_grid("".join(wrong)))
    assert scores == {"cell_acc": (len(empty) - 1) / len(empty), "acc": 0.0}


def test_training_pairs_never_hold_a_held_out_problem():
    for task in domain.TASKS:
        held = {domain.prompt(task, doc) for doc in domain.held_out(task)}
        rows = domain.training_pairs(task, 500, seed=1)
        assert len(rows) == 500 and not held & {row["prompt"] for row in rows}
        assert rows == domain.training_pairs(task, 500, seed=1)  # deterministic under the seed
    with pytest.raises(ValueError, match="held-out seed"):
        domain.training_pairs("sudoku", 1, seed=domain.HELD_OUT_SEEDS["sudoku"])


@pytest.fixture(scope="module")
def testbed_cache(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("testbed-cache")
    monkeypatch_module.setenv("TRL_LIFT_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_main_command_compares_vanilla_and_lift_through_lm_eval(testbed_cache, tmp_path, capsys):
    quickstart = _load(ROOT / "examples" / "quickstart.py", "quickstart")
    quickstart.main(["--limit", "64", "--results-dir", str(tmp_path), "--threads", "2"])
    printed = capsys.readouterr().out
    runs = {run["method"]: run for run in json.loads((tmp_path / "runs.json").read_text())}
    assert sorted(runs) == ["lift", "vanilla"]
    for run in runs.values():
        for task, metric in METRICS:
            value, stderr = run["scores"][task][metric]
            assert 0.0 <= value <= 1.0 and stderr >= 0.0
        assert math.isfinite(run["eval_loss"]) and run["train_seconds"] > 0 and run["tokens_per_second"] > 0
        assert (tmp_path / run["method"] / "model" / "config.json").is_file()
    # both fine-tuned models fill far more empty cells than chance (0.25; 0.79 and 0.85 measured at 128
    # puzzles) and solve whole puzzles (0.41 and 0.55 measured)
    assert min(run["scores"]["sudoku"]["cell_acc"][0] for run in runs.values()) > 2 * domain.CHANCE_CELL_ACC
    assert min(run["scores"]["sudoku"]["acc"][0] for run in runs.values()) > 0.1
    for name in ("training_loss.png", "accuracy.png", "lift_selection.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    table = (tmp_path / "comparison.md").read_text()
    assert table.strip() in printed and str(tmp_path) in printed
    assert "| vanilla |" in table and "| lift |" in table and "nan" not in table


def test_quick_study_fills_every_cell(testbed_cache, tmp_path):
    study = _load(ROOT / "benchmarks" / "study.py", "study")
    assert study.main(["--quick", "--out", str(tmp_path), "--threads", "2"]) == 0
    result = json.loads((tmp_path / "study.json").read_text())
    assert [row["method"] for row in result["rows"]] == list(METHODS)
    for row in result["rows"]:
        for task, metric in METRICS:
            cell = row[f"{task} {metric}"]
            assert 0.0 <= cell["mean"] <= 1.0 and cell["sd"] >= 0.0
            assert cell["wins"] + cell["losses"] <= 2
        assert math.isfinite(row["eval loss"]) and row["train s"] > 0
    assert [p["name"] for p in result["paths"]] == list(study.SAMPLER_PATHS)
    assert all(p["tokens_per_second"] > 0 and p["nfe"] > 0 for p in result["paths"])
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count(study.SECTION) == 1 and "python benchmarks/study.py --quick" in text
    for method in METHODS:
        assert f"| {method} |" in text
    assert (tmp_path / "study.png").read_bytes()[:4] == b"\x89PNG"
    study.write_section(tmp_path / "RESULTS.md", study.SECTION + "\n\nreplaced\n")  # a rerun replaces the section
    assert (tmp_path / "RESULTS.md").read_text().count(study.SECTION) == 1
