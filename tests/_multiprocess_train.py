"""One training run of ``DiffusionSFTTrainer`` on a tiny checkpoint, started alone or by a launcher.

    python tests/_multiprocess_train.py CHECKPOINT OUT --method lift --per-device 2 --accumulation 2
    python -m torch.distributed.run --nproc_per_node 2 tests/_multiprocess_train.py CHECKPOINT OUT --per-device 2
    accelerate launch --config_file examples/accelerate/ddp.yaml --num_processes 2 tests/_multiprocess_train.py ...

Rank 0 writes the trained parameters and the run's facts (world size, losses) to ``OUT``
(``torch.save``), so that runs with other process counts and the same global batch can be compared.
"""

import argparse
import os

import torch
from datasets import Dataset

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer
from trl_lift.models.facts import unwrap_model


def dataset(n: int = 8) -> Dataset:
    """Prompt-completion pairs of varied lengths (so that rows differ and padding is trained)."""
    rows = [{"prompt": f"Question {i}: what is {i} plus {2 * i}?", "completion": " Answer." + " 7" * (i % 4)}
            for i in range(n)]
    return Dataset.from_list(rows)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--method", default="vanilla")
    p.add_argument("--per-device", type=int, default=2)
    p.add_argument("--accumulation", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    args = DiffusionSFTConfig(
        output_dir=os.path.join(os.path.dirname(a.out), "run"), token_weighting=a.method, max_steps=a.steps,
        per_device_train_batch_size=a.per_device, gradient_accumulation_steps=a.accumulation, learning_rate=5e-3,
        max_length=32, pad_to_max_length=True, gradient_checkpointing=False, use_cpu=True, seed=0,
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = DiffusionSFTTrainer(a.checkpoint, args=args, train_dataset=dataset())
    trainer.train()
    if trainer.accelerator.is_main_process:
        params = {name: p.detach().clone() for name, p in unwrap_model(trainer.model).named_parameters()}
        losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
        torch.save({"params": params, "losses": losses, "world_size": trainer.accelerator.num_processes,
                    "distributed_type": str(trainer.accelerator.distributed_type)}, a.out)


if __name__ == "__main__":
    main()
