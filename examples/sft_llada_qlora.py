# Launch (one GPU, QLoRA):   python examples/sft_llada_qlora.py --model GSAI-ML/LLaDA-8B-Instruct --dataset simplescaling/s1K --lift
# Launch (4 GPUs, ZeRO-2):   accelerate launch --num_processes 4 --use_deepspeed --zero_stage 2 examples/sft_llada_qlora.py --no-4bit --lift
"""The paper's fine-tuning setup as a TRL script: LLaDA-8B-Instruct, LoRA r=128 on q/k/v, LIFT or vanilla.

Each row of the dataset becomes a conversation: the paper's system prompt, the question, then the
reasoning and the boxed answer. Every option below is a DiffusionSFTConfig / PEFT / bitsandbytes setting.
"""

import argparse

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoTokenizer, BitsAndBytesConfig

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer

SYSTEM = (
    "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
    "Put the final answer in \\boxed{}."
)


def to_conversation(row):
    answer = row.get("solution") or row.get("answer")
    thinking = row.get("thinking_trajectories") or [row.get("reasoning", "")]
    return {
        "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["question"]}],
        "completion": [{"role": "assistant", "content": f"<reasoning>{thinking[0]}</reasoning><answer>\\boxed{{{answer}}}</answer>"}],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="GSAI-ML/LLaDA-8B-Instruct")
    parser.add_argument("--dataset", default="simplescaling/s1K")
    parser.add_argument("--lift", action="store_true", help="LIFT instead of vanilla masked-diffusion SFT")
    parser.add_argument("--no-4bit", dest="four_bit", action="store_false")
    parser.add_argument("--output-dir", default="llada-sft")
    parser.add_argument("--max-length", type=int, default=4096)
    args = parser.parse_args()

    dataset = load_dataset(args.dataset, split="train").map(to_conversation)
    dataset = dataset.select_columns(["prompt", "completion"]).train_test_split(test_size=10, seed=0)
    config = DiffusionSFTConfig(
        output_dir=args.output_dir,
        lift=args.lift,
        learning_rate=5e-6 if args.lift else 1e-5,
        lr_scheduler_type="linear",
        weight_decay=0.1,
        max_grad_norm=1.0,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
        max_length=args.max_length,
        pad_to_multiple_of=args.max_length,  # LLaDA's recipe: EOS padding to a fixed length, supervised
        num_train_epochs=3,
        eval_strategy="epoch",
        eval_timesteps=8,
        logging_steps=1,
        save_strategy="epoch",
        model_init_kwargs={"dtype": torch.bfloat16, "attn_implementation": "sdpa"},
    )
    trainer = DiffusionSFTTrainer(
        args.model,
        args=config,
        train_dataset=dataset["train"],
        eval_dataset=dataset["test"],
        processing_class=AutoTokenizer.from_pretrained(args.model),
        peft_config=LoraConfig(r=128, lora_alpha=256, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj"]),
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16) if args.four_bit else None,
    )
    trainer.train()
    trainer.save_model()


if __name__ == "__main__":
    main()
