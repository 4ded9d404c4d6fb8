# Launch: python examples/quickstart.py            (embedded default: tiny LLaDA-format model, offline, CPU)
#         python examples/quickstart.py --model GSAI-ML/LLaDA-8B-Instruct --max-steps 200 --bf16
"""Fine-tune a diffusion LM with LIFT through TRL, then decode with the diffusion sampler.

With no --model, a tiny LLaDA-format checkpoint (LLaDA key names and config.json, seeded random
weights) and its tokenizer are written to a temporary folder and loaded exactly as a hub checkpoint
would be. The data are short arithmetic problems in the paper's answer format.
"""

import argparse
import os
import random
import tempfile

import torch
from datasets import Dataset

from trl_lift import (
    DiffusionGenerationConfig,
    DiffusionSFTConfig,
    DiffusionSFTTrainer,
    diffusion_generate,
    load_diffusion_model,
    load_diffusion_tokenizer,
)
from trl_lift.testing import make_tiny_llada, make_tiny_tokenizer


def arithmetic_dataset(n: int, seed: int) -> Dataset:
    """Conversational prompt-completion pairs: 'a + b' with a reasoning line and a boxed answer."""
    rng = random.Random(seed)
    prompts, completions = [], []
    for _ in range(n):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        prompts.append([{"role": "user", "content": f"What is {a} + {b}?"}])
        completions.append([{"role": "assistant", "content": f"<reasoning>{a} + {b} = {a + b}</reasoning><answer>\\boxed{{{a + b}}}</answer>"}])
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="hub id or folder; default: a tiny LLaDA-format model")
    parser.add_argument("--token-weighting", default="lift", choices=["vanilla", "lift", "gift", "cart"])
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()

    workdir = args.output_dir or tempfile.mkdtemp(prefix="trl-lift-quickstart-")
    model_path = args.model
    if model_path is None:
        model_path = os.path.join(workdir, "tiny-llada")
        make_tiny_llada(model_path, make_tiny_tokenizer("llada"))
        print(f"wrote a tiny LLaDA-format checkpoint to {model_path}")
    tokenizer = load_diffusion_tokenizer(model_path)  # never a remote-code prompt (the checkpoint has an auto_map)

    config = DiffusionSFTConfig(
        output_dir=os.path.join(workdir, "run"),
        token_weighting=args.token_weighting,
        max_steps=args.max_steps,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=2e-3 if args.model is None else 5e-6,
        lr_scheduler_type="linear",
        weight_decay=0.1,
        max_grad_norm=1.0,
        logging_steps=50,
        eval_strategy="steps",
        eval_steps=max(1, args.max_steps // 2),
        eval_timesteps=4,
        bf16=args.bf16,
        gradient_checkpointing=args.model is not None,
        save_strategy="no",
        report_to="none",
        seed=0,
    )
    trainer = DiffusionSFTTrainer(
        model_path,
        args=config,
        train_dataset=arithmetic_dataset(256, seed=0),
        eval_dataset=arithmetic_dataset(32, seed=1),
        processing_class=tokenizer,
    )
    print(f"eval loss before: {trainer.evaluate()['eval_loss']:.4f}")
    trainer.train()
    print(f"eval loss after:  {trainer.evaluate()['eval_loss']:.4f}")

    trainer.save_model(os.path.join(workdir, "final"))
    model = load_diffusion_model(os.path.join(workdir, "final")).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 3 + 4?"}], add_generation_prompt=True, tokenize=False
    )
    input_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    generation = DiffusionGenerationConfig(gen_length=32, block_length=16, steps=32)
    with torch.no_grad():
        out = diffusion_generate(model, input_ids, generation_config=generation)
    text = tokenizer.decode(out.sequences[0, input_ids.size(1):], skip_special_tokens=True)
    print(f"sample ({out.nfe} forward passes): {text!r}")
    print(f"outputs in {workdir}")


if __name__ == "__main__":
    main()
