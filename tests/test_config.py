"""DiffusionSFTConfig: method settings written once, validated at construction, the reference padding recipe."""

from dataclasses import fields

import pytest
from datasets import Dataset
from peft import LoraConfig

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, LIFTCallback, get_diffusion_facts, load_diffusion_model
from trl_lift.methods import METHODS, CARTWeighting, GIFTMasking, VanillaMasking


def _config(tmp_path, **kw):
    return DiffusionSFTConfig(output_dir=str(tmp_path), report_to="none", save_strategy="no", **kw)


def test_one_registry_of_methods():
    assert METHODS == {"vanilla": VanillaMasking, "lift": LIFTCallback, "gift": GIFTMasking, "cart": CARTWeighting}
    (choices,) = [f.metadata["choices"] for f in fields(DiffusionSFTConfig) if f.name == "token_weighting"]
    assert choices == ("vanilla", "lift", "gift", "cart")


def test_method_settings_are_the_methods_own_fields():
    """Each <method>_<field> of the config mirrors the method's field: default, help and choices, written once."""
    config_fields = {f.name: f for f in fields(DiffusionSFTConfig)}
    for name, method in METHODS.items():
        for f in method.setting_fields():
            mirrored = config_fields[f"{name}_{f.name}"]
            assert mirrored.default == f.default and dict(mirrored.metadata) == dict(f.metadata)
    assert set(config_fields) >= {"lift_bands", "lift_rho_floor", "gift_scoring_mode", "cart_p", "cart_variant"}


def test_lift_shortcut_and_what_it_builds(tmp_path):
    config = _config(tmp_path, lift=True, lift_bands=2, lift_policy="reversed", time_epsilon=0.01)
    assert config.token_weighting == "lift" and config.lift is True
    assert _config(tmp_path, token_weighting="lift").lift is True  # the shortcut and the field agree
    assert _config(tmp_path).lift is False
    with pytest.raises(ValueError, match="conflicts"):
        _config(tmp_path, lift=True, token_weighting="gift")


@pytest.mark.parametrize("bad,message", [
    ({"lift_bands": 2}, "lift_bands=2 set, but token_weighting='vanilla'.*Set lift=True"),
    ({"token_weighting": "gift", "cart_p": 0.5}, "cart_p=0.5 set, but token_weighting='gift'.*token_weighting='cart'"),
    ({"lift": True, "gift_scoring_mode": "eval"}, "gift_scoring_mode='eval' set"),
    ({"lift": True, "lift_bands": 100}, r"lift_bands must be in \[2, 10\], got 100"),
    ({"lift": True, "lift_policy": "bogus"}, "lift_policy must be one of"),
    ({"token_weighting": "cart", "cart_p": 0.0}, r"cart_p must be in \(0"),
    ({"token_weighting": "bogus"}, "token_weighting must be one of"),
    ({"loss_normalization": "tokens"}, "loss_normalization must be one of"),
    ({"loss_weighting": "sqrt"}, "loss_weighting must be one of"),
    ({"time_epsilon": 1.0}, r"time_epsilon must be in \[0"),
    ({"packing": True, "packing_strategy": "wrapped"}, "use packing_strategy='bfd'"),
    ({"padding_free": True, "supervise_padding": True}, "a packed batch has none"),
    ({"pad_to_max_length": True, "max_length": None}, "pad_to_max_length needs max_length"),
    ({"pad_to_max_length": True, "max_length": 64, "pad_to_multiple_of": 8}, "drop pad_to_multiple_of"),
])
def test_bad_settings_are_refused_at_construction(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **bad)


def test_reference_padding_recipe_pads_to_max_length_and_trains_it(tmp_path, dream_checkpoint, dream_tokenizer):
    config = _config(tmp_path, pad_to_max_length=True, max_length=48, max_steps=1, per_device_train_batch_size=2)
    assert config.pad_to_multiple_of == 48 and config.supervise_padding is True
    rows = [{"prompt": "What is 2+2?", "completion": " 4"}, {"prompt": "Name a colour.", "completion": " blue, or red"}]
    trainer = DiffusionSFTTrainer(load_diffusion_model(dream_checkpoint[0]), args=config,
                                  train_dataset=Dataset.from_list(rows), processing_class=dream_tokenizer)
    assert trainer.supervise_padding is True  # Dream too, as the reference does
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert inputs["input_ids"].shape[1] == 48
    batch = trainer._diffusion_batch(inputs)
    padding = inputs["attention_mask"] == 0
    assert padding.any() and batch.answer_mask[padding].all()  # the padding is trained ...
    assert (batch.input_ids[padding] == trainer.facts.eos_token_id).all()  # ... as EOS, attended to
    assert batch.attention_mask.all()


def test_lora_targets_default_to_the_family_facts(tmp_path, llada_checkpoint, llada_tokenizer):
    rows = [{"prompt": "What is 2+2?", "completion": " 4"}] * 4
    trainer = DiffusionSFTTrainer(llada_checkpoint[0], args=_config(tmp_path, max_steps=1),
                                  train_dataset=Dataset.from_list(rows), processing_class=llada_tokenizer,
                                  peft_config=LoraConfig(r=4, lora_alpha=8))
    targets = get_diffusion_facts(trainer.model).lora_target_modules
    adapted = {name.split(".")[-2] for name, _ in trainer.model.named_modules() if name.endswith("lora_A")}
    assert adapted == set(targets) == {"q_proj", "k_proj", "v_proj"}


def test_a_passed_method_must_agree_with_the_config(tmp_path, llada_checkpoint, llada_tokenizer):
    rows = [{"prompt": "What is 2+2?", "completion": " 4"}] * 4
    with pytest.raises(ValueError, match=r"LIFTCallback\(time_epsilon=0.01\) disagrees"):
        DiffusionSFTTrainer(llada_checkpoint[0], args=_config(tmp_path, max_steps=1),
                            train_dataset=Dataset.from_list(rows), processing_class=llada_tokenizer,
                            callbacks=[LIFTCallback(time_epsilon=0.01)])
