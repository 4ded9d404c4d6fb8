"""Per-family facts about diffusion language models, in one table keyed by family.

Every consumer of a model (the loss, the LIFT scoring pass, the sampler, the lm-eval
likelihood, the loader) reads the mask token, the logit shift, the stop tokens, the LoRA
targets and the tokenizer class from here, through :func:`get_diffusion_facts`, so a fact is
written once. :func:`unwrap_model` and :func:`text_config` reach the model under any wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from accelerate.utils import extract_model_from_parallel


@dataclass(frozen=True)
class DiffusionFacts:
    """What the library needs to know about one family of diffusion LMs.

    Attributes:
        family: Family name (the table key), e.g. ``"llada"``, ``"dream"``, ``"bidirectional"``.
        mask_token_id: Id of the mask token fed at noised positions.
        logit_shift: ``True`` when the logits at position ``i`` predict the token at ``i + 1``
            (Dream, initialised from an autoregressive model); a masked position ``i`` is then read
            from ``logits[i - 1]``.
        eos_token_id: End-of-sequence id; also the id trailing padding is filled with when it is
            supervised.
        eot_token_id: End-of-turn id of the chat template, or ``None``.
        supervise_padding: Default for ``DiffusionSFTConfig.supervise_padding``: whether trailing
            padding is filled with EOS and trained as part of the answer (LLaDA's recipe).
        lora_target_modules: Default LoRA targets (module names of the native architecture).
        fused_head: ``True`` when the model is ``backbone + one linear head``, so gold-token
            log-probs can be computed in chunks without ``B x L x V`` logits.
        tokenizer_class: native transformers tokenizer class for checkpoints whose
            ``tokenizer_config.json`` names a remote-code class and that ship no ``tokenizer.json``.
    """

    family: str
    mask_token_id: int | None
    logit_shift: bool = False
    eos_token_id: int | None = None
    eot_token_id: int | None = None
    supervise_padding: bool = False
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    fused_head: bool = True
    tokenizer_class: str | None = None
    extra: dict = field(default_factory=dict, compare=False)


# Per-family defaults. Ids are those of the released checkpoints (../shared/docs/models.md);
# a loaded model's own config (mask_token_id, eos_token_id) overrides them.
FAMILY_FACTS: dict[str, DiffusionFacts] = {
    "llada": DiffusionFacts(
        family="llada",
        mask_token_id=126336,
        logit_shift=False,
        eos_token_id=126081,
        eot_token_id=126348,
        supervise_padding=True,
        lora_target_modules=("q_proj", "k_proj", "v_proj"),
        tokenizer_class="PreTrainedTokenizerFast",
    ),
    "dream": DiffusionFacts(
        family="dream",
        mask_token_id=151666,
        logit_shift=True,
        eos_token_id=151643,
        eot_token_id=151645,
        supervise_padding=False,
        lora_target_modules=("q_proj", "k_proj", "v_proj"),
        # DreamTokenizer (remote code) is a Qwen2 BPE tokenizer with extra special tokens.
        tokenizer_class="Qwen2Tokenizer",
    ),
    # Any native transformers decoder whose config says is_causal=False.
    "bidirectional": DiffusionFacts(family="bidirectional", mask_token_id=None),
    # Encoder masked LMs (BERT, ModernBERT): their head is more than one linear layer.
    "masked_lm": DiffusionFacts(
        family="masked_lm",
        mask_token_id=None,
        lora_target_modules=("query", "key", "value", "Wqkv"),
        fused_head=False,
    ),
}

# model_type values of checkpoints as published, mapped to their family.
MODEL_TYPE_TO_FAMILY = {"llada": "llada", "Dream": "dream", "dream": "dream"}

# Encoder-only masked LMs are bidirectional by construction.
MASKED_LM_MODEL_TYPES = {"bert", "roberta", "modernbert", "distilbert", "xlm-roberta", "deberta-v2", "electra"}


def unwrap_model(model):
    """The transformers model under any nesting of DDP, FSDP, DeepSpeed, ``torch.compile`` and PEFT wrappers.

    The one place the library unwraps: every reader of a model's facts and every caller of its
    ``forward`` signature goes through here, so each works on the model as a trainer hands it over.
    Accelerate's own unwrapping (:func:`accelerate.utils.extract_model_from_parallel`, which strips
    the parallel containers and, at the top only, ``torch.compile``) and PEFT's ``get_base_model``
    are applied until nothing changes, so nestings such as ``DDP(torch.compile(model))`` or
    ``DDP(PeftModel(model))`` unwrap too. A plain model is returned as is.
    """
    while True:
        inner = extract_model_from_parallel(model, keep_torch_compile=False)
        if hasattr(inner, "get_base_model"):  # PEFT
            inner = inner.get_base_model()
        if inner is model:
            return model
        model = inner


def text_config(model_or_config):
    """The text model's config of a model (any wrapper) or of a config (multimodal ones included)."""
    config = model_or_config
    if not hasattr(config, "to_dict"):  # a model, not a config
        config = unwrap_model(model_or_config).config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def family_of(config) -> str:
    """The facts-table key of a (text) config: its recorded family, its model type, else ``"bidirectional"``."""
    family = getattr(config, "diffusion_family", None)
    if family:
        return family
    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_TYPE_TO_FAMILY:
        return MODEL_TYPE_TO_FAMILY[model_type]
    if model_type in MASKED_LM_MODEL_TYPES:
        return "masked_lm"
    return "bidirectional"


def _first_id(value) -> int | None:
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def get_diffusion_facts(model_or_config) -> DiffusionFacts:
    """Return the facts of a loaded model (or its config), the config's own ids taking precedence.

    Works through DDP / FSDP / DeepSpeed / ``torch.compile`` / PEFT wrappers (:func:`unwrap_model`).

    Raises:
        ValueError: if no mask token id can be found (the model cannot be used as a diffusion LM).
    """
    config = text_config(model_or_config)
    base = FAMILY_FACTS[family_of(config)]
    vocab = getattr(config, "vocab_size", None)

    def own_or_family(name):
        own = _first_id(getattr(config, name, None))
        if own is not None:
            return own
        default = getattr(base, name)
        # A family id outside this model's vocabulary (a small model of the family) does not apply.
        return default if default is None or vocab is None or default < vocab else None

    facts = replace(
        base,
        mask_token_id=own_or_family("mask_token_id"),
        eos_token_id=own_or_family("eos_token_id"),
        eot_token_id=own_or_family("eot_token_id"),
        logit_shift=bool(getattr(config, "diffusion_logit_shift", base.logit_shift)),
    )
    if facts.mask_token_id is None:
        raise ValueError(
            f"The model ({getattr(config, 'model_type', '?')}) has no mask token id. Set "
            "`model.config.mask_token_id` to the id of its mask token (for a tokenizer with one: "
            "`model.config.mask_token_id = tokenizer.mask_token_id`) or load it with "
            "`trl_lift.load_diffusion_model(..., mask_token_id=...)`."
        )
    return facts


def is_bidirectional(model_or_config) -> bool:
    """``True`` when the model attends in both directions (``config.is_causal is False``, or an encoder)."""
    config = text_config(model_or_config)
    if getattr(config, "model_type", "") in MASKED_LM_MODEL_TYPES:
        return True
    return getattr(config, "is_causal", True) is False
