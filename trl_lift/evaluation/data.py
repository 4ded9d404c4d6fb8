"""Benchmark data for the LIFT paper's evaluation: hub sets, local copies, generated puzzles.

By default each benchmark is read from the Hugging Face hub. When the
environment variable ``TRL_LIFT_DATA_DIR`` names a folder, the same rows are
read from ``<folder>/<benchmark>/<split>.jsonl`` instead (files with the hub
dataset's fields, e.g. a mirror made with ``Dataset.to_json``), which is how
offline machines and CI run. Countdown and 4x4 Sudoku have no hub copy: they
are generated from a fixed seed, or read from ``countdown/test.jsonl`` /
``sudoku/test.jsonl`` under that folder when those files exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .countdown import DEFAULT_SEED as COUNTDOWN_SEED
from .countdown import generate_countdown
from .sudoku import DEFAULT_SEED as SUDOKU_SEED
from .sudoku import generate_sudoku

__all__ = ["BENCHMARKS", "DATA_DIR_ENV", "HubSource", "load_benchmark", "local_data_dir"]

DATA_DIR_ENV = "TRL_LIFT_DATA_DIR"


@dataclass(frozen=True)
class HubSource:
    """Where a benchmark lives on the hub, and the local file that mirrors its evaluated split."""

    path: str
    name: str | None
    split: str
    local_file: str


BENCHMARKS: dict[str, HubSource] = {
    "aime24": HubSource("Maxwell-Jia/AIME_2024", None, "train", "aime24/test.jsonl"),
    "aime25": HubSource("math-ai/aime25", None, "test", "aime25/test.jsonl"),
    "math500": HubSource("HuggingFaceH4/MATH-500", None, "test", "math500/test.jsonl"),
    "gsm8k": HubSource("openai/gsm8k", "main", "test", "gsm8k/test.jsonl"),
    "humaneval": HubSource("openai/openai_humaneval", None, "test", "humaneval/test.jsonl"),
    "mbpp": HubSource("google-research-datasets/mbpp", "full", "test", "mbpp/test.jsonl"),
}
GENERATED = {"countdown": generate_countdown, "sudoku": generate_sudoku}
DEFAULT_SEEDS = {"countdown": COUNTDOWN_SEED, "sudoku": SUDOKU_SEED}


def local_data_dir() -> Path | None:
    """The folder named by ``TRL_LIFT_DATA_DIR``, or ``None`` when it is unset or empty."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_benchmark(benchmark: str, *, num_problems: int = 256, seed: int | None = None, **_: object):
    """The evaluated split of a benchmark, as ``DatasetDict({"test": ...})`` in hub schema.

    Used as the lm-eval tasks' ``custom_dataset`` (lm-eval also passes the
    task's metadata, which is ignored).

    Args:
        benchmark: a key of :data:`BENCHMARKS`, or ``"countdown"`` / ``"sudoku"``.
        num_problems: problems generated for Countdown / Sudoku.
        seed: generator seed for Countdown / Sudoku; ``None`` uses the
            documented default (2026 for both).

    Raises:
        KeyError: for an unknown benchmark.
        FileNotFoundError: when ``TRL_LIFT_DATA_DIR`` is set but lacks the
            benchmark's file (there is no silent fall-back to the hub).
    """
    import datasets

    local = local_data_dir()
    if benchmark in GENERATED:
        path = local / benchmark / "test.jsonl" if local else None
        if path is not None and path.exists():
            rows = _read_jsonl(path)
        else:
            seed = DEFAULT_SEEDS[benchmark] if seed is None else seed
            rows = [p.as_doc() for p in GENERATED[benchmark](num_problems, seed=seed)]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    source = BENCHMARKS[benchmark]
    if local is None:
        try:
            split = datasets.load_dataset(source.path, source.name, split=source.split)
        except (ConnectionError, OSError) as err:  # offline, or the hub unreachable, and nothing in the cache
            raise ConnectionError(
                f"Could not load {benchmark} from the hub ({source.path}; {type(err).__name__}: {err}). Offline, set "
                f"{DATA_DIR_ENV} to a folder holding {source.local_file} (the hub split as JSON lines), e.g. "
                f"{DATA_DIR_ENV}=../shared/data."
            ) from err
        return datasets.DatasetDict({"test": split})
    path = local / source.local_file
    if not path.exists():
        raise FileNotFoundError(f"{DATA_DIR_ENV}={local} has no {source.local_file} for {benchmark}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(_read_jsonl(path))})
