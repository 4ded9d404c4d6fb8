"""``trl-lift``: dispatch to the subcommands, ``--help`` and ``--version``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "sft": ("sft", "fine-tune a diffusion LM: TRL's SFT script with DiffusionSFTConfig (--config recipe.yaml)"),
    "generate": ("generate", "answer a prompt, or chat, with a diffusion LM (progress over denoising steps)"),
    "convert": ("convert", "write a LLaDA/Dream checkpoint as a native transformers folder"),
    "eval": ("eval", "lm-eval's command line with lift_dlm and the project's tasks (lm_eval run|ls|validate)"),
    "tasks-dir": ("tasks", "print the project's lm-eval task folder"),
}

HELP = """usage: trl-lift [--help] [--version] COMMAND [ARGS]

Diffusion language models (LLaDA, Dream) in the Hugging Face stack, with LIFT.

commands:
{commands}

examples:
  trl-lift sft --config examples/recipes/lift_paper.yaml
  accelerate launch --num_processes 4 -m trl_lift.cli sft --config examples/recipes/lift_paper.yaml
  trl-lift generate GSAI-ML/LLaDA-8B-Instruct --prompt "What is 12 + 30?" --preset lift_paper
  trl-lift convert GSAI-ML/LLaDA-8B-Instruct llada-native
  trl-lift eval --model lift_dlm --model_args pretrained=GSAI-ML/LLaDA-8B-Instruct --tasks lift_gsm8k
  trl-lift eval ls tasks

`trl-lift COMMAND --help` describes each command in full."""


def usage() -> str:
    width = max(map(len, COMMANDS))
    return HELP.format(commands="\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()))


def version() -> str:
    """``trl-lift X (torch ..., transformers ..., trl ..., lm-eval ...)``, from installed metadata only."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from .. import __version__

    parts = []
    for name in ("torch", "transformers", "trl", "peft", "lm_eval"):
        try:
            parts.append(f"{name.replace('_', '-')} {installed(name)}")
        except PackageNotFoundError:
            parts.append(f"{name.replace('_', '-')} missing")
    return f"trl-lift {__version__} ({', '.join(parts)})"


def main(argv: list[str] | None = None) -> int:
    """Run ``trl-lift argv`` (``sys.argv[1:]`` when ``None``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(version())
        return 0
    if argv[0] not in COMMANDS:
        print(f"trl-lift: unknown command {argv[0]!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    from .quiet import silence_known_noise

    silence_known_noise()
    module = importlib.import_module(f".{COMMANDS[argv[0]][0]}", __package__)
    try:
        return module.run(argv[1:], prog=f"trl-lift {argv[0]}")
    except SystemExit as stop:  # argparse's --help (0) and usage errors (2)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
