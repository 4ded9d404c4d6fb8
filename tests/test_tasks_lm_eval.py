"""The lift_* lm-eval tasks end to end over the full local benchmark data.

A gold-answer model (each document's reference answer, written in the format
the prompt asks for) must score 100% on all eight tasks, and a wrong-answer
model 0%: the check on extraction and grading before any model is blamed.
Data come from ``$TRL_LIFT_DATA_DIR``, else ``../shared/data`` beside the clone; tests that need them
skip, saying so in their reason and in the run's header, only when neither is there.
"""

import json
import os
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from trl_lift.evaluation.answers import format_response, gsm8k_reference
from trl_lift.evaluation.pass_at_k import pass_at_k
from trl_lift.evaluation.sudoku import render_grid

ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = ROOT / "lm_eval_tasks"
DATA_DIR = Path(os.environ.get("TRL_LIFT_DATA_DIR") or ROOT.parent / "shared" / "data").expanduser()
REASONING = ["lift_gsm8k", "lift_math500", "lift_countdown", "lift_sudoku", "lift_aime24", "lift_aime25"]
CODE = ["lift_humaneval", "lift_mbpp"]
SIZES = {"lift_gsm8k": 1319, "lift_math500": 500, "lift_countdown": 256, "lift_sudoku": 256,
         "lift_aime24": 30, "lift_aime25": 30, "lift_humaneval": 164, "lift_mbpp": 500}  # fmt: skip
HEADLINE = {"lift_sudoku": "cell_acc,none", "lift_aime24": "acc,all_samples", "lift_aime25": "acc,all_samples"}
NO_DATA = f"benchmark data folder {DATA_DIR} is absent: set TRL_LIFT_DATA_DIR to the folder of shared/data"
needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=NO_DATA)


def reference(task: str, doc: dict) -> str:
    """The gold answer of ``doc`` as the text the graders should read."""
    if task == "lift_gsm8k":
        return doc["answer"].rpartition("####")[2].strip()
    if task == "lift_countdown":
        return doc["solution"]
    if task == "lift_sudoku":
        return render_grid(doc["solution"])
    return str(doc.get("answer", doc.get("Answer")))


def wrong(task: str, doc: dict) -> str:
    """A plausible but wrong answer: off by one, another expression, wrong cells, broken code."""
    if task == "lift_gsm8k":
        return str(gsm8k_reference(doc["answer"]) + 1)
    if task == "lift_countdown":  # every number once, but not the target
        numbers, target = [str(n) for n in doc["numbers"]], doc["target"]
        return next(e for e in (" + ".join(numbers), " * ".join(numbers), " - ".join(numbers)) if eval(e) != target)
    if task == "lift_sudoku":  # every empty cell wrong, the givens kept
        return "".join(s if p != "0" else str(int(s) % 4 + 1) for p, s in zip(doc["puzzle"], doc["solution"]))
    return f"{reference(task, doc)}+1"


class ScriptedLM(LM):
    """Answers every request with ``answer(task, doc, sample_index)``; no likelihoods."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer
        self.samples_seen: dict[int, int] = {}
        self.contexts: dict[str, str] = {}

    def generate_until(self, requests):
        outputs = []
        for request in requests:
            index = self.samples_seen.get(id(request), 0)
            self.samples_seen[id(request)] = index + 1
            self.contexts.setdefault(request.task_name, request.args[0])
            outputs.append(self.answer(request.task_name, request.doc, index))
        return outputs

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        turns = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in chat_history)
        return turns.removesuffix("<|end|>") if not add_generation_prompt else turns + "<|assistant|>"

    @property
    def tokenizer_name(self):
        return "scripted"


def gold_answer(task, doc, index):
    if task == "lift_humaneval":  # the body, a closing fence, and chatter the grader must cut
        return doc["canonical_solution"] + "```\nThis completes the function."
    if task == "lift_mbpp":
        return doc["code"] + "\n```\nDone."
    return format_response(reference(task, doc), "Let me work it out.\n")


def wrong_answer(task, doc, index):
    if task == "lift_humaneval":
        return "    pass\n```"
    if task == "lift_mbpp":
        return "def unrelated():\n    return None\n```"
    return format_response(wrong(task, doc), "Let me guess.\n")


@pytest.fixture
def local_data(monkeypatch):
    if not DATA_DIR.is_dir():
        pytest.skip(NO_DATA)
    monkeypatch.setenv("TRL_LIFT_DATA_DIR", str(DATA_DIR))


@pytest.fixture(scope="module")
def task_manager():
    """One index of lm-eval's tasks plus ours (building it takes seconds)."""
    return TaskManager(include_path=str(TASKS_DIR))


def evaluate(task_manager, model, tasks, **kwargs):
    return simple_evaluate(
        model=model,
        tasks=tasks,
        task_manager=task_manager,
        bootstrap_iters=0,
        confirm_run_unsafe_code=True,
        log_samples=False,
        **kwargs,
    )


def headline(results, task):
    return results["results"][task][HEADLINE.get(task, "pass@1,none" if task in CODE else "acc,none")]


@needs_data
@pytest.mark.usefixtures("local_data")
def test_gold_answers_score_100_percent_and_wrong_answers_0(task_manager):
    tasks = ["lift_reasoning", *CODE]
    gold = evaluate(task_manager, ScriptedLM(gold_answer), tasks, apply_chat_template=True)
    for task in REASONING + CODE:
        assert gold["n-samples"][task]["effective"] == SIZES[task], task
        assert headline(gold, task) == 1.0, task
    assert gold["results"]["lift_sudoku"]["acc,none"] == 1.0
    for k in ("avg@8", "pass@8", "avg@16", "pass@16"):
        assert gold["results"]["lift_aime24"][f"{k},all_samples"] == 1.0
    bad = evaluate(task_manager, ScriptedLM(wrong_answer), tasks)
    for task in REASONING + CODE:
        assert headline(bad, task) == 0.0, task
    assert bad["results"]["lift_aime25"]["pass@16,all_samples"] == 0.0


@needs_data
@pytest.mark.usefixtures("local_data")
def test_aime_samples_give_avg_and_pass_at_k(task_manager):
    """Problem i is answered correctly by samples 0..c_i-1 of 16, c_i = i mod 5."""

    def answer(task, doc, index):
        position = int(doc["ID"].split("-")[-1]) + (15 if doc["ID"].split("-")[1] == "II" else 0) - 1
        correct = index < position % 5
        return format_response(str(doc["Answer"]) if correct else f"{doc['Answer']}+1")

    model = ScriptedLM(answer)
    results = evaluate(task_manager, model, ["lift_aime24"])["results"]["lift_aime24"]
    counts = [i % 5 for i in range(30)]
    assert set(model.samples_seen.values()) == {16}
    assert results["acc,all_samples"] == pytest.approx(sum(counts) / 16 / 30)
    assert results["avg@8,all_samples"] == pytest.approx(sum(min(c, 8) for c in counts) / 8 / 30)
    assert results["pass@16,all_samples"] == pytest.approx(24 / 30)
    expected = sum(pass_at_k(16, c, 8) for c in counts) / 30
    assert results["pass@8,all_samples"] == pytest.approx(expected)
    assert expected == pytest.approx(6 * (0.5 + (1 - 3003 / 12870) + (1 - 1287 / 12870) + (1 - 495 / 12870)) / 30)


@needs_data
@pytest.mark.usefixtures("local_data")
def test_prompt_follows_the_paper_protocol(task_manager):
    model = ScriptedLM(gold_answer)
    evaluate(task_manager, model, ["lift_math500", "lift_humaneval"], apply_chat_template=True, limit=1)
    math = model.contexts["lift_math500"]
    assert math.startswith("<|system|>") and "<reasoning>" in math and "\\boxed{" in math
    assert math.endswith("<|assistant|><reasoning>")  # chat template, then the literal <reasoning>
    assert "Convert the point $(0,3)$" in math
    first = json.loads((DATA_DIR / "humaneval" / "test.jsonl").read_text().splitlines()[0])
    assert model.contexts["lift_humaneval"].endswith(f"<|assistant|>```python\n{first['prompt']}")


def test_generation_defaults():
    paths = {path.stem: path for path in TASKS_DIR.glob("*/lift_*.yaml") if path.parent.name != "lift_testbed"}
    assert sorted(paths) == sorted(REASONING + CODE)
    configs = {name: load_yaml(path) for name, path in paths.items()}
    for name, config in configs.items():
        assert config["generation_kwargs"]["max_gen_toks"] == 256, name
        assert config["num_fewshot"] == 0, name
    assert configs["lift_aime24"]["repeats"] == configs["lift_aime25"]["repeats"] == 16
    assert configs["lift_aime25"]["generation_kwargs"]["do_sample"] is True
    assert configs["lift_gsm8k"]["generation_kwargs"]["temperature"] == 0.0
    assert configs["lift_humaneval"]["unsafe_code"] and configs["lift_mbpp"]["unsafe_code"]


@needs_data
@pytest.mark.usefixtures("local_data")
def test_code_tasks_require_unsafe_confirmation(task_manager):
    with pytest.raises(ValueError, match="unsafe"):
        simple_evaluate(model=ScriptedLM(gold_answer), tasks=["lift_mbpp"], task_manager=task_manager, limit=1)


def test_missing_local_file_is_an_error(tmp_path, monkeypatch):
    from trl_lift.evaluation.data import load_benchmark

    monkeypatch.setenv("TRL_LIFT_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="math500/test.jsonl"):
        load_benchmark("math500")
    (tmp_path / "countdown").mkdir()
    (tmp_path / "countdown" / "test.jsonl").write_text('{"numbers": [1, 2], "target": 3, "solution": "1 + 2"}\n')
    assert load_benchmark("countdown")["test"][0] == {"numbers": [1, 2], "target": 3, "solution": "1 + 2"}
    assert len(load_benchmark("sudoku", num_problems=4)["test"]) == 4  # no file: generated
