"""lm-eval glue for the LIFT code tasks: prompts, program assembly, sandboxed scoring.

Execution lives in :mod:`trl_lift.evaluation.code_execution`; these functions
bind it to HumanEval's and MBPP's fields.
"""

from trl_lift.evaluation.code_execution import run_program
from trl_lift.evaluation.data import load_benchmark

__all__ = [
    "humaneval_program",
    "humaneval_prompt",
    "load_benchmark",
    "mbpp_program",
    "mbpp_prompt",
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


def humaneval_program(doc: dict, completion: str) -> str:
    """Signature and docstring, the generated body, the tests, and the ``check`` call."""
    return f"{doc['prompt']}{_code(completion)}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"


def mbpp_program(doc: dict, completion: str) -> str:
    """The generated code, the task's test setup (it may use the solution's classes), then its asserts."""
    tests = "\n".join(doc["test_list"])
    return f"{_code(completion)}\n\n{doc.get('test_setup_code') or ''}\n{tests}\n"


def process_humaneval(doc: dict, results: list[str]) -> dict[str, float]:
    """HumanEval pass@1: the program runs to its end in the sandbox."""
    result = run_program(humaneval_program(doc, results[0]), timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)
    return {"pass@1": float(result.passed)}


def process_mbpp(doc: dict, results: list[str]) -> dict[str, float]:
    """MBPP pass@1: the program with its three asserts runs to its end in the sandbox."""
    result = run_program(mbpp_program(doc, results[0]), timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB)
    return {"pass@1": float(result.passed)}
