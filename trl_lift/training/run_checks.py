"""Checks of a training run: a checkpoint complete enough to resume from, and a loss that stays finite.

``Trainer`` resumes from a checkpoint without ``optimizer.pt`` or ``scheduler.pt`` by restarting the
optimizer and the learning-rate schedule without a word, and logs a NaN loss as ``0.0`` (its
``logging_nan_inf_filter``) while the weights are dead. :func:`check_resume_checkpoint` refuses the
first before anything loads; :class:`FiniteLossGuard` stops the second, naming the step.
"""

from __future__ import annotations

import os
import warnings

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ..models.checkpoints import check_whole, read_json

OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
SCHEDULER_FILE = "scheduler.pt"
TRAINER_STATE_FILE = "trainer_state.json"


def _has_optimizer(checkpoint: str) -> bool:
    if any(os.path.isfile(os.path.join(checkpoint, name)) for name in OPTIMIZER_FILES):
        return True
    # FSDP's sharded optimizer state is a folder named optimizer_*.
    return any(name.startswith("optimizer") and os.path.isdir(os.path.join(checkpoint, name))
               for name in os.listdir(checkpoint))


def check_resume_checkpoint(resume_from_checkpoint, args, *, deepspeed: bool = False) -> None:
    """Refuse to resume from a checkpoint that would silently restart part of the training state.

    Args:
        resume_from_checkpoint: ``Trainer.train``'s argument: a folder, ``True`` (the last checkpoint
            of ``args.output_dir``), or ``None`` / ``False`` (nothing to check).
        args: the training arguments (``output_dir``, ``world_size``, ``process_index``).
        deepspeed: DeepSpeed keeps the optimizer (and its scheduler) in its own folders; only the rest is checked.

    Raises:
        FileNotFoundError: for a checkpoint folder that does not exist, or one missing ``trainer_state.json``,
            the optimizer state or ``scheduler.pt``.
        ValueError: for a truncated or corrupt state file.

    Warns:
        UserWarning: for missing RNG state (the run continues, but not as an uninterrupted one would).
    """
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return
    if resume_from_checkpoint is True:
        if not os.path.isdir(args.output_dir):
            return  # Trainer's own error names the output folder
        resume_from_checkpoint = get_last_checkpoint(args.output_dir)
        if resume_from_checkpoint is None:
            return
    checkpoint = os.fspath(resume_from_checkpoint)
    if not os.path.isdir(checkpoint):
        raise FileNotFoundError(f"resume_from_checkpoint={checkpoint!r} is not a folder "
                                f"({os.path.abspath(checkpoint)} does not exist).")
    fresh = (f"To continue from these weights with a fresh optimizer and schedule on purpose, load the checkpoint as "
             f"the model instead, DiffusionSFTTrainer({checkpoint!r}, ...), and train without resume_from_checkpoint.")
    missing = []
    if not os.path.isfile(os.path.join(checkpoint, TRAINER_STATE_FILE)):
        missing.append(TRAINER_STATE_FILE)
    if not deepspeed and not _has_optimizer(checkpoint):
        missing.append(OPTIMIZER_FILES[0])
    if not deepspeed and not os.path.isfile(os.path.join(checkpoint, SCHEDULER_FILE)):
        missing.append(SCHEDULER_FILE)
    if missing:
        raise FileNotFoundError(
            f"The checkpoint {checkpoint} has no {' / '.join(missing)} (saved with save_only_model=True, or copied "
            "in part): resuming from it would restart the optimizer's moments and the learning-rate schedule (and "
            "the step count and the noise generator, which live in trainer_state.json) without a word. Resume from "
            f"a complete checkpoint. {fresh}"
        )
    read_json(os.path.join(checkpoint, TRAINER_STATE_FILE))
    for name in (*OPTIMIZER_FILES, SCHEDULER_FILE):
        if os.path.isfile(os.path.join(checkpoint, name)):
            check_whole(os.path.join(checkpoint, name))
    rng = "rng_state.pth" if args.world_size <= 1 else f"rng_state_{args.process_index}.pth"
    if not os.path.isfile(os.path.join(checkpoint, rng)):
        warnings.warn(
            f"The checkpoint {checkpoint} has no {rng} (saved by a run with another number of processes, or copied in "
            "part): the run resumes, but dropout and other random draws will differ from an uninterrupted run. "
            "Resume with the number of processes that saved it for an exact continuation.", UserWarning, stacklevel=3,
        )
    else:
        check_whole(os.path.join(checkpoint, rng))


def warn_untrained_padding(method, supervise_padding: bool) -> None:
    """Warn when padding is to be supervised but the method never trains it (GIFT).

    Such a model never learns to fill the positions past its answer with EOS, and a fixed-length
    canvas longer than the answer (LLaDA's sampler, ``lift_dlm``) then runs on past the end.
    """
    if supervise_padding and not method.trains_padding:
        warnings.warn(
            f"supervise_padding is on (LLaDA's default, and pad_to_max_length's), but {method.name} excludes the "
            "trailing padding from its masking and its loss (its published recipe): the model never learns to write "
            "EOS after its answer, so a fixed-length sampler canvas longer than the answer reads on past it (on the "
            "CPU testbed every GIFT model wrote a fifth Sudoku row: benchmarks/RESULTS.md). Decode on a canvas no "
            "longer than the answers, or stop at a delimiter (supervise_padding=False silences this, and takes the "
            "padding out of attention as well).",
            UserWarning, stacklevel=3,
        )


class FiniteLossGuard(TrainerCallback):
    """Stop training when the loss or the trainable weights stop being finite, naming the step.

    The trainer hands every training micro-batch's loss to :meth:`observe`, which records the first
    step with a non-finite loss on the device (no synchronisation). The record, and the finiteness of
    the trainable weights, are read at the steps that log, evaluate or save, and at the last step:
    one device sync at a step that syncs to log anyway. A run that goes non-finite is therefore
    stopped at the first such step at or after the event, before anything is logged, evaluated or
    saved. Large but finite losses are not refused: any threshold would be a guess.
    """

    def __init__(self, accelerator=None):
        self.accelerator = accelerator
        self._first_bad_step = None  # 0-d long tensor on the loss's device; -1 = none yet

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Record ``step`` if ``loss`` is not finite and no earlier step was (asynchronously)."""
        loss = loss.detach()
        if self._first_bad_step is None or self._first_bad_step.device != loss.device:
            self._first_bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss).all()
        self._first_bad_step = torch.where(bad & (self._first_bad_step < 0), step, self._first_bad_step)

    def _dead_weights(self, model) -> bool:
        flags = [torch.isfinite(p).all() for p in model.parameters() if p.requires_grad and p.numel()]
        return bool(flags) and not bool(torch.stack([f.to(flags[0].device) for f in flags]).all())

    def check(self, args, state, model=None) -> None:
        """Raise if a non-finite loss was observed, or the trainable weights hold NaN / inf."""
        first = -1 if self._first_bad_step is None else self._first_bad_step
        dead = model is not None and self._dead_weights(model)
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            device = self.accelerator.device
            first = torch.as_tensor(first, device=device).long().reshape(1)
            flags = torch.cat([first, torch.tensor([int(dead)], device=device)])
            gathered = self.accelerator.gather(flags).reshape(-1, 2)
            bad_steps = gathered[:, 0][gathered[:, 0] >= 0]
            first = int(bad_steps.min()) if bad_steps.numel() else -1
            dead = bool(gathered[:, 1].any())
        first = int(first)
        if first < 0 and not dead:
            return
        what = (f"the training loss was not finite (NaN or inf) at step {first}" if first >= 0
                else "the trainable weights hold NaN or inf")
        if first >= 0 and dead:
            what += " and the trainable weights now hold NaN or inf"
        last = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        resume = f" The last checkpoint is {last}." if last else ""
        raise RuntimeError(
            f"Training stopped at step {state.global_step}: {what}, so every later update is lost. Nothing was logged "
            f"or saved after it.{resume} Usual causes: a learning rate too high, fp16 overflow (train in bf16 or "
            "float32), gradient clipping off (max_grad_norm=0), or a broken model or data set. Lower learning_rate "
            "and resume from a checkpoint written before the step named."
        )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_log or control.should_save or control.should_evaluate or control.should_training_stop:
            self.check(args, state, model)

    on_epoch_end = on_step_end  # epoch-end logging, evaluation and saving

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.check(args, state, model)
