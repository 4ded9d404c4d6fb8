"""Named sampler protocols: the decoding settings each published evaluation used, one name each.

``DiffusionGenerationConfig.preset(name, **overrides)`` in Python, ``--model_args preset=NAME`` in
lm-eval (other sampler model_args override the preset's values; the preset is recorded in
``results["config"]["lift_dlm"]``). A preset fixes the sampler only: the prompt, shots and chat
template are the harness's (``harness`` says which lm-eval flags match the source).

========================  =====================================================================
name                      source
========================  =====================================================================
``lift_paper``            LIFT (Parashar et al., ICML 2026), "Training and evaluation setup"
``llada_gsm8k``           LLaDA repository, OpenCompass config of LLaDA-8B-Instruct, GSM8K
``llada_mbpp``            LLaDA repository, OpenCompass config of LLaDA-8B-Instruct, MBPP
``llada15_math``          LLaDA repository, OpenCompass config of LLaDA-1.5, MATH
``fast_dllm_prefix``      Fast-dLLM (Wu et al. 2025), LLaDA-8B-Instruct, GSM8K 5-shot, prefix cache
``fast_dllm_dual``        Fast-dLLM (Wu et al. 2025), LLaDA-8B-Instruct, GSM8K 5-shot, dual cache
``dream_gsm8k``           Dream-org/Dream ``eval_instruct/eval.sh``, Dream-v0-Instruct-7B, gsm8k_cot
``dream_math``            Dream-org/Dream ``eval_instruct/eval.sh``, Dream-v0-Instruct-7B, minerva_math
========================  =====================================================================

Every value of every preset carries a note (``Preset.notes``) saying where it comes from, and
which values are inferences (a setting the source leaves at its code's default, or one it does not
state). The values were gathered from the public sources named; this offline machine could not
re-read them, so a discrepancy found later is a bug to report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_STATED = "stated by the source"


@dataclass(frozen=True)
class Preset:
    """One published protocol's sampler settings.

    Attributes:
        name: the preset's name.
        model: the checkpoint the source evaluated.
        source: where the settings are published.
        values: ``DiffusionGenerationConfig`` fields and their values.
        notes: for every key of ``values`` (and for settings deliberately left out), where it comes from.
        harness: the lm-eval flags that match the source's protocol, where there are such flags.
    """

    name: str
    model: str
    source: str
    values: dict
    notes: dict = field(default_factory=dict)
    harness: str = ""


_LLADA = "GSAI-ML/LLaDA-8B-Instruct"
_OPENCOMPASS = ("LLaDA repository (ML-GSAI/LLaDA), its OpenCompass evaluation configs; the prompts and shots "
                "are OpenCompass's, not reproduced by a preset")
_LLADA_GREEDY = {
    "remasking": "stated by the source (low_confidence remasking)",
    "temperature": "stated by the source (greedy)",
    "cfg_scale": "stated by the source (no classifier-free guidance)",
}
_FAST_DLLM = ("Fast-dLLM (Wu et al. 2025, 'Fast-dLLM: Training-free Acceleration of Diffusion LLM by Enabling KV "
              "Cache and Parallel Decoding'), LLaDA-8B-Instruct on GSM8K 5-shot")
_FAST_NOTES = {
    "gen_length": _STATED, "block_length": _STATED, "threshold": _STATED,
    "remasking": "inference: the confidence Fast-dLLM thresholds is LLaDA's low_confidence probability",
    "temperature": "inference: Fast-dLLM's reported runs decode greedily",
    "steps": "left out: threshold decoding runs until each block is full, so the step quota is unused",
}
_DREAM = "Dream-org/Dream-v0-Instruct-7B"
_DREAM_SOURCE = "Dream-org/Dream, eval_instruct/eval.sh (lm-eval with Dream's own sampler)"
_DREAM_NOTES = {
    "schedule": "Dream's own sampler (its diffusion_generate), not LLaDA's blocks",
    "gen_length": "stated by the source (max_new_tokens)", "steps": "stated by the source (diffusion_steps)",
    "temperature": _STATED, "top_p": _STATED, "alg": _STATED,
    "eps": "inference: not set by the source, so Dream's default 1e-3 (filled in by the config)",
    "alg_temp": "inference: not set by the source, so Dream's default None (most confident positions first)",
}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "lift_paper", _LLADA + " (+ the LoRA adapter under test)",
        "LIFT (Parashar et al., ICML 2026), 'Training and evaluation setup in the paper' "
        "(../shared/docs/lift-method.md)",
        {"gen_length": 256, "block_length": 32, "steps": 128, "remasking": "low_confidence"},
        {"gen_length": _STATED, "block_length": _STATED, "steps": _STATED, "remasking": _STATED,
         "temperature": "left out on purpose: the paper decodes at temperature 0 (the default and the lift_* "
                        "tasks' own setting) except AIME, sampled several times (the lift_aime tasks set their "
                        "temperature; a preset value would override it)"},
        "--include_path $(trl-lift tasks-dir) --tasks lift_reasoning --apply_chat_template",
    ),
    Preset(
        "llada_gsm8k", _LLADA, _OPENCOMPASS + " (GSM8K)",
        {"gen_length": 256, "block_length": 8, "steps": 256, "remasking": "low_confidence", "temperature": 0.0,
         "cfg_scale": 0.0},
        {"gen_length": _STATED, "block_length": _STATED, "steps": _STATED, **_LLADA_GREEDY},
    ),
    Preset(
        "llada_mbpp", _LLADA, _OPENCOMPASS + " (MBPP)",
        {"gen_length": 512, "block_length": 32, "steps": 512, "remasking": "low_confidence", "temperature": 0.0,
         "cfg_scale": 0.0},
        {"gen_length": _STATED, "block_length": _STATED, "steps": _STATED, **_LLADA_GREEDY},
    ),
    Preset(
        "llada15_math", "GSAI-ML/LLaDA-1.5", _OPENCOMPASS + " (LLaDA-1.5, MATH)",
        {"gen_length": 1024, "block_length": 128, "steps": 1024, "remasking": "low_confidence", "temperature": 0.0,
         "cfg_scale": 0.0, "confidence_eos_eot_inf": True},
        {"gen_length": _STATED, "block_length": _STATED, "steps": _STATED, **_LLADA_GREEDY,
         "confidence_eos_eot_inf": "stated by the source (EOS / end-of-turn proposals committed last); lift_dlm "
                                   "needs max_gen_toks >= 1024 (its default is 1024)"},
    ),
    *(Preset(f"fast_dllm_{cache}", _LLADA, f"{_FAST_DLLM}, {cache} cache",
             {"gen_length": 256, "block_length": 32, "threshold": 0.9, "cache": cache, "remasking": "low_confidence",
              "temperature": 0.0},
             {**_FAST_NOTES, "cache": f"stated by the source (the {cache}-cache configuration)"},
             "--tasks gsm8k --num_fewshot 5") for cache in ("prefix", "dual")),
    *(Preset(name, _DREAM, f"{_DREAM_SOURCE}, {task} 0-shot chat",
             {"schedule": "dream", "gen_length": length, "steps": length, "temperature": 0.1, "top_p": 0.9,
              "alg": "entropy"},
             _DREAM_NOTES, f"--tasks {task} --num_fewshot 0 --apply_chat_template")
      for name, task, length in (("dream_gsm8k", "gsm8k_cot", 256), ("dream_math", "minerva_math", 512))),
)}


def preset_values(name: str) -> dict:
    """A copy of the values of preset ``name``.

    Raises:
        ValueError: for an unknown name, listing the presets.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown sampler preset {name!r}; the presets are {sorted(PRESETS)} "
                         "(trl_lift.generation.presets documents each).")
    return dict(PRESETS[name].values)


def preset_settings(name: str, overrides: dict | None = None) -> dict:
    """The ``DiffusionGenerationConfig`` keyword arguments of preset ``name`` with ``overrides`` applied.

    Under the dream schedule ``block_length`` follows ``gen_length`` (one span) unless overridden.
    """
    settings = {**preset_values(name), **(overrides or {})}
    if settings.get("schedule") == "dream":
        settings.setdefault("block_length", settings["gen_length"])
    return settings
