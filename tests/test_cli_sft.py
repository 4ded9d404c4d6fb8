"""``trl-lift sft``: every recipe parses to its stated settings and trains two steps on a tiny model."""

import json
import math
from pathlib import Path

import pytest

from trl_lift.cli import main, sft
from trl_lift.cli.sft import make_parser
from trl_lift.training.formats import REASONING_SYSTEM_PROMPT, s1k_to_prompt_completion

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "examples" / "recipes").glob("*.yaml"))


def write_s1k(folder: Path, rows: int = 14) -> Path:
    """A tiny data set with s1K's columns, as a local folder ``load_dataset`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        rows = [{"question": f"What is {i} plus 30?", "solution": str(i + 30),
                 "thinking_trajectories": [f"add {i} and 30"], "cot_type": "math"} for i in range(rows)]
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return folder


def parse(recipe, *overrides):
    return make_parser().parse_args_and_config(args=["--config", str(recipe), *overrides])


def test_recipes_are_the_papers_setup():
    assert {r.name for r in RECIPES} == {"lift_paper.yaml", "qlora_llada_24gb.yaml", "dream_lift.yaml"}
    script, config, model, _ = parse(ROOT / "examples/recipes/lift_paper.yaml")
    assert (model.model_name_or_path, script.dataset_name, script.dataset_format) == (
        "GSAI-ML/LLaDA-8B-Instruct", "simplescaling/s1K", "s1k")
    assert config.token_weighting == "lift" and config.lift and script.eval_holdout == 10
    assert (model.use_peft, model.lora_r, model.lora_alpha, model.lora_dropout) == (True, 128, 256, 0.05)
    assert model.lora_target_modules == ["q_proj", "k_proj", "v_proj"]
    assert (config.learning_rate, config.weight_decay, config.max_grad_norm, config.lr_scheduler_type.value) == (
        5e-6, 0.1, 1.0, "linear")
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps * 4 == 8  # 4 GPUs
    assert (config.max_length, config.pad_to_max_length, model.dtype) == (4096, True, "bfloat16")
    _, config, model, _ = parse(ROOT / "examples/recipes/qlora_llada_24gb.yaml")
    assert model.load_in_4bit and model.bnb_4bit_quant_type == "nf4" and config.gradient_accumulation_steps == 8
    _, config, model, _ = parse(ROOT / "examples/recipes/dream_lift.yaml", "--token_weighting", "vanilla")
    assert model.model_name_or_path == "Dream-org/Dream-v0-Instruct-7B" and config.token_weighting == "vanilla"
    for recipe in RECIPES:  # each names its launch command in its header
        assert f"--config examples/recipes/{recipe.name}" in recipe.read_text().split("\n\n")[0]


def test_s1k_rows_become_the_papers_conversation():
    row = s1k_to_prompt_completion({"question": "Q?", "solution": "42", "thinking_trajectories": ["think"]})
    assert row["prompt"] == [{"role": "system", "content": REASONING_SYSTEM_PROMPT}, {"role": "user", "content": "Q?"}]
    assert row["completion"] == [{"role": "assistant",
                                  "content": "<reasoning>\nthink\n</reasoning>\n<answer>\n\\boxed{42}\n</answer>"}]
    with pytest.raises(ValueError, match="lacks \\['solution'\\]"):
        s1k_to_prompt_completion({"question": "Q?"})


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.stem)
def test_recipe_trains_two_steps(recipe, tmp_path, llada_checkpoint, dream_checkpoint):
    model = dream_checkpoint[0] if "dream" in recipe.name else llada_checkpoint[0]
    out = tmp_path / "out"
    trainer = sft.main(*parse(recipe, "--model_name_or_path", model,
               "--dataset_name", str(write_s1k(tmp_path / "s1k")), "--output_dir", str(out), "--max_steps", "2",
               "--max_length", "256", "--dtype", "float32", "--load_in_4bit", "false",
               "--attn_implementation", "eager", "--activation_checkpointing", "false", "--eval_strategy", "no",
               "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"))
    assert trainer.state.global_step == 2 and len(trainer.train_dataset) == 14 - 10  # 10 rows held out
    assert trainer.args.token_weighting == "lift" and all(math.isfinite(h["loss"]) for h in trainer.state.log_history
                                                          if "loss" in h)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], sorted(adapter["target_modules"])) == (128, 256,
                                                                                        ["k_proj", "q_proj", "v_proj"])


def test_sft_refuses_remote_code_and_missing_data(tmp_path, llada_checkpoint):
    base = ["sft", "--model_name_or_path", llada_checkpoint[0], "--output_dir", str(tmp_path), "--report_to", "none"]
    with pytest.raises(ValueError, match="never runs remote code"):
        main([*base, "--dataset_name", str(write_s1k(tmp_path / "d")), "--trust_remote_code", "true"])
    with pytest.raises(ValueError, match="No data set"):
        main(base)
    with pytest.raises(ValueError, match="--eval_holdout N"):
        main([*base, "--dataset_name", str(write_s1k(tmp_path / "d")), "--dataset_format", "s1k",
              "--eval_strategy", "steps"])


def test_dataset_mixture_from_the_config(tmp_path):
    for name, rows in (("a", 3), ("b", 5)):
        write_s1k(tmp_path / name, rows)
    (tmp_path / "mix.yaml").write_text(
        f"datasets:\n  - path: json\n    data_files: {tmp_path / 'a' / 'train.jsonl'}\n"
        f"  - path: json\n    data_files: {tmp_path / 'b' / 'train.jsonl'}\n    columns: [question, solution]\n"
        "dataset_format: s1k\neval_holdout: 2\noutput_dir: out\n")
    script, config, _, mixture = parse(tmp_path / "mix.yaml")
    dataset = sft.load_datasets(script, mixture, seed=0)
    assert (len(dataset["train"]), len(dataset["test"])) == (6, 2)
    assert dataset["train"].column_names == ["prompt", "completion"]
