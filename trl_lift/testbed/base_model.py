"""The testbed's base checkpoint: a tiny LLaDA-format model pretrained on the domain, cached on disk.

Pretraining uses the fine-tuning objective itself (vanilla masked diffusion, ``1/t``-weighted) on
plain-text documents of the domain (:func:`~trl_lift.testbed.domain.pretraining_documents`): the
model learns valid grids and valid arithmetic before it ever sees a prompt. The checkpoint is
written under a folder named by a hash of every setting (and of the library versions), so a second
run with the same settings reuses it and a changed setting builds a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import domain

__all__ = ["CACHE_ENV", "BaseSpec", "build_base", "cache_dir"]

CACHE_ENV = "TRL_LIFT_CACHE"
DONE = "testbed_base.json"


@dataclass(frozen=True)
class BaseSpec:
    """Size and pretraining of the base model. The defaults take about 80 s on 2 CPU cores."""

    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    vocab_size: int = 320
    documents: int = 4000
    steps: int = 1000  # loss 2.6 -> 0.55 on solved grids
    batch_size: int = 32
    learning_rate: float = 3e-3
    max_length: int = 32
    seed: int = 0

    def key(self) -> str:
        """A short hash of the settings and the library versions the checkpoint depends on."""
        import tokenizers
        import torch
        import transformers
        import trl

        versions = [torch.__version__, transformers.__version__, trl.__version__, tokenizers.__version__]
        sample = domain.pretraining_documents(4, seed=self.seed + 1)  # a changed document format is a new base
        text = json.dumps([dataclasses.asdict(self), versions, sample], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """``$TRL_LIFT_CACHE``, else ``$XDG_CACHE_HOME/trl-lift`` (``~/.cache/trl-lift``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "trl-lift"


def _tokenizer_corpus(spec: BaseSpec) -> list[str]:
    pairs = [row["prompt"] + row["completion"] for task in domain.TASKS
             for row in domain.training_pairs(task, 300, seed=spec.seed + 101)]
    return pairs + domain.pretraining_documents(600, seed=spec.seed + 103)


def build_base(spec: BaseSpec = BaseSpec(), *, root: Path | None = None, log=print) -> Path:
    """The pretrained base checkpoint's folder: read from the cache, or built and cached.

    Args:
        spec: model size and pretraining settings.
        root: cache folder (default :func:`cache_dir`).
        log: where progress lines go.
    """
    from datasets import Dataset

    from ..testing import make_tiny_llada, make_tiny_tokenizer
    from ..training.config import DiffusionSFTConfig
    from ..training.trainer import DiffusionSFTTrainer

    folder = (root or cache_dir()) / f"testbed-base-{spec.key()}"
    if (folder / DONE).exists():
        log(f"base model: reusing the pretrained checkpoint in {folder}")
        return folder
    log(f"base model: pretraining a {spec.layers}-layer, {spec.hidden_size}-wide LLaDA-format model for "
        f"{spec.steps} steps on {spec.documents} domain documents (cached in {folder} for later runs)")
    started = time.perf_counter()
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer = make_tiny_tokenizer("llada", spec.vocab_size, corpus=_tokenizer_corpus(spec), individual_digits=True)
    make_tiny_llada(str(work / "init"), tokenizer, seed=spec.seed, hidden_size=spec.hidden_size, layers=spec.layers,
                    heads=spec.heads, intermediate=3 * spec.hidden_size)
    tokenizer.save_pretrained(str(work / "init"))
    config = DiffusionSFTConfig(
        output_dir=str(work / "run"), token_weighting="vanilla", max_steps=spec.steps,
        per_device_train_batch_size=spec.batch_size, learning_rate=spec.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=min(20, spec.steps // 10), weight_decay=0.0, max_length=spec.max_length,
        logging_steps=max(1, min(50, spec.steps // 10)),
        save_strategy="no", report_to="none", seed=spec.seed, use_cpu=True, bf16=False, dataset_num_proc=None,
    )
    documents = Dataset.from_dict({"text": domain.pretraining_documents(spec.documents, seed=spec.seed + 1)})
    trainer = DiffusionSFTTrainer(str(work / "init"), args=config, train_dataset=documents, processing_class=tokenizer)
    trainer.train()
    model_dir = work / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    record = {"spec": dataclasses.asdict(spec), "pretrain_seconds": time.perf_counter() - started, "losses": losses}
    for name in os.listdir(model_dir):
        shutil.move(str(model_dir / name), str(work / name))
    shutil.rmtree(work / "init")
    shutil.rmtree(work / "run", ignore_errors=True)
    shutil.rmtree(model_dir)
    (work / DONE).write_text(json.dumps(record, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(work, folder)
    log(f"base model: pretrained in {record['pretrain_seconds']:.0f} s, loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    return folder
