"""Likelihood-evaluation throughput (requests/s) of ``estimate_elbo`` at ``mc_num`` 32 and 128.

    python benchmarks/bench_likelihood.py                 # CPU, one thread
    python benchmarks/bench_likelihood.py --device cuda --layers 16 --hidden 2048

Side by side in one run, on the same random LLaDA-shaped model and requests (lm-eval's loglikelihood
requests: a context and a short continuation): ``estimate_elbo`` (rows of several requests batched
together, gold-token scores through TRL's chunked head) and a plain loop written as LLaDA's published
``get_log_likelihood`` is (one request at a time, its ``mc_num`` noised copies in batches, full
logits and cross-entropy). Both use ``batch_size`` rows per forward pass.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

from trl_lift.evaluation.likelihood import ELBORequest, estimate_elbo  # noqa: E402
from trl_lift.testing import make_tiny_tokenizer, tiny_llama_config  # noqa: E402


def naive_elbo(model, request, *, mc_num, mask_id, batch_size, generator):
    """LLaDA's get_log_likelihood, in plain form: per request, ``mc_num`` copies, full logits."""
    seq = torch.tensor(request.context + request.continuation)
    prompt_len, answer_len = len(request.context), len(request.continuation)
    losses = []
    for first in range(0, mc_num, batch_size):
        n = min(batch_size, mc_num - first)
        t = torch.rand(n, generator=generator)  # [n]
        masked = torch.rand(n, answer_len, generator=generator) < t[:, None]
        x = seq.repeat(n, 1)
        x[:, prompt_len:] = x[:, prompt_len:].masked_fill(masked, mask_id)
        logits = model(input_ids=x.to(model.device)).logits[:, prompt_len:].float().cpu()
        ce = F.cross_entropy(logits.transpose(1, 2), seq[prompt_len:].repeat(n, 1), reduction="none")
        losses.append((ce * masked / t[:, None]).sum(1))
    return -torch.cat(losses).mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--context", type=int, default=96)
    p.add_argument("--continuation", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--mc-num", type=int, nargs="+", default=[32, 128])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    tokenizer = make_tiny_tokenizer("llada")
    config = tiny_llama_config(tokenizer, hidden_size=a.hidden, layers=a.layers, heads=a.heads,
                               intermediate=4 * a.hidden)
    config.mask_token_id = tokenizer.mask_token_id
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval().to(a.device)
    gen = torch.Generator().manual_seed(0)
    draw = lambda n: torch.randint(0, 300, (n,), generator=gen).tolist()  # noqa: E731
    contexts = [(draw(a.context), draw(a.continuation)) for _ in range(a.requests)]
    result = {"model": {"layers": a.layers, "hidden": a.hidden, "requests": a.requests, "context": a.context,
                        "continuation": a.continuation, "batch_size": a.batch_size, "device": a.device}, "mc_num": {}}
    with torch.no_grad():
        estimate_elbo(model, [ELBORequest(*contexts[0], torch.Generator().manual_seed(0))], mc_num=4,
                      mask_token_id=config.mask_token_id, pad_token_id=tokenizer.pad_token_id)  # warm-up
        for mc in a.mc_num:
            requests = [ELBORequest(c, x, torch.Generator().manual_seed(i)) for i, (c, x) in enumerate(contexts)]
            start = time.perf_counter()
            ours = estimate_elbo(model, requests, mc_num=mc, mask_token_id=config.mask_token_id,
                                 pad_token_id=tokenizer.pad_token_id, batch_size=a.batch_size)
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            naive = [naive_elbo(model, r, mc_num=mc, mask_id=config.mask_token_id, batch_size=a.batch_size,
                                generator=torch.Generator().manual_seed(i)) for i, r in enumerate(requests)]
            naive_s = time.perf_counter() - start
            mean_ours, mean_naive = sum(o for o, _ in ours) / len(ours), sum(naive) / len(naive)
            result["mc_num"][str(mc)] = {"requests_per_s": a.requests / ours_s,
                                         "naive_requests_per_s": a.requests / naive_s, "speedup": naive_s / ours_s,
                                         "mean_estimate": mean_ours, "naive_mean_estimate": mean_naive}
            print(f"mc_num {mc}: {a.requests / ours_s:.2f} requests/s (plain loop {a.requests / naive_s:.2f}, "
                  f"{naive_s / ours_s:.2f}x); mean estimate {mean_ours:.1f} (plain loop {mean_naive:.1f})", flush=True)
    if len(a.mc_num) == 2:
        lo, hi = (result["mc_num"][str(m)]["requests_per_s"] for m in a.mc_num)
        result["throughput_ratio"] = lo / hi
        print(f"requests/s at mc_num {a.mc_num[0]} over {a.mc_num[1]}: {lo / hi:.2f}x "
              f"(cost linear in mc_num: {a.mc_num[1] / a.mc_num[0]:.0f}x)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
