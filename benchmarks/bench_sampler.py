"""Speed of the diffusion sampler's paths: exact, prefix cache, dual cache, threshold, prefix + threshold.

    python benchmarks/bench_sampler.py                 # CPU, one thread: a few minutes
    python benchmarks/bench_sampler.py --device cuda   # the same on a GPU
    python benchmarks/bench_sampler.py --json out.json # also write the figures

Every mode is also timed against (r), LLaDA's published ``generate`` as its repository writes it
(full canvas, one full pass per step, ``torch.topk`` per row over the block's confidences, softmax in
the logits' dtype), re-implemented here from ../shared/docs/models.md: the exact path must give its
tokens (up to topk's unspecified tie order) at >= 2x its speed, the fast paths >= 8x.

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
import json
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


def llada_generate(model, prompt, attention_mask, *, steps, gen_length, block_length, mask_id):
    """LLaDA's published ``generate`` at temperature 0, low-confidence remasking, no CFG (see the docstring)."""
    batch, prompt_length = prompt.shape
    x = torch.full((batch, prompt_length + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :prompt_length] = prompt
    attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, gen_length)], dim=1)
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for b in range(num_blocks):
        start, end = prompt_length + b * block_length, prompt_length + (b + 1) * block_length
        masked = (x[:, start:end] == mask_id).sum(1, keepdim=True)  # [B, 1]
        quota = masked.expand(batch, steps_per_block) // steps_per_block
        quota = quota + (torch.arange(steps_per_block, device=x.device) < masked % steps_per_block).long()
        for i in range(steps_per_block):
            mask_index = x == mask_id
            logits = model(x, attention_mask=attention_mask).logits
            x0 = logits.argmax(-1)
            p = torch.softmax(logits, dim=-1)
            confidence = p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            confidence[:, end:] = -torch.inf
            confidence = torch.where(mask_index, confidence, -torch.inf)
            transfer = torch.zeros_like(x, dtype=torch.bool)
            for j in range(batch):
                _, chosen = torch.topk(confidence[j], k=int(quota[j, i]))
                transfer[j, chosen] = True
            x[transfer] = x0[transfer]
    return x


def run_reference(model, ids, mask, args, mask_id):
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        out = llada_generate(model, ids, mask, steps=args.gen_length, gen_length=args.gen_length,
                             block_length=args.block_length, mask_id=mask_id)
    if args.device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def run_mode(model, ids, mask, cfg: DiffusionGenerationConfig, device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = diffusion_generate(model, ids, mask, generation_config=cfg)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(argv=None):
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
    parser.add_argument("--no-reference", action="store_true", help="skip LLaDA's generate (r)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
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

    reference = None
    if not args.no_reference:
        reference = run_reference(model, ids, mask, args, tokenizer.mask_token_id)
        print(f"  r LLaDA generate: {reference[1]:.1f}s", flush=True)

    exact_out, exact_s = results["a exact"]
    generated = args.batch * args.gen_length
    figures = {"model": {"layers": args.layers, "hidden": args.hidden, "dtype": args.dtype, "batch": args.batch,
                         "prompt": args.prompt_length, "gen": args.gen_length, "block": args.block_length,
                         "threshold": args.threshold, "device": args.device, "threads": torch.get_num_threads()},
               "modes": {}}
    if reference is not None:
        ref_out, ref_s = reference
        same = (exact_out.sequences == ref_out).float().mean().item()
        figures["reference"] = {"tokens_per_s": generated / ref_s, "seconds": ref_s, "nfe": args.gen_length,
                                "exact_agreement": same}
    print()
    print("| mode | tokens/s | NFE | agreement with (a) | speed vs (a) | speed vs (r) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    if reference is not None:
        print(f"| r LLaDA generate | {generated / ref_s:.1f} | {args.gen_length} | {same:.3f} | {exact_s / ref_s:.2f}x | 1x |")
    for name, (out, seconds) in results.items():
        agree = (out.sequences[:, -args.gen_length :] == exact_out.sequences[:, -args.gen_length :]).float().mean()
        vs_ref = f"{ref_s / seconds:.2f}x" if reference is not None else "-"
        print(f"| {name} | {generated / seconds:.1f} | {out.nfe} | {agree.item():.3f} | {exact_s / seconds:.2f}x | {vs_ref} |")
        figures["modes"][name] = {"tokens_per_s": generated / seconds, "seconds": seconds, "nfe": out.nfe,
                                  "agreement": agree.item(), "speed_vs_exact": exact_s / seconds,
                                  "speed_vs_reference": ref_s / seconds if reference is not None else None}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return figures

if __name__ == "__main__":
    main()
