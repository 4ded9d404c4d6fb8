"""Throughput of sandboxed grading: HumanEval's gold solutions, samples per second, against an older grader.

    TRL_LIFT_DATA_DIR=../shared/data python benchmarks/bench_sandbox.py                 # this checkout only
    TRL_LIFT_DATA_DIR=../shared/data python benchmarks/bench_sandbox.py --against 6803c55  # and an older one

Grades every problem's canonical solution (164 samples) with this checkout's
``run_tests`` (a fresh bubblewrap sandbox per sample, the tests in this
process); with ``--against REV`` also with the fork-server grader of that git
revision (``run_program`` of its ``trl_lift/evaluation/code_execution.py``:
one forked child per program, audit-hook guards, no namespaces), loaded
from ``git show``. The two alternate in one process (ABBA rounds), so drift in
the machine's load falls on both; reports samples/s of each round and the
ratio of the medians.

Measured on a shared 2-core CPU (load average 2-5) against 6803c55 (the last fork-server grader),
three ABBA rounds: new 24.5 samples/s, old 66.3 samples/s, old/new 2.7x (other runs: 2.9x, 4.6x;
the old grader's rate swings most with the machine's load). The new grader's cost per sample is
starting bubblewrap and a fresh interpreter (~20-40 ms), partly hidden by the spare sandboxes started
while a sample is graded; the old one's a fork (~1-2 ms). About a minute per run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lm_eval_tasks" / "lift_code")]


def _old_grader(revision: str):
    """``run_program`` of ``revision``'s grader, imported from a temporary copy of its two files."""
    folder = Path(tempfile.mkdtemp(prefix="trl_lift_old_grader_"))
    for name in ("code_execution.py", "_sandbox_worker.py"):
        source = subprocess.run(
            ["git", "show", f"{revision}:trl_lift/evaluation/{name}"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        (folder / name).write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_code_execution", folder / "code_execution.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.run_program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="git revision of an older grader to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds (each grades the set twice per grader)")
    args = parser.parse_args()
    import utils  # lm_eval_tasks/lift_code/utils.py

    from trl_lift.evaluation.code_execution import run_tests

    data = Path(os.environ.get("TRL_LIFT_DATA_DIR", ROOT.parent / "shared" / "data")) / "humaneval" / "test.jsonl"
    docs = [json.loads(line) for line in data.read_text().splitlines()]
    graders = {"new": lambda d: run_tests(utils.humaneval_test(d, d["canonical_solution"])).passed}
    if args.against:
        old = _old_grader(args.against)
        graders["old"] = lambda d: (
            old(f"{d['prompt']}{d['canonical_solution']}\n\n{d['test']}\n\ncheck({d['entry_point']})\n").passed
        )
    rates: dict[str, list[float]] = {name: [] for name in graders}
    order = list(graders) + list(graders)[::-1]
    for _ in range(args.rounds):
        for name in order:
            start = time.perf_counter()
            passed = sum(graders[name](d) for d in docs)
            rates[name].append(len(docs) / (time.perf_counter() - start))
            assert passed == len(docs), f"{name}: {passed}/{len(docs)} gold solutions passed"
    for name, values in rates.items():
        print(f"{name}: {statistics.median(values):.1f} samples/s (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    if args.against:
        print(f"old/new throughput: {statistics.median(rates['old']) / statistics.median(rates['new']):.2f}x")


if __name__ == "__main__":
    main()
