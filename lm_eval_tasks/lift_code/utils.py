"""lm-eval glue for the LIFT code tasks: prompts, what runs where, sandboxed scoring.

Grading lives in :mod:`trl_lift.evaluation.code_execution`: the model's code
runs in the sandbox, the dataset's tests run in this process and call it
across the boundary. These functions bind it to HumanEval's and MBPP's fields.
"""

from trl_lift.evaluation.code_execution import CodeTest, run_tests
from trl_lift.evaluation.data import load_benchmark

__all__ = [
    "humaneval_prompt",
    "humaneval_test",
    "load_benchmark",
    "mbpp_prompt",
    "mbpp_test",
    "process_humaneval",
    "process_mbpp",
]

TIMEOUT_S = 10.0
MEMORY_MB = 1024
FENCE = "```"


def _code(completion: str) -> str:
    """The completion up to a closing fence (the model may run past it when no stop string cut it)."""
    return completion.split(FENCE, 1)[0]


def humaneval_prompt(doc: dict) -> str:
    """The user turn of a HumanEval problem."""
    return f"Complete the following Python function.\n{FENCE}python\n{doc['prompt']}{FENCE}"


def mbpp_prompt(doc: dict) -> str:
    """The user turn of an MBPP problem: the task and its tests."""
    tests = "\n".join(doc["test_list"])
    return f"{doc['text']}\nYour code should pass these tests:\n{FENCE}python\n{tests}\n{FENCE}"


def humaneval_test(doc: dict, completion: str) -> CodeTest:
    """Sandbox: the signature and docstring, then the generated body. Here: the prompt's helpers,
    ``check``, and ``check(entry_point)`` with the sandboxed function."""
    return CodeTest(
        candidate=f"{doc['prompt']}{_code(completion)}\n",
        tests=f"check({doc['entry_point']})\n",
        judge_setup=f"{doc['prompt']}\n\n{doc['test']}\n",
        names=(doc["entry_point"],),
    )


def mbpp_test(doc: dict, completion: str) -> CodeTest:
    """Sandbox: the generated code, then the task's test setup (it builds the solution's objects). Here: the
    asserts, calling the sandboxed functions."""
    return CodeTest(
        candidate=f"{_code(completion)}\n",
        tests="\n".join(doc["test_list"]) + "\n",
        sandbox_setup=doc.get("test_setup_code") or "",
        reference=doc["code"],  # names the functions under test (MBPP 126's is called `sum`)
    )


def process_humaneval(doc: dict, results: list[str]) -> dict[str, float]:
    """HumanEval pass@1: ``check`` runs to its end against the sandboxed function."""
    result = run_tests(humaneval_test(doc, results[0]), timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)
    return {"pass@1": float(result.passed)}


def process_mbpp(doc: dict, results: list[str]) -> dict[str, float]:
    """MBPP pass@1: the three asserts run to their end against the sandboxed functions."""
    result = run_tests(mbpp_test(doc, results[0]), timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)
    return {"pass@1": float(result.passed)}
