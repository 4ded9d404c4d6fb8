"""Bad inputs to loading, sampling and lift_dlm: each refused (or warned about) before any work, with a message."""

import json
import logging
import os
import shutil

import pytest
import torch
from lm_eval.api.instance import Instance
from peft import LoraConfig, get_peft_model

from trl_lift import DiffusionGenerationConfig, diffusion_generate, load_diffusion_model, load_diffusion_tokenizer
from trl_lift.evaluation.likelihood import ELBORequest, estimate_elbo
from trl_lift.evaluation.lm_eval_model import LIFTDiffusionLM
from trl_lift.testing import make_tiny_llada

SAMPLER = DiffusionGenerationConfig(gen_length=4, block_length=4, steps=4)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


# ---- paths and files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["/no/such/checkpoint", "./out/checkpoint-5", "runs/llada/checkpoint-5", "~/no-such-model"])
def test_a_path_that_does_not_exist_is_named_not_sent_to_the_hub(name):
    for load in (load_diffusion_model, load_diffusion_tokenizer):
        with pytest.raises(FileNotFoundError, match=r"No checkpoint folder at .*does not exist\). Check the path"):
            load(name)


def test_a_folder_without_config_names_its_checkpoints(tmp_path, llada_checkpoint):
    _copy(llada_checkpoint[0], tmp_path / "run" / "checkpoint-3")
    with pytest.raises(FileNotFoundError, match=r"folder without config.json.*It holds \['checkpoint-3'\]: pass one"):
        load_diffusion_model(str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="is a file; pass the checkpoint folder"):
        load_diffusion_model(str(tmp_path / "run" / "checkpoint-3" / "config.json"))


def test_a_hub_id_that_cannot_be_fetched_says_both_what_it_is_not(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    with pytest.raises(OSError, match=r"'nobody/no-such-model' is neither a local folder .* nor a model the hub"):
        load_diffusion_model("nobody/no-such-model")


def test_corrupt_config_and_truncated_weights_name_the_file(tmp_path, llada_checkpoint):
    bad_config = _copy(llada_checkpoint[0], tmp_path / "config")
    with open(os.path.join(bad_config, "config.json"), "w") as f:
        f.write('{"model_type": "llada", "d_mod')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON .* truncated or corrupt"):
        load_diffusion_model(bad_config)

    truncated = _copy(llada_checkpoint[0], tmp_path / "weights")
    weights = os.path.join(truncated, "model.safetensors")
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"weights/model.safetensors: .*the file is truncated or corrupt"):
        load_diffusion_model(truncated)


def test_a_missing_weight_shard_is_named(tmp_path, llada_checkpoint):
    folder = _copy(llada_checkpoint[0], tmp_path / "sharded")
    index = {"weight_map": {"model.embed_tokens.weight": "model.safetensors", "lm_head.weight": "model-2.safetensors"}}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    with pytest.raises(FileNotFoundError, match=r"lists 2 weight shards .* lacks \['model-2.safetensors'\]"):
        load_diffusion_model(folder)


# ---- ids outside the vocabulary -----------------------------------------------------------------------------------
def test_a_mask_id_outside_the_vocabulary_is_refused_before_the_weights_load(tmp_path, llada_checkpoint):
    with pytest.raises(ValueError, match=r"mask_token_id 100000 is outside the model's vocabulary \(embedding size 448\)"):
        load_diffusion_model(llada_checkpoint[0], mask_token_id=100_000)
    folder = _copy(llada_checkpoint[0], tmp_path / "own")
    config = json.load(open(os.path.join(folder, "config.json")))
    json.dump({**config, "mask_token_id": 448}, open(os.path.join(folder, "config.json"), "w"))
    os.remove(os.path.join(folder, "model.safetensors"))  # refused before the weights are even looked for
    with pytest.raises(ValueError, match="mask_token_id 448 is outside"):
        load_diffusion_model(folder)


@pytest.mark.parametrize("bad", [448, 10**6, -1])
def test_prompt_ids_outside_the_vocabulary_are_refused_by_the_sampler(llada, bad):
    with pytest.raises(ValueError, match=rf"input_ids \(the prompts\) hold the id {bad}, outside .*\(size 448\)"):
        diffusion_generate(llada, torch.tensor([[5, 6, bad]]), generation_config=SAMPLER)


def test_likelihood_requests_outside_the_vocabulary_are_refused(llada):
    mask = llada.config.mask_token_id
    with pytest.raises(ValueError, match="the requests' token ids .* hold the id 500, outside"):
        estimate_elbo(llada, [ELBORequest([5, 6], [7, 500])], mc_num=2, mask_token_id=mask, pad_token_id=0)
    with pytest.raises(ValueError, match="hold the id -3"):
        estimate_elbo(llada, [ELBORequest([5], [7])], mc_num=2, mask_token_id=mask, pad_token_id=-3)
    with pytest.raises(ValueError, match="mask_token_id 999 is outside"):
        estimate_elbo(llada, [ELBORequest([5], [7])], mc_num=2, mask_token_id=999, pad_token_id=0)


# ---- adapters ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora(tmp_path_factory, llada_checkpoint):
    """A LoRA adapter (q_proj, v_proj, r=4) saved on the tiny LLaDA (hidden 64, 2 layers)."""
    root = tmp_path_factory.mktemp("lora")
    model = get_peft_model(load_diffusion_model(llada_checkpoint[0]), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(root / "adapter")
    return str(root / "adapter")


def test_an_adapter_of_another_base_warns(tmp_path, llada_checkpoint, lora):
    other = _copy(llada_checkpoint[0], tmp_path / "another-base")  # same shapes, another name
    with pytest.warns(UserWarning, match=r"trained on '.*llada.*' but is being put on '.*another-base'"):
        load_diffusion_model(other, adapter=lora)


def test_an_adapter_whose_shapes_do_not_fit_is_refused(tmp_path, llada_tokenizer, lora):
    narrow = str(tmp_path / "narrow")
    make_tiny_llada(narrow, llada_tokenizer, hidden_size=32)
    with pytest.warns(UserWarning, match="trained on"), pytest.raises(
        ValueError, match=r"does not fit this base model \(8 tensors differ in shape, e.g. base_model.model.model.layers"
        r".0.self_attn.q_proj.lora_A.weight is \[4, 64\] but the base's model.layers.0.self_attn.q_proj needs \[None, 32\]"
    ):
        load_diffusion_model(narrow, adapter=lora)
    shallow = str(tmp_path / "shallow")
    make_tiny_llada(shallow, llada_tokenizer, layers=1)
    with pytest.warns(UserWarning, match="trained on"), pytest.raises(
        ValueError, match=r"adapts 2 modules this base model does not have, e.g. 'model.layers.1.self_attn.q_proj'"
    ):
        load_diffusion_model(shallow, adapter=lora)


def test_an_adapter_path_that_does_not_exist_is_named(llada_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="No adapter folder at"):
        load_diffusion_model(llada_checkpoint[0], adapter=str(tmp_path / "no-adapter"))
    with pytest.raises(FileNotFoundError, match="folder without adapter_config.json, so it is no adapter folder"):
        load_diffusion_model(llada_checkpoint[0], adapter=str(tmp_path))


# ---- lift_dlm ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,value,message", [
    ("mc_num", -1, r"lift_dlm's mc_num must be in \[1, inf\], got -1"),
    ("mc_num", 0, r"lift_dlm's mc_num must be in \[1, inf\], got 0"),
    ("mc_batch_size", -2, "lift_dlm's mc_batch_size must be in"),
    ("batch_size", 0, "lift_dlm's batch_size must be in"),
    ("max_gen_toks", 0, "lift_dlm's max_gen_toks must be in"),
    ("max_length", 1, r"lift_dlm's max_length must be in \[2, inf\]"),
])
def test_lift_dlm_settings_out_of_range_are_refused_before_loading(name, value, message):
    with pytest.raises(ValueError, match=message):  # the model path does not exist: nothing was loaded
        LIFTDiffusionLM(pretrained="/no/such/model", **{name: value})


def test_lift_dlm_refuses_a_mask_id_its_tokenizer_disagrees_with(llada_checkpoint, llada_tokenizer):
    with pytest.raises(ValueError, match=rf"tokenizer's mask token '<\|mdm_mask\|>' has id {llada_tokenizer.mask_token_id}, "
                       "but the model's mask_token_id is 5"):
        LIFTDiffusionLM(pretrained=llada_checkpoint[0], mask_token_id=5, dtype="float32")


def test_lift_dlm_warns_once_how_many_prompt_tokens_max_length_cut(llada_checkpoint, caplog):
    lm = LIFTDiffusionLM(pretrained=llada_checkpoint[0], dtype="float32", max_length=16, block_length=4, steps=4)
    long_text = "The quick brown fox jumps over the lazy dog. " * 3
    n = len(lm.tok_encode(long_text))
    requests = [Instance("generate_until", {}, (text, {"until": [], "max_gen_toks": 4}), i, ("t", i, 1))
                for i, text in enumerate([long_text, "Solve"])]
    with caplog.at_level(logging.WARNING):
        lm.generate_until(requests, disable_tqdm=True)
        lm.generate_until(requests, disable_tqdm=True)
    cut = [r.getMessage() for r in caplog.records if "prompts were longer" in r.getMessage()]
    assert n > 12 and cut == [  # once, with the count: 16 - 4 generated tokens leave room for 12
        f"lift_dlm: 1 of 2 prompts were longer than max_length minus the generated tokens and lost their first tokens "
        f"({n - 12} at most, {n - 12} in all; max_length=16): the model never sees them. Raise --model_args "
        "max_length=N, or lower max_gen_toks / gen_length."
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        lm.loglikelihood([Instance("loglikelihood", {}, (long_text, " fox"), 0, ("t", 0, 1))], disable_tqdm=True)
    assert any("1 of 1 likelihood contexts were longer than max_length minus the continuation" in r.getMessage()
               for r in caplog.records)
