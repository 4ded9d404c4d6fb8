"""LLaDA-8B-architecture QLoRA on one GPU: peak memory, training tokens/s (vanilla vs LIFT), sampler tokens/s.

    python benchmarks/bench_gpu.py --json out.json                          # one H100/H200: a few minutes
    python benchmarks/bench_gpu.py --size tiny --device cpu --no-4bit       # smoke run of the same code on a CPU

A randomly initialised model of LLaDA-8B's architecture (d 4096, 32 layers, 32 heads, MLP 12288,
vocabulary 126,464; no network needed) is written once to a temporary folder in bf16 and loaded
through :func:`trl_lift.load_diffusion_model` in 4-bit NF4, then trained by ``DiffusionSFTTrainer``
with LoRA r=128 on q/k/v (the paper's adapter) and gradient checkpointing, one sequence of
``L`` tokens per step (every sequence padded to ``L``, the reference recipe). For each ``L``
(2048, 4096): peak GPU memory of a step (``max_memory_allocated``; target < 20 GB at 4096) and
training tokens/s of vanilla and LIFT, interleaved on the same batches. Then the sampler's modes
(bench_sampler.py's) at gen 256, block 32, a batch of 8 prompts: tokens/s and NFE.
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
from bench_lift import _batches, _use  # noqa: E402
from bench_sampler import MODES  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import BitsAndBytesConfig, LlamaForCausalLM  # noqa: E402

from trl_lift import (  # noqa: E402
    DiffusionGenerationConfig,
    DiffusionSFTConfig,
    DiffusionSFTTrainer,
    LIFTCallback,
    VanillaMasking,
    diffusion_generate,
    load_diffusion_model,
)
from trl_lift.testing import make_tiny_tokenizer, tiny_llama_config  # noqa: E402

SIZES = {  # hidden, layers, heads, intermediate, vocab, sequence lengths, gen, block
    "8b": (4096, 32, 32, 12288, 126464, (2048, 4096), 256, 32),
    "tiny": (64, 2, 4, 128, 448, (64, 128), 32, 8),
}


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def build(a, tokenizer, folder):
    hidden, layers, heads, intermediate, vocab, *_ = SIZES[a.size]
    config = tiny_llama_config(tokenizer, hidden_size=hidden, layers=layers, heads=heads, intermediate=intermediate)
    config.vocab_size, config.mask_token_id = vocab, tokenizer.mask_token_id
    torch.manual_seed(0)
    with torch.device(a.device):
        random = LlamaForCausalLM(config).to(torch.bfloat16)
    random.save_pretrained(folder)
    del random
    if a.device == "cuda":
        torch.cuda.empty_cache()
    quantization = None
    if a.four_bit:
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
    device_map = {"": 0} if a.device == "cuda" else None
    return load_diffusion_model(folder, dtype=torch.bfloat16, quantization_config=quantization, device_map=device_map)


def train_figures(a, model, tokenizer, tmp):
    args = DiffusionSFTConfig(
        output_dir=os.path.join(tmp, "out"), per_device_train_batch_size=1, learning_rate=1e-5, report_to=[],
        save_strategy="no", use_cpu=a.device == "cpu", bf16=True, gradient_checkpointing=True, disable_tqdm=True,
    )
    trainer = DiffusionSFTTrainer(
        model, args=args, train_dataset=Dataset.from_list([{"prompt": "Q:", "completion": " A."}] * 2),
        processing_class=tokenizer, peft_config=LoraConfig(r=128, lora_alpha=256, target_modules=["q_proj", "k_proj", "v_proj"]),
    )
    model = trainer.model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1
    methods = {"vanilla": VanillaMasking(seed=0), "lift": LIFTCallback(seed=0)}
    for callback in methods.values():
        callback.generator.manual_seed(0)
    figures = {}
    for length in SIZES[a.size][5]:
        shape = argparse.Namespace(batch_size=1, seq_len=length, prompt_len=length // 8)
        batches = _batches(1 + a.steps, tokenizer, model.config.vocab_size, shape, a.device)
        times, peaks = {n: [] for n in methods}, {n: 0 for n in methods}
        for r, batch in enumerate(batches):
            for name in (list(methods) if r % 2 == 0 else list(methods)[::-1]):
                _use(trainer, methods[name])
                if a.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                _sync(a.device)
                start = time.perf_counter()
                trainer.training_step(model, batch)
                trainer.optimizer.step()
                trainer.optimizer.zero_grad(set_to_none=True)
                _sync(a.device)
                if r:  # the first round warms up
                    times[name].append(time.perf_counter() - start)
                if a.device == "cuda":
                    peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated() / 2**30)
        figures[length] = {
            "tokens_per_s": {n: length / statistics.median(v) for n, v in times.items()},
            "peak_memory_gib": peaks,
            "lift_time_ratio": statistics.median(times["lift"]) / statistics.median(times["vanilla"]),
        }
        print(f"L={length}: tokens/s vanilla {figures[length]['tokens_per_s']['vanilla']:.0f}, LIFT "
              f"{figures[length]['tokens_per_s']['lift']:.0f} ({figures[length]['lift_time_ratio']:.2f}x time); "
              f"peak memory vanilla {peaks['vanilla']:.1f} GiB, LIFT {peaks['lift']:.1f} GiB", flush=True)
    return model, figures


def sampler_figures(a, model, tokenizer):
    *_, gen, block = SIZES[a.size]
    model.eval()
    ids = torch.randint(0, 300, (a.sampler_batch, a.prompt_length), generator=torch.Generator().manual_seed(0))
    ids, mask = ids.to(a.device), torch.ones_like(ids).to(a.device)
    base = {"gen_length": gen, "block_length": block, "steps": gen}
    diffusion_generate(model, ids, mask, generation_config=DiffusionGenerationConfig(
        gen_length=block, block_length=block, steps=2, cache="prefix"))  # warm-up
    figures = {}
    for name, mode in MODES.items():
        kw = {k: (0.9 if v == "tau" else v) for k, v in mode.items()}
        _sync(a.device)
        start = time.perf_counter()
        with torch.no_grad():
            out = diffusion_generate(model, ids, mask, generation_config=DiffusionGenerationConfig(**base, **kw))
        _sync(a.device)
        seconds = time.perf_counter() - start
        figures[name] = {"tokens_per_s": a.sampler_batch * gen / seconds, "nfe": out.nfe, "seconds": seconds}
        print(f"sampler {name}: {figures[name]['tokens_per_s']:.0f} tokens/s, NFE {out.nfe}", flush=True)
    return figures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="8b", choices=list(SIZES))
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--no-4bit", dest="four_bit", action="store_false", help="bf16 weights (a CPU smoke run)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per method and length")
    p.add_argument("--sampler-batch", type=int, default=8)
    p.add_argument("--prompt-length", type=int, default=128)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device (use --size tiny --device cpu --no-4bit for a smoke run)")
    tokenizer = make_tiny_tokenizer("llada")
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        start = time.perf_counter()
        model = build(a, tokenizer, os.path.join(tmp, "model"))
        print(f"model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B stored parameters, 4-bit {a.four_bit}, "
              f"built and loaded in {time.perf_counter() - start:.0f} s", flush=True)
        model, training = train_figures(a, model, tokenizer, tmp)
        sampling = sampler_figures(a, model, tokenizer)
    result = {"device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu", "size": a.size,
              "four_bit": a.four_bit, "training": training, "sampler": sampling}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
