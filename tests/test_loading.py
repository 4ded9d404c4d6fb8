"""Native loading of LLaDA/Dream checkpoints: logits, refusals, saving, fp32 RoPE."""

import json
import os
import shutil

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, BertConfig, BertForMaskedLM, LlamaForCausalLM, Qwen2ForCausalLM

from trl_lift import get_diffusion_facts, load_diffusion_model
from trl_lift.models.native_configs import llada_config_to_llama
from trl_lift.models.rope import rotate_fp32


def _ids(seed=0, shape=(2, 12), high=300):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def _copy_with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    with open(os.path.join(dst, "config.json")) as f:
        config = json.load(f)
    config.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        config.pop(key)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f)
    return dst


def test_llada_loads_as_bidirectional_llama_with_identical_logits(llada_checkpoint, llada_tokenizer):
    path, native = llada_checkpoint
    model = load_diffusion_model(path).eval()
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.is_causal is False
    assert model.config.mask_token_id == llada_tokenizer.mask_token_id
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, native(ids).logits)
        # Bidirectional: changing the last token changes the first position's logits.
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % 300
        assert not torch.allclose(model(changed).logits[:, 0], model(ids).logits[:, 0])


def test_left_padding_invariance(llada_checkpoint):
    path, _ = llada_checkpoint
    model = load_diffusion_model(path).eval()
    short, long = _ids(1, (1, 5)), _ids(2, (1, 9))
    pad = torch.full((1, 4), 7)
    ids = torch.cat([torch.cat([pad, short], 1), long])
    mask = torch.cat([torch.cat([torch.zeros(1, 4), torch.ones(1, 5)], 1), torch.ones(1, 9)]).long()
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask, position_ids=positions).logits
        solo_short, solo_long = model(short).logits, model(long).logits
    torch.testing.assert_close(batched[0, 4:], solo_short[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1], solo_long[0], atol=1e-5, rtol=0)


def test_llada_config_mapping():
    raw = {
        "model_type": "llada", "block_type": "llama", "rope": True, "alibi": False, "weight_tying": False,
        "layer_norm_type": "rms", "activation_type": "silu", "d_model": 4096, "n_heads": 32, "n_kv_heads": 32,
        "n_layers": 32, "mlp_hidden_size": 12288, "vocab_size": 126464, "embedding_size": 126464,
        "max_sequence_length": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "eos_token_id": 126081,
        "pad_token_id": 126081, "attention_dropout": 0.0, "residual_dropout": 0.0, "embedding_dropout": 0.0,
    }
    config = llada_config_to_llama(raw)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (4096, 32, 12288)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (32, 32, 128)
    assert config.vocab_size == 126464 and config.tie_word_embeddings is False
    assert config.rope_parameters["rope_theta"] == 500000.0 and config.rms_norm_eps == 1e-5
    # LLaDA's config.json has no mask_token_id: the family's id applies.
    assert config.mask_token_id == 126336 and get_diffusion_facts(config).mask_token_id == 126336
    assert get_diffusion_facts(config).eos_token_id == 126081
    assert config.is_causal is False and config.rope_fp32 is True


@pytest.mark.parametrize(
    "field,value",
    [("block_type", "sequential"), ("alibi", True), ("include_bias", True), ("attention_layer_norm", True),
     ("scale_logits", True), ("weight_tying", True), ("layer_norm_type", "default")],
)
def test_llada_variants_llama_lacks_are_refused(tmp_path, llada_checkpoint, field, value):
    path = _copy_with_config(llada_checkpoint[0], str(tmp_path / "bad"), **{field: value})
    with pytest.raises(ValueError, match=field):
        load_diffusion_model(path)


def test_missing_mask_token_id_defaults_to_family(tmp_path, llada_checkpoint):
    path = _copy_with_config(llada_checkpoint[0], str(tmp_path / "nomask"), mask_token_id=None)
    assert load_diffusion_model(path).config.mask_token_id == 126336
    assert load_diffusion_model(path, mask_token_id=5).config.mask_token_id == 5


def test_saves_native_and_reloads_with_plain_transformers(tmp_path, llada_checkpoint):
    path, native = llada_checkpoint
    model = load_diffusion_model(path)
    model.save_pretrained(tmp_path / "saved")
    with safe_open(str(tmp_path / "saved" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "model.layers.0.self_attn.q_proj.weight" in keys
    assert not any(k.startswith("model.transformer") for k in keys)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved").eval()
    assert reloaded.config.is_causal is False
    assert reloaded.config.mask_token_id == model.config.mask_token_id
    assert get_diffusion_facts(reloaded).family == "llada"
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, native(ids).logits)
    again = load_diffusion_model(str(tmp_path / "saved"))
    assert getattr(again.model.rotary_emb, "_trl_lift_fp32_rope", False)


def test_dream_loads_as_bidirectional_qwen2_with_shift(dream_checkpoint, dream_tokenizer):
    path, native = dream_checkpoint
    model = load_diffusion_model(path).eval()
    assert isinstance(model, Qwen2ForCausalLM) and model.config.is_causal is False
    facts = get_diffusion_facts(model)
    assert facts.logit_shift is True and facts.mask_token_id == dream_tokenizer.mask_token_id
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, native(ids).logits)
    model.save_pretrained(os.path.join(path + "-saved"))
    assert get_diffusion_facts(AutoModelForCausalLM.from_pretrained(path + "-saved")).logit_shift is True


def test_causal_checkpoints_and_remote_code_are_refused(tmp_path, llada_checkpoint):
    causal = LlamaForCausalLM(llada_config_to_llama({**_minimal_llada(), "model_type": "llada"}))
    causal.config.is_causal = True
    causal.save_pretrained(tmp_path / "causal")
    with pytest.raises(ValueError, match="causal attention"):
        load_diffusion_model(str(tmp_path / "causal"))
    with pytest.raises(ValueError, match="remote code"):
        load_diffusion_model(llada_checkpoint[0], trust_remote_code=True)


def test_masked_lm_loads_and_needs_a_mask_id(tmp_path):
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(tmp_path / "bert")
    model = load_diffusion_model(str(tmp_path / "bert"), mask_token_id=3)
    assert isinstance(model, BertForMaskedLM)
    facts = get_diffusion_facts(model)
    assert (facts.family, facts.mask_token_id, facts.fused_head) == ("masked_lm", 3, False)
    model.config.mask_token_id = None
    with pytest.raises(ValueError, match="mask token"):
        get_diffusion_facts(model)


def test_fp32_rope_rotates_in_float32_and_casts_back():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 5, 8, generator=g).bfloat16(), torch.randn(1, 2, 5, 8, generator=g).bfloat16()
    angles = torch.randn(1, 5, 8, generator=g) * 50
    cos, sin = angles.cos(), angles.sin()
    q_rot, k_rot = rotate_fp32(q, k, cos, sin)
    q_ref, k_ref = apply_rotary_pos_emb(q.float(), k.float(), cos, sin)
    assert q_rot.dtype == torch.bfloat16
    assert torch.equal(q_rot, q_ref.bfloat16()) and torch.equal(k_rot, k_ref.bfloat16())
    # Tables in the activation dtype (stock Llama) take the stock path unchanged.
    stock = apply_rotary_pos_emb(q, k, cos.bfloat16(), sin.bfloat16())
    assert torch.equal(rotate_fp32(q, k, cos.bfloat16(), sin.bfloat16())[0], stock[0])


def test_bf16_llada_uses_fp32_rope_tables(llada_checkpoint):
    model = load_diffusion_model(llada_checkpoint[0], dtype=torch.bfloat16)
    x = torch.zeros(1, 3, 4, dtype=torch.bfloat16)
    cos, _ = model.model.rotary_emb(x, torch.arange(3)[None])
    assert cos.dtype == torch.float32
    plain = load_diffusion_model(llada_checkpoint[0], dtype=torch.bfloat16, rope_fp32=False)
    assert plain.model.rotary_emb(x, torch.arange(3)[None])[0].dtype == torch.bfloat16
    # End to end the rotation precision shows in bf16 logits (long positions make bf16 angles coarse) ...
    ids = _ids(3, (1, 64))
    with torch.no_grad():
        fp32_rope, bf16_rope = model.eval()(ids).logits, plain.eval()(ids).logits
    assert not torch.equal(fp32_rope, bf16_rope)
    # ... and in fp32 the two are the same model.
    full = load_diffusion_model(llada_checkpoint[0]).eval()
    full_plain = load_diffusion_model(llada_checkpoint[0], rope_fp32=False).eval()
    with torch.no_grad():
        assert torch.equal(full(ids).logits, full_plain(ids).logits)


def test_fp32_rope_is_confined_to_the_loaded_model(llada_checkpoint, monkeypatch):
    from transformers import LlamaForCausalLM
    from transformers.models.llama import modeling_llama

    from trl_lift.models.native_configs import LLADA_KEY_MAPPING

    stock_rotation, stock_tables = modeling_llama.apply_rotary_pos_emb, modeling_llama.LlamaRotaryEmbedding.forward
    ids = _ids(3, (1, 64))
    llada = load_diffusion_model(llada_checkpoint[0], dtype=torch.bfloat16).eval()
    # transformers itself is untouched: a stock Llama loaded beside it rotates as a stock Llama does.
    assert modeling_llama.apply_rotary_pos_emb is stock_rotation
    assert modeling_llama.LlamaRotaryEmbedding.forward is stock_tables
    stock = LlamaForCausalLM.from_pretrained(llada_checkpoint[0], config=llada.config, dtype=torch.bfloat16,
                                             key_mapping=LLADA_KEY_MAPPING).eval()
    plain = load_diffusion_model(llada_checkpoint[0], dtype=torch.bfloat16, rope_fp32=False).eval()
    with torch.no_grad():
        ours, stock_logits = llada(ids).logits, stock(ids).logits
        assert torch.equal(stock_logits, plain(ids).logits) and not torch.equal(ours, stock_logits)

    # The reference: LLaDA's own rule for the whole process (fp32 tables, rotate in fp32, cast back).
    def llada_rotation(q, k, cos, sin, unsqueeze_dim=1):
        q_rot, k_rot = stock_rotation(q.float(), k.float(), cos, sin, unsqueeze_dim)
        return q_rot.to(q.dtype), k_rot.to(k.dtype)

    monkeypatch.setattr(modeling_llama, "apply_rotary_pos_emb", llada_rotation)
    monkeypatch.setattr(modeling_llama.LlamaRotaryEmbedding, "forward", lambda self, x, position_ids: stock_tables(self, x.float(), position_ids))
    with torch.no_grad():
        assert torch.equal(ours, stock(ids).logits)


def _minimal_llada():
    return {
        "block_type": "llama", "rope": True, "weight_tying": False, "layer_norm_type": "rms",
        "activation_type": "silu", "d_model": 32, "n_heads": 2, "n_layers": 1, "mlp_hidden_size": 64,
        "vocab_size": 64, "embedding_size": 64, "attention_dropout": 0.0, "residual_dropout": 0.0,
        "embedding_dropout": 0.0, "eos_token_id": 1, "pad_token_id": 1, "mask_token_id": 2,
    }


def test_remote_code_tokenizer_loads_natively_with_mask_token(tmp_path, dream_checkpoint, dream_tokenizer):
    from trl_lift import load_diffusion_tokenizer

    path = shutil.copytree(dream_checkpoint[0], str(tmp_path / "dream"))
    config_path = os.path.join(path, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    # As Dream ships it: a remote-code tokenizer class that AutoTokenizer refuses without trust_remote_code.
    config.update(tokenizer_class="DreamTokenizer", auto_map={"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]})
    config.pop("mask_token", None)
    with open(config_path, "w") as f:
        json.dump(config, f)
    tokenizer = load_diffusion_tokenizer(path)
    assert tokenizer.mask_token_id == dream_tokenizer.mask_token_id
    text = "Solve for x: 2x + 3 = 7"
    assert tokenizer(text)["input_ids"] == dream_tokenizer(text)["input_ids"]
    with pytest.raises(ValueError, match="remote code"):
        load_diffusion_tokenizer(path, trust_remote_code=True)


def test_family_ids_outside_a_small_vocabulary_do_not_apply(llada_checkpoint):
    model = load_diffusion_model(llada_checkpoint[0])
    facts = get_diffusion_facts(model)
    assert facts.eot_token_id is None  # 126348 does not exist in a 448-token model
    model.config.eot_token_id = 7
    assert get_diffusion_facts(model).eot_token_id == 7
    assert get_diffusion_facts(llada_config_to_llama({**_minimal_llada(), "vocab_size": 126464, "embedding_size": 126464})).eot_token_id == 126348
