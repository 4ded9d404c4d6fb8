"""Peak memory of the training loss at 4k tokens: the trainer's chunked gold-token scores vs full logits.

    python benchmarks/bench_loss_memory.py                  # CPU: LLaDA's vocabulary (126,464), 4,096 tokens
    python benchmarks/bench_loss_memory.py --device cuda --hidden 4096 --layers 2

Forward and backward of the masked-diffusion loss on one 4,096-token row of a small model with
LLaDA's vocabulary, in one process: (a) :func:`trl_lift.diffusion.scoring.gold_log_probs`, which
scores only the gold token through TRL's chunked LM head (``B x L x V`` logits are never built);
(b) the naive loss, ``model(...).logits`` then float32 cross-entropy. Peak memory above the state
before each (CUDA: ``max_memory_allocated``; CPU: resident-set high-water mark, as bench_lift.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_lift import CPUMemory, CUDAMemory  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

from trl_lift.diffusion.scoring import ensure_fused_head, gold_log_probs  # noqa: E402
from trl_lift.testing import make_tiny_tokenizer, tiny_llama_config  # noqa: E402

LLADA_VOCAB = 126464


def loss_step(model, ids, noised, masked, t, how):
    targets = ids.masked_fill(~masked, -100)
    if how == "chunked":
        log_probs = gold_log_probs(model, noised, targets).log_probs  # [b, l]
        loss = -(log_probs * masked / t).sum() / masked.numel()
    else:
        logits = model(input_ids=noised).logits  # [b, l, V]
        ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none", ignore_index=-100)
        loss = (ce / t).sum() / masked.numel()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=LLADA_VOCAB)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    memory = CUDAMemory() if a.device == "cuda" else CPUMemory()
    config = tiny_llama_config(make_tiny_tokenizer("llada"), hidden_size=a.hidden, layers=a.layers, heads=4,
                               intermediate=4 * a.hidden)
    config.vocab_size, config.mask_token_id = a.vocab, a.vocab - 1
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(a.device).train()
    ensure_fused_head(model)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, a.vocab - 1, (1, a.tokens), generator=gen).to(a.device)
    t = torch.tensor([[0.5]], device=a.device)
    masked = (torch.rand(ids.shape, generator=gen) < 0.5).to(a.device)
    masked[:, : a.tokens // 8] = False  # a prompt
    noised = ids.masked_fill(masked, config.mask_token_id)
    result = {"tokens": a.tokens, "vocab": a.vocab, "hidden": a.hidden, "layers": a.layers, "device": a.device,
              "peak_mb": {}, "loss": {}}
    for how in ("chunked", "full_logits"):
        memory.reset()
        before = memory.current()
        result["loss"][how] = loss_step(model, ids, noised, masked, t, how)
        result["peak_mb"][how] = (memory.peak() - before) / 2**20
    result["memory_ratio"] = result["peak_mb"]["full_logits"] / result["peak_mb"]["chunked"]
    print(json.dumps(result, indent=2))
    print(f"peak memory of the loss at {a.tokens} tokens, vocabulary {a.vocab}: chunked "
          f"{result['peak_mb']['chunked']:.0f} MB, full logits {result['peak_mb']['full_logits']:.0f} MB "
          f"({result['memory_ratio']:.1f}x); losses {result['loss']['chunked']:.4f} / {result['loss']['full_logits']:.4f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
