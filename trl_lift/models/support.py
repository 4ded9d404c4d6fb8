"""The support matrix: every model family the library promises, with how it loads and what it supports.

One row per family as a user meets it. ``tests/test_support_matrix.py`` runs every row end to end
(load, train vanilla / LIFT / LoRA, save and reload, sample with each cache mode, lm-eval) and checks
each claim of the row against the live model (facts family, logit shift, KV cache, the modules LoRA
wraps, 4-bit loading); the README's "Supported models" table is :func:`support_table_markdown`,
checked against it by a test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SupportedModel:
    """One family of the support matrix.

    Attributes:
        name: what a user calls it (the README's first column).
        family: its key in :data:`trl_lift.models.facts.FAMILY_FACTS`.
        loads: how :func:`trl_lift.load_diffusion_model` loads it.
        mask_id: where its mask token id comes from.
        logit_shift: the logits at ``i`` predict ``i + 1`` (initialised from an autoregressive model).
        kv_cache: the forward takes a KV cache, so ``cache="prefix"`` / ``"dual"`` work.
        lora_targets: the modules a LoRA without ``target_modules`` wraps (the facts' defaults present).
        four_bit: loads quantised with bitsandbytes 4-bit (``load_in_4bit`` / QLoRA).
    """

    name: str
    family: str
    loads: str
    mask_id: str
    logit_shift: bool
    kv_cache: bool
    lora_targets: tuple[str, ...]
    four_bit: bool = True

    @property
    def cache_modes(self) -> tuple[str, ...]:
        """The sampler's cache modes this family runs (the others are refused, naming ``cache="none"``)."""
        return ("none", "prefix", "dual") if self.kv_cache else ("none",)


_QKV = ("q_proj", "k_proj", "v_proj")
_CONVERTED = "`autoregressive_to_diffusion`, then `{cls}` with `is_causal=False`"
_CONVERTED_MASK = "`config.mask_token_id` (the token the conversion chose or added)"

SUPPORTED_MODELS: tuple[SupportedModel, ...] = (
    SupportedModel("LLaDA", "llada", "`LlamaForCausalLM`, LLaDA's weights renamed at load",
                   "`config.mask_token_id`, else 126336", logit_shift=False, kv_cache=True, lora_targets=_QKV),
    SupportedModel("Dream", "dream", "`Qwen2ForCausalLM`", "`config.mask_token_id`, else 151666",
                   logit_shift=True, kv_cache=True, lora_targets=_QKV),
    SupportedModel("Llama (autoregressive, converted)", "bidirectional", _CONVERTED.format(cls="LlamaForCausalLM"),
                   _CONVERTED_MASK, logit_shift=True, kv_cache=True, lora_targets=_QKV),
    SupportedModel("Qwen2 (autoregressive, converted)", "bidirectional", _CONVERTED.format(cls="Qwen2ForCausalLM"),
                   _CONVERTED_MASK, logit_shift=True, kv_cache=True, lora_targets=_QKV),
    SupportedModel("BERT", "masked_lm", "`BertForMaskedLM` (`AutoModelForMaskedLM`)",
                   "the tokenizer's mask token, unless `config.mask_token_id`", logit_shift=False, kv_cache=False,
                   lora_targets=("query", "key", "value")),
    SupportedModel("ModernBERT", "masked_lm", "`ModernBertForMaskedLM` (`AutoModelForMaskedLM`)",
                   "the tokenizer's mask token, unless `config.mask_token_id`", logit_shift=False, kv_cache=False,
                   lora_targets=("Wqkv",)),
)

TABLE_HEADER = ("family", "loads as", "mask id", "logit shift", "KV cache (`prefix` / `dual`)", "LoRA targets",
                "4-bit", "tested")


def support_table_rows() -> list[tuple[str, ...]]:
    """The cells of the README's supported-models table, one tuple per :data:`SUPPORTED_MODELS` row."""
    return [(m.name, m.loads, m.mask_id, _yes_no(m.logit_shift),
             "yes" if m.kv_cache else "no: refused, use `cache=\"none\"`",
             ", ".join(f"`{t}`" for t in m.lora_targets), _yes_no(m.four_bit), _tested(m)) for m in SUPPORTED_MODELS]


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _tested(model: SupportedModel) -> str:
    """What ``tests/test_support_matrix.py`` runs for the row."""
    return (f"vanilla, LIFT, LoRA{', 4-bit' if model.four_bit else ''}; save / reload; "
            f"sampling `{'` / `'.join(model.cache_modes)}`; `lift_dlm`")


def support_table_markdown() -> str:
    """The supported-models table as markdown (what the README holds)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in support_table_rows()]
    return "\n".join(lines)
