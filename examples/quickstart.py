# Launch: python examples/quickstart.py                  (offline, CPU: about 6 minutes on 2 cores, set-up included)
#         python examples/quickstart.py --steps 600 --limit 0 --results-dir results/
"""Vanilla SFT against LIFT on a CPU, end to end, scored by the stock lm-eval harness.

1. A tiny LLaDA-format diffusion LM is pretrained on the puzzle domain (solved 4x4 Sudoku grids)
   with the masked-diffusion objective, and cached on disk.
2. From that checkpoint, vanilla SFT and LIFT are fine-tuned with the same data, steps and seed.
3. Both are scored by lm-eval (``lift_dlm`` on the project's held-out tasks ``lift_testbed``).
4. One table, and PNG plots in the results folder.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from trl_lift.testbed import domain
from trl_lift.testbed.base_model import BaseSpec, build_base
from trl_lift.testbed.experiment import FineTuneSpec, fine_tune, lm_eval_command, score
from trl_lift.testbed.report import comparison_table, plot_accuracy, plot_lift_selection, plot_training_loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="vanilla,lift", help="comma-separated; see trl_lift.testbed.experiment")
    parser.add_argument("--steps", type=int, default=FineTuneSpec.steps, help="fine-tuning steps per method")
    parser.add_argument("--pretrain-steps", type=int, default=BaseSpec.steps)
    parser.add_argument("--limit", type=int, default=128, help="held-out problems per task (0: all 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", default=None, help="default: a new temporary folder")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    results_dir = Path(args.results_dir or tempfile.mkdtemp(prefix="trl-lift-quickstart-"))
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = build_base(BaseSpec(steps=args.pretrain_steps))
    spec = FineTuneSpec(steps=args.steps)
    runs = []
    for method in args.methods.split(","):
        print(f"\n== fine-tuning {method}: {spec.steps} steps, batch {spec.batch_size}, seed {args.seed}")
        run = fine_tune(base, method, results_dir / method, seed=args.seed, spec=spec)
        print(f"== scoring {method} through lm-eval: {lm_eval_command(run.path, args.limit or None)}")
        run.scores, _ = score(run.path, limit=args.limit or None)
        runs.append(run)

    table = comparison_table(runs)
    plots = [plot_training_loss(runs, results_dir / "training_loss.png"),
             plot_accuracy(runs, results_dir / "accuracy.png")]
    plots += [plot_lift_selection(r, results_dir / f"{r.method}_selection.png") for r in runs if r.method != "vanilla"
              and any("lift_share_top" in entry for entry in r.log_history)]
    (results_dir / "comparison.md").write_text(table + "\n")
    (results_dir / "runs.json").write_text(json.dumps(
        [{"method": r.method, "seed": r.seed, "scores": r.scores, "eval_loss": r.eval_loss,
          "train_seconds": r.train_seconds, "tokens_per_second": r.tokens_per_second, "log_history": r.log_history}
         for r in runs], indent=1))

    n = args.limit or 256
    print(f"\nHeld-out accuracy through lm-eval ({n} problems per task, greedy; ± standard error), "
          f"same base, data, steps ({spec.steps}) and seed ({args.seed}):\n")
    print(table)
    print(f"\nChance for a Sudoku cell is {domain.CHANCE_CELL_ACC}. LIFT trains on fewer tokens per step than vanilla (the selected "
          "set), plus one scoring pass; this is one seed of one tiny model: benchmarks/study.py runs every "
          "method over several seeds (benchmarks/RESULTS.md).")
    print(f"\nEverything is in {results_dir}:")
    print("  comparison.md   this table;  runs.json   scores and training logs")
    for plot in plots:
        print(f"  {plot.name}")
    for r in runs:
        print(f"  {r.method}/model   the fine-tuned checkpoint (trl-lift generate / lm_eval --model lift_dlm)")
    print(f"Base checkpoint (cached): {base}")
    print(f"Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
