"""Speed of the diffusion sampler's paths: exact, prefix cache, dual cache, threshold, prefix + threshold.

    python benchmarks/bench_sampler.py                 # CPU, one thread: a few minutes
    python benchmarks/bench_sampler.py --device cuda   # the same on a GPU

Builds a random LLaDA-shaped model big enough that the forward pass dominates (8 layers, d 256,
prompt 256, generation 256, block 32 by default), redraws its weights so that predictions depend on
context and many are confident (so threshold decoding has something to commit), and runs every mode
on the same prompts in one process. Reports tokens/s, forward passes (NFE), each mode's token
agreement with the exact path, and speed ratios against it. On CPU it uses one thread unless told
otherwise (``--threads``): on a busy 2-core machine two OpenMP threads spin-wait on each other and
every matmul, whatever its size, takes about the same time, which hides what the cache saves.

Agreement on this random model says how far a fast path drifts on a model whose every prediction
changes with its context (a first differing token changes the rest); a trained model drifts less.

Measured on a shared 2-core CPU, one thread, batch 1 (tokens/s, NFE, agreement with (a), speed):
(a) exact 7.0, 256, 1.00, 1x; (b) prefix 23.3, 256, 0.20, 3.3x; (c) dual 57.9, 256, 0.23, 8.2x;
(d) threshold 0.9 22.5, 77, 0.25, 3.2x; (e) prefix + threshold 55.2, 87, 0.21, 7.9x (68 s in all).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Measure this checkout's trl_lift, not whatever copy is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

from trl_lift import DiffusionGenerationConfig, diffusion_generate  # noqa: E402
from trl_lift.testing import make_tiny_tokenizer, sharpen_weights, tiny_llama_config  # noqa: E402

MODES = {
    "a exact": dict(),
    "b prefix cache": dict(cache="prefix"),
    "c dual cache": dict(cache="dual"),
    "d threshold": dict(threshold="tau"),
    "e prefix + threshold": dict(cache="prefix", threshold="tau"),
}


def build_model(args):
    """A random bidirectional Llama (LLaDA layout) with redrawn, sharpened weights; returns (model, tokenizer)."""
    tokenizer = make_tiny_tokenizer("llada")
    config = tiny_llama_config(
        tokenizer, hidden_size=args.hidden, layers=args.layers, heads=args.heads, intermediate=4 * args.hidden
    )
    config.mask_token_id = tokenizer.mask_token_id
    torch.manual_seed(args.seed)
    model = sharpen_weights(LlamaForCausalLM(config), gain=args.gain, head=args.head_scale, seed=args.seed)
    return model.to(args.device), tokenizer


def run_mode(model, ids, mask, cfg: DiffusionGenerationConfig, device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = diffusion_generate(model, ids, mask, generation_config=cfg)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--prompt-length", type=int, default=256)
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--gain", type=float, default=1.5, help="weight scale of the hidden layers")
    parser.add_argument("--head-scale", type=float, default=12.0, help="weight scale of lm_head (sharpness)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)

    model, tokenizer = build_model(args)
    model = model.to(getattr(torch, args.dtype))
    ids = torch.randint(0, 300, (args.batch, args.prompt_length), generator=torch.Generator().manual_seed(args.seed))
    mask = torch.ones_like(ids)
    for row in range(1, args.batch):  # later rows shorter, left-padded
        pad = min(args.prompt_length - 1, 16 * row)
        ids[row, :pad] = tokenizer.pad_token_id
        mask[row, :pad] = 0
    ids, mask = ids.to(args.device), mask.to(args.device)

    base = dict(gen_length=args.gen_length, block_length=args.block_length, steps=args.gen_length)
    warm = DiffusionGenerationConfig(gen_length=args.block_length, block_length=args.block_length, steps=2, cache="prefix")
    diffusion_generate(model, ids, mask, generation_config=warm)

    print(
        f"model: {args.layers} layers, d {args.hidden}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, "
        f"{args.dtype}, device {args.device}, torch threads {torch.get_num_threads()}; batch {args.batch}, "
        f"prompt {args.prompt_length}, gen {args.gen_length}, block {args.block_length}, steps {args.gen_length}, "
        f"threshold {args.threshold}"
    )
    results = {}
    for name, mode in MODES.items():
        kw = {k: (args.threshold if v == "tau" else v) for k, v in mode.items()}
        out, seconds = run_mode(model, ids, mask, DiffusionGenerationConfig(**base, **kw), args.device)
        results[name] = (out, seconds)
        print(f"  {name}: {seconds:.1f}s", flush=True)

    exact_out, exact_s = results["a exact"]
    generated = args.batch * args.gen_length
    print()
    print("| mode | tokens/s | NFE | agreement with (a) | speed vs (a) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (out, seconds) in results.items():
        agree = (out.sequences[:, -args.gen_length :] == exact_out.sequences[:, -args.gen_length :]).float().mean()
        print(f"| {name} | {generated / seconds:.1f} | {out.nfe} | {agree.item():.3f} | {exact_s / seconds:.2f}x |")


if __name__ == "__main__":
    main()
