"""autoregressive_to_diffusion: a causal Llama / Qwen2 made a bidirectional diffusion LM, trained and decoded."""

import copy

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from trl_lift import (
    DiffusionGenerationConfig,
    DiffusionSFTConfig,
    DiffusionSFTTrainer,
    diffusion_generate,
    get_diffusion_facts,
    load_diffusion_model,
    load_diffusion_tokenizer,
)
from trl_lift.models.conversion import autoregressive_to_diffusion
from trl_lift.testing import make_tiny_tokenizer
from trl_lift.testing_families import make_tiny_causal, make_tiny_masked_lm


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("causal"))
    return path, *make_tiny_causal(path, "llama")


def test_in_memory_conversion_adds_a_mask_token_at_the_mean(causal):
    _, original, tokenizer = causal
    model = LlamaForCausalLM(original.config).eval()
    model.load_state_dict(original.state_dict())
    tokenizer = make_tiny_tokenizer("dream", with_mask=False)
    size, rows = len(tokenizer), model.get_input_embeddings().weight.shape[0]
    ids = torch.tensor([tokenizer("The quick brown fox").input_ids])
    with torch.no_grad():
        before = model(ids).logits
    model, tokenizer = autoregressive_to_diffusion(model, tokenizer)
    assert tokenizer.mask_token == "<|mask|>" and tokenizer.mask_token_id == size == model.config.mask_token_id
    assert model.get_input_embeddings().weight.shape[0] == rows  # the padded embedding already had room
    for embedding in (model.get_input_embeddings(), model.get_output_embeddings()):
        others = torch.cat([embedding.weight[:size], embedding.weight[size + 1:]])
        torch.testing.assert_close(embedding.weight[size], others.mean(0))
    facts = get_diffusion_facts(model)
    assert (facts.family, facts.mask_token_id, facts.logit_shift, model.config.is_causal) == (
        "bidirectional", size, True, False)
    assert facts.eot_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>") == model.config.eot_token_id
    with torch.no_grad():
        after = model(ids).logits
        model.config.is_causal = True
        causal_again = model(ids).logits
    # Position 0 now sees what follows; nothing but the attention and the mask token's rows changed.
    assert not torch.allclose(after[0, 0], before[0, 0])
    keep = torch.arange(rows) != size
    torch.testing.assert_close(causal_again[..., keep], before[..., keep])


def test_embedding_grows_when_full_and_a_given_token_is_chosen():
    tokenizer = make_tiny_tokenizer("dream", with_mask=False)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model, tokenizer = autoregressive_to_diffusion(LlamaForCausalLM(copy.deepcopy(config)), tokenizer, mask_token="[MASK]")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == model.config.vocab_size == 388
    assert tokenizer.mask_token_id == 387 == model.config.mask_token_id
    weight = model.get_output_embeddings().weight
    torch.testing.assert_close(weight[387], weight[:387].mean(0))
    # A token already in the vocabulary is chosen, its embedding kept, nothing added.
    existing = tokenizer.convert_ids_to_tokens(5)
    model2 = LlamaForCausalLM(config)
    kept = model2.get_input_embeddings().weight[5].clone()
    model2, tokenizer2 = autoregressive_to_diffusion(model2, make_tiny_tokenizer("dream", with_mask=False),
                                                     mask_token=existing)
    assert model2.config.mask_token_id == tokenizer2.mask_token_id == 5
    torch.testing.assert_close(model2.get_input_embeddings().weight[5], kept)


def test_path_converts_trains_decodes_and_reloads(causal, tmp_path):
    path = causal[0]
    folder = str(tmp_path / "dlm")
    autoregressive_to_diffusion(path, output_dir=folder)
    plain = AutoModelForCausalLM.from_pretrained(folder)
    assert (plain.config.is_causal, plain.config.diffusion_logit_shift) == (False, True)
    tokenizer = load_diffusion_tokenizer(folder)
    assert tokenizer.mask_token_id == plain.config.mask_token_id == get_diffusion_facts(plain).mask_token_id
    data = Dataset.from_list([{"prompt": "Question: what is 12 plus 30?", "completion": " Answer: 42."}] * 4)
    args = DiffusionSFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
                              report_to=[], logging_steps=1, lift=True, save_strategy="no", seed=0)
    trainer = DiffusionSFTTrainer(folder, args=args, train_dataset=data)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert all(torch.isfinite(torch.tensor(log["loss"])) for log in trainer.state.log_history if "loss" in log)
    assert all(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if p.requires_grad)
    trainer.save_model(str(tmp_path / "trained"))
    ids = torch.tensor([tokenizer("Question: what is").input_ids])
    config = DiffusionGenerationConfig(gen_length=8, block_length=4, steps=8)
    out = diffusion_generate(trainer.model.eval(), ids, generation_config=config).sequences
    reloaded = load_diffusion_model(str(tmp_path / "trained")).eval()
    assert torch.equal(diffusion_generate(reloaded, ids, generation_config=config).sequences, out)
    assert not (out[0, ids.shape[1]:] == tokenizer.mask_token_id).any()


def test_refused_inputs(tmp_path, causal):
    with pytest.raises(ValueError, match="needs output_dir"):
        autoregressive_to_diffusion(causal[0])
    bert, tokenizer = make_tiny_masked_lm(str(tmp_path / "bert"), "bert")
    with pytest.raises(ValueError, match="converts causal llama / qwen2 models.*load_diffusion_model"):
        autoregressive_to_diffusion(bert, tokenizer)
    model, tokenizer = autoregressive_to_diffusion(*make_tiny_causal(str(tmp_path / "c"), "qwen2"))
    with pytest.raises(ValueError, match="already bidirectional"):
        autoregressive_to_diffusion(model, tokenizer)
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        autoregressive_to_diffusion(model)


def test_tied_embeddings_stay_tied():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = make_tiny_tokenizer("dream", with_mask=False)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    model, tokenizer = autoregressive_to_diffusion(Qwen2ForCausalLM(config), tokenizer)
    weight = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is weight and weight.shape[0] == len(tokenizer) == 388
    torch.testing.assert_close(weight[387], weight[:387].mean(0))
