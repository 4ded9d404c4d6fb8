"""``trl-lift sft``: TRL's SFT script (``trl sft``) with :class:`~trl_lift.DiffusionSFTTrainer`.

    trl-lift sft --config examples/recipes/lift_paper.yaml
    trl-lift sft --model_name_or_path GSAI-ML/LLaDA-8B-Instruct --dataset_name trl-lib/Capybara \\
        --token_weighting lift --use_peft --lora_r 128 --lora_alpha 256 --load_in_4bit --output_dir llada-lift
    accelerate launch --num_processes 4 -m trl_lift.cli sft --config examples/recipes/lift_paper.yaml

The same arguments as ``trl sft``: TRL's ``ScriptArguments`` (``--dataset_name`` ...), the trainer's
config (every ``DiffusionSFTConfig`` setting: ``--token_weighting``, ``--lift_bands`` ...), TRL's
``ModelConfig`` (``--use_peft``, ``--lora_*``, ``--load_in_4bit`` ...) and ``DatasetMixtureConfig``
(``datasets:`` in a YAML file, for mixtures), read from ``--config FILE.yaml`` and the command line
(which wins). Two additions: ``--dataset_format s1k`` (:mod:`trl_lift.training.formats`) and
``--eval_holdout N`` (N rows held out for evaluation when the data set has no test split).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, TrlParser

from ..training.config import DiffusionSFTConfig


@dataclass
class DiffusionScriptArguments(ScriptArguments):
    """TRL's ``ScriptArguments`` plus the data set's format and a held-out evaluation split."""

    dataset_format: str | None = field(
        default=None,
        metadata={"help": "Map a data set that is in no TRL format to prompt-completion first: 's1k' (s1K, the LIFT "
                  "paper's training set, in the paper's reasoning/answer format). None: the data set is used as is."},
    )
    eval_holdout: int | None = field(
        default=None,
        metadata={"help": "Hold out this many training rows (seeded by --seed) as the evaluation set when the data "
                  "set has no `dataset_test_split` split (the paper: 10 of s1K's 1000). None: no hold-out."},
    )


def make_parser(prog: str | None = None) -> TrlParser:
    """The parser of ``trl-lift sft`` (and ``examples/sft.py``)."""
    types = (DiffusionScriptArguments, DiffusionSFTConfig, ModelConfig, DatasetMixtureConfig)
    return TrlParser(types, prog=prog, description=__doc__.split("\n\n")[0])


def load_datasets(script_args: DiffusionScriptArguments, dataset_args: DatasetMixtureConfig, seed: int):
    """The data set as a ``DatasetDict``: a mixture (``datasets:``) or ``--dataset_name``, formatted, split."""
    from datasets import DatasetDict, load_dataset
    from trl import get_dataset

    from ..training.formats import apply_format

    if dataset_args.datasets:
        dataset = get_dataset(dataset_args)
    elif script_args.dataset_name:
        dataset = load_dataset(script_args.dataset_name, name=script_args.dataset_config,
                               streaming=script_args.dataset_streaming)
    else:
        raise ValueError("No data set: pass --dataset_name NAME_OR_FOLDER, or list `datasets:` in the --config file.")
    if not isinstance(dataset, dict):
        dataset = DatasetDict({script_args.dataset_train_split: dataset})
    if script_args.dataset_train_split not in dataset:
        raise ValueError(f"The data set has no split {script_args.dataset_train_split!r} (it has {sorted(dataset)}): "
                         "pass --dataset_train_split.")
    dataset = apply_format(dataset, script_args.dataset_format)
    holdout = script_args.eval_holdout
    if holdout and script_args.dataset_test_split not in dataset:
        parts = dataset[script_args.dataset_train_split].train_test_split(test_size=holdout, seed=seed)
        dataset[script_args.dataset_train_split] = parts["train"]
        dataset[script_args.dataset_test_split] = parts["test"]
    return dataset


def main(script_args, training_args, model_args, dataset_args):
    """Train as ``trl sft`` does, with the diffusion trainer; saves the model (adapter) to ``output_dir``.

    Returns the trainer, trained."""
    from trl import get_peft_config, get_quantization_config

    from ..training.trainer import DiffusionSFTTrainer

    if training_args.trust_remote_code:
        raise ValueError("trl-lift loads LLaDA and Dream natively and never runs remote code: "
                         "drop --trust_remote_code.")
    if not model_args.model_name_or_path:
        raise ValueError("No model: pass --model_name_or_path (a hub id or a local folder) or set it in --config.")
    quantization_config = get_quantization_config(model_args)
    model_init_kwargs = {"revision": model_args.model_revision, "attn_implementation": model_args.attn_implementation,
                         "dtype": model_args.dtype}
    model_init_kwargs = {k: v for k, v in model_init_kwargs.items() if v is not None}
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs

    dataset = load_datasets(script_args, dataset_args, training_args.seed)
    evaluate = training_args.eval_strategy != "no"
    if evaluate and script_args.dataset_test_split not in dataset:
        raise ValueError(f"eval_strategy is {training_args.eval_strategy!r} but the data set has no "
                         f"{script_args.dataset_test_split!r} split: pass --eval_holdout N or --eval_strategy no.")
    trainer = DiffusionSFTTrainer(
        model_args.model_name_or_path,
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=dataset[script_args.dataset_test_split] if evaluate else None,
        peft_config=get_peft_config(model_args),
        quantization_config=quantization_config,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(f"trl-lift sft: model saved to {training_args.output_dir}")
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    return trainer


def run(argv: list[str], prog: str = "trl-lift sft") -> int:
    parser = make_parser(prog)
    script_args, training_args, model_args, dataset_args = parser.parse_args_and_config(args=argv)
    main(script_args, training_args, model_args, dataset_args)
    return 0
