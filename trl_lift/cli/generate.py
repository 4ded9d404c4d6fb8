"""``trl-lift generate``: answer prompts, or chat, with a diffusion LM from the shell.

    trl-lift generate GSAI-ML/LLaDA-8B-Instruct --prompt "What is 12 + 30?"
    trl-lift generate GSAI-ML/LLaDA-8B-Instruct --peft my-adapter --preset lift_paper --show-canvas
    trl-lift generate ./my-dream --prompt "Hi" --prompt "Name a prime." --gen_length 64 --steps 64

Several ``--prompt`` are decoded as one left-padded batch; without ``--prompt`` it is a chat (one turn per
line read from the terminal or standard input, the conversation kept). The sampler settings are the
flags below (every :class:`~trl_lift.DiffusionGenerationConfig` field), on top of ``--preset``; with
neither, preset ``lift_paper`` (256 tokens, blocks of 32, 128 steps). A progress bar counts the
denoising steps; ``--show-canvas`` shows the answer filling in instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from ..generation.config import SAMPLER_FIELDS, DiffusionGenerationConfig
from ..generation.presets import PRESETS

DEFAULT_PRESET = "lift_paper"
MASK_GLYPH = "\u2591"  # a shaded block per still-masked token


def _flag_type(annotation: str):
    if "bool" in annotation:
        return lambda text: {"true": True, "false": False, "1": True, "0": False}[text.lower()]
    for name, kind in (("int", int), ("float", float)):
        if name in annotation.split(" | "):
            return kind
    return str


def make_parser(prog: str = "trl-lift generate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", 1)[0].strip("` "),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("model", help="hub id or local folder of a LLaDA, Dream or native diffusion checkpoint")
    parser.add_argument("--peft", help="a LoRA adapter (folder or hub id), applied unmerged")
    parser.add_argument("--prompt", action="append", help="a prompt (repeat for a batch); none: interactive chat")
    parser.add_argument("--system", help="a system message before the conversation")
    parser.add_argument("--no-chat-template", action="store_true", help="feed the prompt as plain text")
    parser.add_argument("--preset", choices=sorted(PRESETS), help=f"a published sampler protocol (default "
                        f"{DEFAULT_PRESET} when no sampler flag is given); sampler flags override its values")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on a GPU, float32 on CPU), bfloat16, "
                        "float16 or float32")
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    parser.add_argument("--load_in_4bit", action="store_true", help="quantise the weights to 4 bits (bitsandbytes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampled decoding (temperature > 0)")
    parser.add_argument("--show-canvas", action="store_true", help="redraw the answer after every step")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    sampler = parser.add_argument_group("sampler settings (DiffusionGenerationConfig)")
    for f in dataclasses.fields(DiffusionGenerationConfig):
        if f.name in SAMPLER_FIELDS:
            sampler.add_argument(f"--{f.name}", type=_flag_type(str(f.type)), default=argparse.SUPPRESS,
                                 choices=f.metadata.get("choices"), help=f.metadata.get("help", ""))
    return parser


def sampler_config(args: argparse.Namespace) -> DiffusionGenerationConfig:
    """The flags given on top of ``--preset`` (``lift_paper`` when neither is given)."""
    given = {name: getattr(args, name) for name in SAMPLER_FIELDS if hasattr(args, name)}
    preset = args.preset or (None if given else DEFAULT_PRESET)
    config = DiffusionGenerationConfig.preset(preset, **given) if preset else DiffusionGenerationConfig(**given)
    return dataclasses.replace(config, progress=not (args.no_progress or args.show_canvas))


class Generator:
    """A loaded model and tokenizer that turn conversations into answers."""

    def __init__(self, args: argparse.Namespace):
        import torch

        from ..models.facts import get_diffusion_facts
        from ..models.loading import load_diffusion_model, load_diffusion_tokenizer

        self.torch = torch
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device != "cpu" else "float32")
        self.model = load_diffusion_model(args.model, adapter=args.peft, dtype=dtype, load_in_4bit=args.load_in_4bit,
                                          **({"device_map": {"": device}} if args.load_in_4bit else {}))
        self.model = (self.model if args.load_in_4bit else self.model.to(device)).eval()
        self.tokenizer = load_diffusion_tokenizer(args.model)
        self.facts = get_diffusion_facts(self.model)
        self.config, self.args = sampler_config(args), args
        self.stop_ids = {i for i in (self.facts.eos_token_id, self.facts.eot_token_id) if i is not None}

    def prompt_text(self, messages: list[dict]) -> str:
        if self.args.no_chat_template or not self.tokenizer.chat_template:
            return "\n".join(m["content"] for m in messages)
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def answer_ids(self, row) -> list[int]:
        ids = row.tolist()
        cut = next((i for i, t in enumerate(ids) if t in self.stop_ids), len(ids))
        return [t for t in ids[:cut] if t != self.facts.mask_token_id]

    def show(self, canvas, prompt_length: int) -> None:
        row, mask = canvas[0, prompt_length:].tolist(), self.facts.mask_token_id
        runs, text = [], ""
        for token in [*row, None]:
            if token is not None and token != mask:
                runs.append(token)
                continue
            text += self.tokenizer.decode(runs, skip_special_tokens=True) + (MASK_GLYPH if token == mask else "")
            runs = []
        redraw = "\x1b[H\x1b[J" if sys.stderr.isatty() else "\n--- step\n"
        print(redraw + text, file=sys.stderr, end="", flush=True)

    def __call__(self, conversations: list[list[dict]]) -> list[str]:
        from ..generation.sampler import diffusion_generate

        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None or self.tokenizer.pad_token_id == self.facts.mask_token_id:
            self.tokenizer.pad_token_id = self.facts.eos_token_id
        texts = [self.prompt_text(c) for c in conversations]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=self.args.no_chat_template)
        length = batch["input_ids"].shape[1]
        on_step = (lambda canvas: self.show(canvas, length)) if self.args.show_canvas else None
        generator = self.torch.Generator(device=self.model.device).manual_seed(self.args.seed)
        start = time.perf_counter()
        out = diffusion_generate(self.model, batch["input_ids"], batch["attention_mask"], self.config,
                                 generator=generator, on_step=on_step)
        seconds = time.perf_counter() - start
        if on_step is not None:
            print(file=sys.stderr)
        print(f"[{out.nfe} forward passes, {seconds:.1f} s]", file=sys.stderr)
        return [self.tokenizer.decode(self.answer_ids(row[length:]), skip_special_tokens=True).strip()
                for row in out.sequences]


def run(argv: list[str], prog: str = "trl-lift generate") -> int:
    args = make_parser(prog).parse_args(argv)
    config = sampler_config(args)  # bad settings fail before the model loads
    print(f"sampler: {', '.join(f'{k}={v}' for k, v in dataclasses.asdict(config).items() if v is not None)}",
          file=sys.stderr)
    generate = Generator(args)
    system = [{"role": "system", "content": args.system}] if args.system else []
    if args.prompt:
        for prompt, answer in zip(args.prompt, generate([[*system, {"role": "user", "content": p}]
                                                         for p in args.prompt])):
            print(answer if len(args.prompt) == 1 else f"### {prompt}\n{answer}\n")
        return 0
    history = list(system)
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            return 0
        if line.strip() in ("/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        (answer,) = generate([history])
        history.append({"role": "assistant", "content": answer})
        print(f"{'model> ' if interactive else ''}{answer}", flush=True)
