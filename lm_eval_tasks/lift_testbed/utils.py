"""lm-eval glue for the testbed tasks: every text and score comes from :mod:`trl_lift.testbed.domain`."""

from trl_lift.testbed import domain

__all__ = [
    "load_testbed",
    "process_sudoku",
    "sudoku_prompt",
    "sudoku_target",
]


def load_testbed(task: str, num_problems: int = domain.HELD_OUT_SIZE, **_: object):
    """The held-out problems of ``task`` as ``DatasetDict({"test": ...})`` (lm-eval's metadata is ignored)."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(domain.held_out(task, num_problems))})


def sudoku_prompt(doc: dict) -> str:
    return domain.prompt("sudoku", doc)


def sudoku_target(doc: dict) -> str:
    return domain.completion("sudoku", doc)


def process_sudoku(doc: dict, results: list[str]) -> dict[str, float]:
    return domain.score("sudoku", doc, results[0])
