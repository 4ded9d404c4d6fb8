"""``trl-lift convert``: a LLaDA / Dream checkpoint as a native transformers folder, tokenizer included.

    trl-lift convert GSAI-ML/LLaDA-8B-Instruct llada-native --dtype bfloat16
    trl-lift convert Qwen/Qwen2.5-0.5B qwen-diffusion --from-autoregressive

The written folder holds a ``LlamaForCausalLM`` (LLaDA) or ``Qwen2ForCausalLM`` (Dream) with native
weight names and ``is_causal: false``, ``mask_token_id`` (and Dream's logit shift) in its config, and
no ``auto_map``: plain ``AutoModelForCausalLM.from_pretrained(folder)`` and ``AutoTokenizer`` load it
without remote code, and :func:`trl_lift.load_diffusion_model` reads its diffusion facts back.
``--peft ADAPTER`` merges a LoRA adapter into the written weights. ``--from-autoregressive`` starts a
diffusion LM from a causal Llama / Qwen2 checkpoint instead
(:func:`trl_lift.models.conversion.autoregressive_to_diffusion`): bidirectional attention, a mask token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def make_parser(prog: str = "trl-lift convert") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].strip("` "),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("source", help="hub id or folder of a LLaDA, Dream (or, with --from-autoregressive, causal) "
                        "checkpoint")
    parser.add_argument("output_dir", help="folder to write (created; an existing non-empty folder is refused)")
    parser.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: the checkpoint's)")
    parser.add_argument("--peft", help="a LoRA adapter to merge into the written weights")
    parser.add_argument("--revision", help="hub revision of the source")
    parser.add_argument("--from-autoregressive", action="store_true",
                        help="convert a causal Llama / Qwen2 LM into a diffusion LM (adds a mask token)")
    parser.add_argument("--mask-token", help="with --from-autoregressive: the mask token's text (default: the "
                        "tokenizer's mask token, else <|mask|> added)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output_dir")
    return parser


def strip_remote_code(folder: str) -> list[str]:
    """Remove ``auto_map`` (remote-code class pointers) from the JSON configs in ``folder``; returns the files."""
    changed = []
    for name in ("config.json", "tokenizer_config.json", "generation_config.json"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            data = json.load(f)
        if data.pop("auto_map", None) is not None:
            with open(path, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
            changed.append(name)
    return changed


def convert(args: argparse.Namespace) -> str:
    """Write ``args.source`` natively to ``args.output_dir``; returns the model class written."""
    if os.path.isdir(args.output_dir) and os.listdir(args.output_dir) and not args.overwrite:
        raise FileExistsError(f"{args.output_dir} exists and is not empty: choose a new folder or pass --overwrite.")
    if args.from_autoregressive:
        if args.peft:
            raise ValueError("--peft applies to diffusion checkpoints; convert first, then train an adapter.")
        from ..models.conversion import autoregressive_to_diffusion

        model, _ = autoregressive_to_diffusion(args.source, mask_token=args.mask_token, output_dir=args.output_dir,
                                               dtype=args.dtype)
    else:
        if args.mask_token:
            raise ValueError("--mask-token only applies with --from-autoregressive.")
        from ..models.loading import load_diffusion_model, load_diffusion_tokenizer

        hub = {"revision": args.revision} if args.revision else {}
        model = load_diffusion_model(args.source, adapter=args.peft, **({"dtype": args.dtype} if args.dtype else {}),
                                     **hub)
        if args.peft:
            model = model.merge_and_unload()
        model.save_pretrained(args.output_dir)
        load_diffusion_tokenizer(args.source, **hub).save_pretrained(args.output_dir)
    strip_remote_code(args.output_dir)
    return type(model).__name__


def run(argv: list[str], prog: str = "trl-lift convert") -> int:
    args = make_parser(prog).parse_args(argv)
    written = convert(args)
    print(f"trl-lift convert: wrote a native {written} and its tokenizer to {args.output_dir}; load it with "
          f"AutoModelForCausalLM.from_pretrained({args.output_dir!r}) or trl_lift.load_diffusion_model.",
          file=sys.stderr)
    return 0
