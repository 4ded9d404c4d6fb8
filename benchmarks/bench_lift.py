"""Time and peak memory of LIFT training steps against vanilla masked-diffusion steps.

    python benchmarks/bench_lift.py                      # CPU, a ~13M-parameter LLaDA-format model, ~3 min on 2 cores
    python benchmarks/bench_lift.py --device cuda --hidden 2048 --layers 16 --heads 16 --intermediate 5504 --seq-len 2048

Both methods train the same model on the same batches, interleaved in one process (ABBA order, so
drift in machine load or model state falls on both), each step being the trainer's own
``training_step`` (noising, LIFT's scoring pass, forward, backward) plus the optimizer step.
Reports the ratio of median step times (also of the fastest steps, and the median of the ratios of
adjacent steps, which resist other load on a shared machine) and the ratio of peak memories: on CUDA
``torch.cuda.max_memory_allocated`` (reset before each step); on CPU the process's peak resident set
(``VmHWM``, reset through ``/proc/self/clear_refs`` after ``malloc_trim`` before each step) above the
resident set before the model was built. Targets (issue 3): time <= 1.25x, peak memory <= 1.1x.

Measured on a 2-core CPU, one thread, the default model (13.1M parameters, batch 4 x 256), LIFT
scoring only its Top-K / Bottom-K rows: time 1.20x (median; paired 1.19x), peak memory 1.00x; without
gradient checkpointing time 1.24x (paired 1.25x), peak memory 1.02x; the one-pass approximate mode
(``--approximate``) 0.99x time, 1.00x memory. About 45 s per run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Measure this checkout's trl_lift, not whatever copy is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, load_diffusion_model  # noqa: E402
from trl_lift import LIFTCallback  # noqa: E402
from trl_lift.testing import make_tiny_llada, make_tiny_tokenizer  # noqa: E402
from trl_lift import TokenWeightingCallback, VanillaMasking  # noqa: E402


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
    p.add_argument("--rounds", type=int, default=12, help="timed rounds; each runs one step of each method")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (allocator, optimizer state)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: on a shared CPU more threads spin against each other; 0 = torch's default)")
    p.add_argument("--scope", default="sequence", choices=("sequence", "batch"), help="LIFT component_scope")
    p.add_argument("--bands", type=int, default=3)
    p.add_argument("--approximate", action="store_true", help="LIFT's one-pass approximate mode")
    p.add_argument("--no-gradient-checkpointing", action="store_true", help="TRL's SFTConfig turns it on by default")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    return p.parse_args(argv)


# ---- memory probes ------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class CPUMemory:
    """Peak resident set of one step, in bytes, via Linux's resettable high-water mark."""

    def __init__(self):
        self._libc = ctypes.CDLL("libc.so.6")

    def reset(self):
        self._libc.malloc_trim(0)  # hand freed arenas back, so the peak is this step's, not a past one's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def current(self) -> int:
        return _status_kb("VmRSS") * 1024

    def peak(self) -> int:
        return _status_kb("VmHWM") * 1024


class CUDAMemory:
    def reset(self):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def current(self) -> int:
        return torch.cuda.memory_allocated()

    def peak(self) -> int:
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()


# ---- set-up -------------------------------------------------------------------------------------
def _batches(n, tokenizer, vocab_size, a, device):
    """``n`` fixed micro-batches: random ordinary tokens, the first ``prompt_len`` positions a prompt."""
    gen = torch.Generator().manual_seed(0)
    special = set(tokenizer.all_special_ids)
    ordinary = torch.tensor([i for i in range(min(len(tokenizer), vocab_size)) if i not in special])
    out = []
    for _ in range(n):
        ids = ordinary[torch.randint(len(ordinary), (a.batch_size, a.seq_len), generator=gen)]
        labels = ids.clone()
        labels[:, : a.prompt_len] = -100
        out.append({"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)})
    return out


def _use(trainer, callback):
    handler = trainer.callback_handler
    handler.callbacks = [cb for cb in handler.callbacks if not isinstance(cb, TokenWeightingCallback)] + [callback]


def main(argv=None):
    a = _parse(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device")
    memory = CUDAMemory() if a.device == "cuda" else CPUMemory()
    tmp = tempfile.mkdtemp(prefix="bench_lift_")
    tokenizer = make_tiny_tokenizer("llada")
    path = os.path.join(tmp, "model")
    make_tiny_llada(path, tokenizer, hidden_size=a.hidden, layers=a.layers, heads=a.heads, intermediate=a.intermediate)
    memory.reset()
    baseline = memory.current()  # before the model: runtime and libraries only (CPU)

    model = load_diffusion_model(path, dtype=getattr(torch, a.dtype))
    n_params = sum(p.numel() for p in model.parameters())
    args = DiffusionSFTConfig(
        output_dir=os.path.join(tmp, "out"), per_device_train_batch_size=a.batch_size, learning_rate=1e-5,
        report_to=[], save_strategy="no", use_cpu=a.device == "cpu", bf16=a.dtype == "bfloat16",
        gradient_checkpointing=not a.no_gradient_checkpointing, disable_tqdm=True,
    )
    dataset = Dataset.from_list([{"prompt": "Question:", "completion": " Answer."}] * 4)
    trainer = DiffusionSFTTrainer(model, args=args, train_dataset=dataset, processing_class=tokenizer)
    model = trainer.model.to(args.device)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    model.train()
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1
    batches = _batches(a.warmup + a.rounds, tokenizer, model.config.vocab_size, a, args.device)
    methods = {"vanilla": VanillaMasking(seed=0), "lift": LIFTCallback(component_scope=a.scope, bands=a.bands, approximate=a.approximate, seed=0)}
    for callback in methods.values():
        callback.generator.manual_seed(0)

    times = {name: [] for name in methods}
    peaks = {name: [] for name in methods}
    scored = []
    for r, batch in enumerate(batches):
        order = list(methods) if r % 2 == 0 else list(methods)[::-1]
        for name in order:
            _use(trainer, methods[name])
            memory.reset()
            if a.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.training_step(model, batch)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            if a.device == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if r >= a.warmup:
                times[name].append(elapsed)
                peaks[name].append(memory.peak() - (baseline if a.device == "cpu" else 0))
                if name == "lift":  # did this step pay the scoring pass?
                    scored.append(float(trainer._metrics["train"]["lift_share_vanilla"][-1] < 1.0))

    median = {name: statistics.median(v) for name, v in times.items()}
    peak = {name: max(v) for name, v in peaks.items()}
    result = {
        "device": torch.cuda.get_device_name() if a.device == "cuda" else f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)",
        "params": n_params, "batch": [a.batch_size, a.seq_len], "dtype": a.dtype,
        "gradient_checkpointing": args.gradient_checkpointing, "lift": methods["lift"].state()["args"],
        "median_step_s": median, "peak_memory_mb": {k: v / 2**20 for k, v in peak.items()},
        "time_ratio": median["lift"] / median["vanilla"],
        "total_time_ratio": sum(times["lift"]) / sum(times["vanilla"]),
        # Robust to other processes on a shared machine: they only ever add time.
        "min_time_ratio": min(times["lift"]) / min(times["vanilla"]),
        "paired_median_ratio": statistics.median(x / y for x, y in zip(times["lift"], times["vanilla"])),
        "peak_memory_ratio": peak["lift"] / peak["vanilla"],
        "lift_steps_with_scoring_pass": statistics.mean(scored),
        "rounds": a.rounds,
    }
    print(json.dumps(result, indent=2))
    print(f"time ratio LIFT / vanilla: {result['time_ratio']:.3f} median, {result['min_time_ratio']:.3f} best-of, "
          f"{result['paired_median_ratio']:.3f} paired (target <= 1.25); "
          f"peak memory ratio: {result['peak_memory_ratio']:.3f} (target <= 1.1)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
