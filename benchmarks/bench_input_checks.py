"""Cost of the trainer's input checks: counted data-set preparation against TRL's own, and the loss guard per step.

    python benchmarks/bench_input_checks.py               # CPU, ~2 min on 2 shared cores
    python benchmarks/bench_input_checks.py --rows 50000 --repeats 3

1. Preparation: ``DiffusionSFTTrainer._prepare_dataset`` (TRL's preparation run untruncated, counted
   with pyarrow, then TRL's truncation; :mod:`trl_lift.training.data_checks`) against TRL's
   ``SFTTrainer._prepare_dataset`` alone, on the same in-memory prompt-completion data set of
   ``--rows`` examples (a quarter longer than ``max_length``), interleaved ABBA in one process.
2. Loss guard: ``FiniteLossGuard.observe`` (three tiny tensor ops, no device sync) against a training
   step of the tiny LLaDA-format model, as a fraction of the step.

Reports ratios of median times. Measured on a 2-core shared CPU, one thread, 20,000 rows, 3 ABBA
repeats: preparation 1.02x TRL's alone (7.9 s against 7.7 s); the guard 30 us per micro-batch,
0.2% of a 17 ms tiny-model step (an 8B model's step is seconds, the guard's cost is the same).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch
from datasets import Dataset, disable_progress_bars
from transformers.utils import logging as hf_logging
from trl import SFTTrainer

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer
from trl_lift.testing import make_tiny_llada, make_tiny_tokenizer
from trl_lift.training.run_checks import FiniteLossGuard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    disable_progress_bars()
    hf_logging.set_verbosity_error()
    warnings.simplefilter("ignore")

    tokenizer = make_tiny_tokenizer("llada")
    folder = tempfile.mkdtemp()
    make_tiny_llada(folder, tokenizer)
    prompts = ["What is 12 plus 30? " * (8 if i % 4 == 0 else 1) for i in range(opts.rows)]
    dataset = Dataset.from_dict({"prompt": prompts, "completion": [" The answer is 42."] * opts.rows})
    args = DiffusionSFTConfig(output_dir=tempfile.mkdtemp(), max_length=48, max_steps=20, per_device_train_batch_size=4,
                              report_to="none", save_strategy="no", logging_steps=10, dataloader_num_workers=0)
    trainer = DiffusionSFTTrainer(folder, args=args, train_dataset=dataset.select(range(8)), processing_class=tokenizer)

    def counted():
        return trainer._prepare_dataset(dataset, tokenizer, args, False, None, "train")

    def trl_only():
        return SFTTrainer._prepare_dataset(trainer, dataset, tokenizer, args, False, None, "train")

    times = {"counted": [], "trl": []}
    for _ in range(opts.repeats):  # ABBA
        for name, fn in (("counted", counted), ("trl", trl_only), ("trl", trl_only), ("counted", counted)):
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
    assert len(counted()) == len(trl_only()) == len(result)
    ratio = statistics.median(times["counted"]) / statistics.median(times["trl"])
    print(f"preparation of {opts.rows} rows: counted {statistics.median(times['counted']):.2f} s, TRL alone "
          f"{statistics.median(times['trl']):.2f} s, ratio {ratio:.2f}x")

    # The loss guard: observe() against one training step.
    model = trainer.model
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    guard, loss = FiniteLossGuard(), torch.tensor(1.0)
    step_times, observe_times = [], []
    for step in range(20):
        start = time.perf_counter()
        trainer.training_step(model, inputs)
        step_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(100):
            guard.observe(loss, step)
        observe_times.append((time.perf_counter() - start) / 100)
    print(f"loss guard: observe {statistics.median(observe_times) * 1e6:.0f} us per micro-batch, "
          f"{statistics.median(observe_times) / statistics.median(step_times):.4f} of a tiny-model training step "
          f"({statistics.median(step_times) * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
