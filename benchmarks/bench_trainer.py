"""The trainer's cost over a bare PyTorch loop of the same masked-diffusion objective, per method.

    python benchmarks/bench_trainer.py                  # CPU, one thread, ~13M-parameter LLaDA-format model
    python benchmarks/bench_trainer.py --device cuda --hidden 2048 --layers 16 --heads 16 --intermediate 5504

The bare loop is what a user would write by hand: ``t ~ U(eps, 1)`` per row, answer tokens masked
with probability ``t``, full logits, float32 cross-entropy on the masked tokens weighted ``1 / t``
and averaged per sequence, ``backward``, AdamW. Against it, on the same model, optimizer settings and
batches, interleaved round by round (rotating order, so drift in machine load falls on all): the
trainer's own ``training_step`` plus the optimizer step with ``vanilla``, ``lift``, ``gift`` and ``cart``.
Reports each one's median step time and peak memory over the bare loop's (memory probes as in
bench_lift.py). Targets (issue 11): vanilla <= 1.05x time; LIFT <= 1.25x time, <= 1.1x memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_lift import CPUMemory, CUDAMemory, _batches, _use  # noqa: E402
from datasets import Dataset  # noqa: E402

from trl_lift import (  # noqa: E402
    CARTWeighting,
    DiffusionSFTConfig,
    DiffusionSFTTrainer,
    GIFTMasking,
    LIFTCallback,
    VanillaMasking,
    load_diffusion_model,
)
from trl_lift.testing import make_tiny_llada, make_tiny_tokenizer  # noqa: E402

EPS = 1e-3


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--intermediate", type=int, default=1376)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--rounds", type=int, default=8, help="timed rounds; each runs one step of every variant")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def bare_step(model, optimizer, batch, mask_id, generator):
    """One step of the masked-diffusion objective written by hand (full logits, per-sequence normalisation)."""
    ids, labels = batch["input_ids"], batch["labels"]
    answer = labels != -100  # [b, l]
    t = (1 - EPS) * torch.rand(ids.size(0), generator=generator).to(ids.device) + EPS  # [b]
    masked = (torch.rand(ids.shape, generator=generator).to(ids.device) < t[:, None]) & answer
    logits = model(input_ids=ids.masked_fill(masked, mask_id), attention_mask=batch["attention_mask"]).logits
    loss_tok = F.cross_entropy(logits.float().transpose(1, 2), ids, reduction="none")  # [b, l]
    loss = ((loss_tok * masked / t[:, None]).sum(1) / answer.sum(1).clamp(min=1)).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main(argv=None):
    a = _parse(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    memory = CUDAMemory() if a.device == "cuda" else CPUMemory()
    tmp = tempfile.mkdtemp(prefix="bench_trainer_")
    tokenizer = make_tiny_tokenizer("llada")
    path = os.path.join(tmp, "model")
    make_tiny_llada(path, tokenizer, hidden_size=a.hidden, layers=a.layers, heads=a.heads, intermediate=a.intermediate)
    memory.reset()
    baseline = memory.current()
    model = load_diffusion_model(path, dtype=getattr(torch, a.dtype))
    args = DiffusionSFTConfig(
        output_dir=os.path.join(tmp, "out"), per_device_train_batch_size=a.batch_size, learning_rate=1e-5,
        report_to=[], save_strategy="no", use_cpu=a.device == "cpu", bf16=a.dtype == "bfloat16",
        gradient_checkpointing=False, disable_tqdm=True, time_epsilon=EPS,
    )
    dataset = Dataset.from_list([{"prompt": "Question:", "completion": " Answer."}] * 4)
    trainer = DiffusionSFTTrainer(model, args=args, train_dataset=dataset, processing_class=tokenizer)
    model = trainer.model.to(args.device).train()
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1
    optimizer = trainer.optimizer  # the same AdamW for every variant
    batches = _batches(a.warmup + a.rounds, tokenizer, model.config.vocab_size, a, args.device)
    methods = {"vanilla": VanillaMasking(seed=0), "lift": LIFTCallback(seed=0), "gift": GIFTMasking(seed=0),
               "cart": CARTWeighting(seed=0)}
    for callback in methods.values():
        callback.generator.manual_seed(0)
    bare_generator = torch.Generator().manual_seed(0)
    names = ["bare", *methods]
    times, peaks = {n: [] for n in names}, {n: [] for n in names}
    for r, batch in enumerate(batches):
        for name in names[r % len(names):] + names[: r % len(names)]:
            memory.reset()
            if a.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            if name == "bare":
                bare_step(model, optimizer, batch, trainer.facts.mask_token_id, bare_generator)
            else:
                _use(trainer, methods[name])
                trainer.training_step(model, batch)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if a.device == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if r >= a.warmup:
                times[name].append(elapsed)
                peaks[name].append(memory.peak() - (baseline if a.device == "cpu" else 0))
    median = {n: statistics.median(v) for n, v in times.items()}
    peak = {n: max(v) for n, v in peaks.items()}
    result = {
        "device": torch.cuda.get_device_name() if a.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "params": sum(p.numel() for p in model.parameters()), "batch": [a.batch_size, a.seq_len], "dtype": a.dtype,
        "rounds": a.rounds, "median_step_s": median, "peak_memory_mb": {n: v / 2**20 for n, v in peak.items()},
        "time_ratio": {n: median[n] / median["bare"] for n in methods},
        "min_time_ratio": {n: min(times[n]) / min(times["bare"]) for n in methods},
        "memory_ratio": {n: peak[n] / peak["bare"] for n in methods},
    }
    print(json.dumps(result, indent=2))
    print("| variant | time vs bare loop (median / best-of) | peak memory vs bare loop |")
    print("| --- | ---: | ---: |")
    for n in methods:
        print(f"| {n} | {result['time_ratio'][n]:.2f}x / {result['min_time_ratio'][n]:.2f}x | "
              f"{result['memory_ratio'][n]:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
