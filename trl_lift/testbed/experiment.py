"""One testbed run: fine-tune the base checkpoint with one method, then score it through lm-eval.

:func:`fine_tune` trains with :class:`~trl_lift.DiffusionSFTTrainer` exactly as a user script
would; :func:`score` runs the stock harness (``lm_eval.simple_evaluate`` with ``model="lift_dlm"``
and the project's task folder), the Python form of
``lm_eval --model lift_dlm --model_args pretrained=DIR --tasks lift_testbed``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import domain

__all__ = ["METHODS", "FineTuneResult", "FineTuneSpec", "fine_tune", "lm_eval_command", "score"]

# The study's methods: name -> DiffusionSFTConfig settings. Equal steps, batch and data for all.
METHODS: dict[str, dict] = {
    "vanilla": {"token_weighting": "vanilla"},
    "lift": {"token_weighting": "lift"},
    "lift_2": {"token_weighting": "lift", "lift_bands": 2},
    "lift_random": {"token_weighting": "lift", "lift_policy": "random"},
    "lift_reversed": {"token_weighting": "lift", "lift_policy": "reversed"},
    "lift_top_only": {"token_weighting": "lift", "lift_components": "top_only"},
    "lift_bottom_only": {"token_weighting": "lift", "lift_components": "bottom_only"},
    "lift_approximate": {"token_weighting": "lift", "lift_approximate": True},
    "gift": {"token_weighting": "gift"},
    "cart": {"token_weighting": "cart"},
}


@dataclass(frozen=True)
class FineTuneSpec:
    """Fine-tuning settings shared by every method of a comparison."""

    steps: int = 400  # vanilla, seed 0: 0.79 of the empty cells, 0.41 of the puzzles; 600 steps: 0.83, 0.53
    batch_size: int = 32
    learning_rate: float = 2e-3
    train_problems: int = 2000  # per task
    eval_problems: int = 64  # per task, held out: the evaluation loss
    # every row is padded to max_length with trained EOS (LLaDA's recipe): the canvas of lm-eval's prompt + 24
    max_length: int = 48
    logging_steps: int = 20
    data_seed: int = 1


@dataclass
class FineTuneResult:
    """What one fine-tuning run produced."""

    method: str
    seed: int
    path: Path
    log_history: list[dict]
    train_seconds: float
    tokens_per_second: float
    eval_loss: float
    scores: dict = field(default_factory=dict)  # task -> metric -> (value, stderr), filled by score()


def _rows(spec: FineTuneSpec) -> tuple[list[dict], list[dict]]:
    train = [row for task in domain.TASKS for row in domain.training_pairs(task, spec.train_problems, seed=spec.data_seed)]
    random.Random(spec.data_seed).shuffle(train)
    held = [{"prompt": domain.prompt(task, doc), "completion": domain.completion(task, doc)}
            for task in domain.TASKS for doc in domain.held_out(task, spec.eval_problems)]
    return train, held


def fine_tune(base: Path, method: str, out_dir: Path, *, seed: int = 0, spec: FineTuneSpec = FineTuneSpec(),
              progress: bool = True) -> FineTuneResult:
    """Fine-tune ``base`` with ``method`` (a key of :data:`METHODS`) and save the model to ``out_dir``."""
    from datasets import Dataset

    from ..models.loading import load_diffusion_tokenizer
    from ..training.config import DiffusionSFTConfig
    from ..training.trainer import DiffusionSFTTrainer

    train, held = _rows(spec)
    config = DiffusionSFTConfig(
        output_dir=str(out_dir / "run"), max_steps=spec.steps, per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size, learning_rate=spec.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=min(20, spec.steps // 10), weight_decay=0.0, max_length=spec.max_length,
        logging_steps=spec.logging_steps, eval_timesteps=8, pad_to_max_length=True, save_strategy="no",
        report_to="none", seed=seed,
        use_cpu=True, bf16=False, disable_tqdm=not progress, **METHODS[method],
    )
    tokenizer = load_diffusion_tokenizer(str(base))
    trainer = DiffusionSFTTrainer(str(base), args=config, train_dataset=Dataset.from_list(train),
                                  eval_dataset=Dataset.from_list(held), processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    history = list(trainer.state.log_history)
    tokens = max((entry.get("num_tokens", 0) for entry in history), default=0)
    eval_loss = trainer.evaluate()["eval_loss"]
    trainer.save_model(str(out_dir / "model"))
    tokenizer.save_pretrained(str(out_dir / "model"))
    return FineTuneResult(method, seed, out_dir / "model", history, seconds, tokens / seconds, eval_loss)


def _model_args(path: Path, batch_size: int, sampler: dict) -> str:
    settings = {"pretrained": str(path), "batch_size": batch_size, "dtype": "float32", "device": "cpu", **sampler}
    return ",".join(f"{key}={value}" for key, value in settings.items())


DEFAULT_SAMPLER = {"block_length": 24, "steps": 24}  # one token per step, lowest confidence remasked


def lm_eval_command(path: Path, limit: int | None, batch_size: int = 32, sampler: dict | None = None) -> str:
    """The shell command that gives the same scores as :func:`score`."""
    limit_arg = f" --limit {limit}" if limit else ""
    return (f"lm_eval --model lift_dlm --model_args {_model_args(path, batch_size, sampler or DEFAULT_SAMPLER)} "
            f"--tasks lift_testbed{limit_arg}")


def score(path: Path, *, limit: int | None = None, batch_size: int = 32, sampler: dict | None = None) -> tuple[dict, dict]:
    """Score a checkpoint on the testbed tasks through lm-eval.

    Returns ``(scores, record)``: ``task -> metric -> (value, stderr)``, and what ``lift_dlm`` recorded
    of the run (``results["config"]["lift_dlm"]``: forward passes, generated tokens, ``tokens_per_second``).

    Args:
        path: the checkpoint folder.
        limit: problems per task (``None``: all 256).
        batch_size: prompts per sampler call.
        sampler: ``lift_dlm`` sampler model_args (default :data:`DEFAULT_SAMPLER`).
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ..cli.tasks import include_path

    folder = include_path()
    manager = TaskManager(include_path=folder) if folder else TaskManager()
    results = lm_eval.simple_evaluate(
        model="lift_dlm", model_args=_model_args(path, batch_size, sampler or DEFAULT_SAMPLER),
        tasks=["lift_testbed"], task_manager=manager, limit=limit, log_samples=False, verbosity="ERROR",
        bootstrap_iters=1000,  # means get lm-eval's analytic standard error; nothing is bootstrapped
    )
    out: dict = {}
    for task, metrics in results["results"].items():
        name = task.removeprefix("lift_testbed_")
        if name not in domain.TASKS:
            continue
        out[name] = {key.split(",")[0]: (value, metrics.get(key.replace(",", "_stderr,", 1)))
                     for key, value in metrics.items()
                     if "," in key and "_stderr" not in key and isinstance(value, (int, float))}
    return out, results["config"].get("lift_dlm", {})
