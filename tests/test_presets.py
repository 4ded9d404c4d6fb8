"""Named sampler protocols: their published values, Python and lm-eval selection, and the record in results."""

import json
import textwrap

import pytest

import lm_eval
from lm_eval.tasks import TaskManager
from trl_lift import DiffusionGenerationConfig
from trl_lift.evaluation.lm_eval_model import LIFTDiffusionLM
from trl_lift.generation.presets import PRESETS

# The published numbers, written out again so that a change to a preset is a deliberate one.
PUBLISHED = {
    "lift_paper": {"gen_length": 256, "block_length": 32, "steps": 128, "remasking": "low_confidence"},
    "llada_gsm8k": {"gen_length": 256, "block_length": 8, "steps": 256, "temperature": 0.0, "cfg_scale": 0.0},
    "llada_mbpp": {"gen_length": 512, "block_length": 32, "steps": 512, "temperature": 0.0, "cfg_scale": 0.0},
    "llada15_math": {"gen_length": 1024, "block_length": 128, "steps": 1024, "confidence_eos_eot_inf": True},
    "fast_dllm_prefix": {"gen_length": 256, "block_length": 32, "threshold": 0.9, "cache": "prefix"},
    "fast_dllm_dual": {"gen_length": 256, "block_length": 32, "threshold": 0.9, "cache": "dual"},
    "dream_gsm8k": {"schedule": "dream", "gen_length": 256, "steps": 256, "temperature": 0.1, "top_p": 0.9,
                    "alg": "entropy"},
    "dream_math": {"schedule": "dream", "gen_length": 512, "steps": 512, "temperature": 0.1, "top_p": 0.9,
                   "alg": "entropy"},
}
# Small enough for the tiny models; every other value stays the preset's.
SHRINK = {"lift_paper": "gen_length=8,block_length=4,steps=4", "llada_gsm8k": "gen_length=8,block_length=4,steps=8",
          "llada_mbpp": "gen_length=8,block_length=4,steps=4", "llada15_math": "gen_length=8,block_length=4,steps=4",
          "fast_dllm_prefix": "gen_length=8,block_length=4", "fast_dllm_dual": "gen_length=8,block_length=4",
          "dream_gsm8k": "gen_length=8,steps=4", "dream_math": "gen_length=8,steps=6"}


def test_every_preset_is_published_documented_and_valid():
    assert set(PRESETS) == set(PUBLISHED)
    for name, preset in PRESETS.items():
        assert {k: preset.values[k] for k in PUBLISHED[name]} == PUBLISHED[name]
        assert preset.source and preset.model
        assert set(preset.values) <= set(preset.notes), f"{name}: undocumented values"
        config = DiffusionGenerationConfig.preset(name)
        for key, value in preset.values.items():
            assert getattr(config, key) == value
    assert DiffusionGenerationConfig.preset("dream_math").block_length == 512  # one span
    assert DiffusionGenerationConfig.preset("dream_gsm8k").eps == 1e-3  # Dream's default, filled in
    assert DiffusionGenerationConfig.preset("lift_paper").steps_per_block == 16
    assert "temperature" not in PRESETS["lift_paper"].values  # the tasks' own (AIME samples at 0.6)


def test_overrides_replace_preset_values():
    config = DiffusionGenerationConfig.preset("dream_gsm8k", gen_length=64, steps=32, top_p=0.95)
    assert (config.gen_length, config.block_length, config.steps, config.top_p, config.alg) == (64, 64, 32, 0.95,
                                                                                                "entropy")
    llada = DiffusionGenerationConfig.preset("llada_gsm8k", block_length=32)
    assert (llada.block_length, llada.steps, llada.gen_length) == (32, 256, 256)
    with pytest.raises(ValueError, match="block_length"):
        DiffusionGenerationConfig.preset("llada_gsm8k", block_length=100)


def test_unknown_preset_names_the_presets(llada_checkpoint):
    with pytest.raises(ValueError, match=r"unknown sampler preset 'llada'; the presets are \['dream_gsm8k', "):
        DiffusionGenerationConfig.preset("llada")
    with pytest.raises(ValueError, match="fast_dllm_dual"):  # before the model is loaded
        LIFTDiffusionLM(pretrained="/nonexistent", preset="fastdllm")


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preset_tasks")
    data = folder / "data.jsonl"
    data.write_text(json.dumps({"question": "Question: what is 12 plus 30? Answer:", "answer": "42"}) + "\n")
    (folder / "tiny_preset.yaml").write_text(textwrap.dedent(f"""
        task: tiny_preset
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        doc_to_text: "{{{{question}}}}"
        output_type: generate_until
        doc_to_target: "{{{{answer}}}}"
        generation_kwargs:
          until: "."
          max_gen_toks: 16
          do_sample: false
          temperature: 0.0
        metric_list:
          - metric: exact_match
    """))
    return TaskManager(include_path=str(folder))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_round_trips_through_lm_eval(name, request, task_manager):
    family = "dream" if name.startswith("dream") else "llada"
    path = request.getfixturevalue(f"{family}_checkpoint")[0]
    results = lm_eval.simple_evaluate(model="lift_dlm", model_args=f"pretrained={path},dtype=float32,preset={name},"
                                      f"{SHRINK[name]}", tasks=["tiny_preset"], task_manager=task_manager)
    info = results["config"]["lift_dlm"]
    shrink = {k: int(v) for k, v in (item.split("=") for item in SHRINK[name].split(","))}
    assert info["preset"] == name
    assert info["sampler_model_args"] == {**PRESETS[name].values, **shrink}
    (used,) = info["sampler_configs_used"]
    sampler = used["sampler"]
    for key, value in {**PRESETS[name].values, **shrink}.items():
        assert sampler[key] == value, key  # the preset beats the task's temperature 0 (Dream's 0.1)
    if family == "dream":
        assert sampler["block_length"] == 8 and sampler["eps"] == 1e-3
    assert used["requests"] == 1 and used["generated_tokens"] == 8
