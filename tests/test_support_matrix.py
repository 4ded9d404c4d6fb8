"""The support matrix: every family of trl_lift.models.support end to end, and the README table checked against it.

Per family (LLaDA, Dream, Llama / Qwen2 converted from autoregressive checkpoints, BERT, ModernBERT):
the row's claims against the live model; training vanilla, LIFT and LoRA a few steps (every trainable
weight moves); save and reload; sampling with the exact path and every cache mode the family has, equal
token for token before and after the reload and for a row of a left-padded batch and its solo run; lift_dlm's generate_until and loglikelihood, equal with
the in-memory and the reloaded model; the unsupported combinations refused with their alternative.
"""

import json
import re
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from lm_eval.api.instance import Instance
from peft import LoraConfig

from trl_lift import (
    DiffusionGenerationConfig,
    DiffusionSFTConfig,
    DiffusionSFTTrainer,
    autoregressive_to_diffusion,
    diffusion_generate,
    get_diffusion_facts,
    is_bidirectional,
    load_diffusion_model,
    load_diffusion_tokenizer,
)
from trl_lift.evaluation.lm_eval_model import LIFTDiffusionLM
from trl_lift.models.masked_lm import supports_kv_cache
from trl_lift.models.support import SUPPORTED_MODELS, TABLE_HEADER, support_table_rows
from trl_lift.testing import (
    make_tiny_dream,
    make_tiny_llada,
    make_tiny_tokenizer,
    sharpen_weights,
)
from trl_lift.testing_families import make_tiny_causal, make_tiny_masked_lm

ROWS = {row.name: row for row in SUPPORTED_MODELS}
METHODS = ("vanilla", "lift", "lora")
DATA = Dataset.from_dict({"prompt": ["What is 2+2?", "Solve x+1=3.", "12 plus 30?", "Name a colour."],
                          "completion": [" 4", " x = 2", " 42, the answer", " blue"]})
PROMPT = "Question: what is"
SAMPLER = {"gen_length": 8, "block_length": 4, "steps": 8}


def _slug(name: str) -> str:
    return re.sub(r"\W+", "_", name)


def _build(name: str, folder: Path) -> str:
    """Write the family's tiny checkpoint (with its tokenizer) into ``folder``; return the folder to load."""
    path = str(folder)
    if name == "LLaDA":
        make_tiny_llada(path, make_tiny_tokenizer("llada"))
    elif name == "Dream":
        make_tiny_dream(path, make_tiny_tokenizer("dream"))
    elif "converted" in name:
        architecture = "llama" if name.startswith("Llama") else "qwen2"
        make_tiny_causal(path + "-causal", architecture)
        autoregressive_to_diffusion(path + "-causal", output_dir=path)
    else:
        make_tiny_masked_lm(path, "bert" if name == "BERT" else "modernbert")
    return path


@pytest.fixture(scope="module", params=list(ROWS))
def family(request, tmp_path_factory):
    """(row, checkpoint folder, tokenizer) of one family, built once per module."""
    row = ROWS[request.param]
    path = _build(row.name, tmp_path_factory.mktemp(_slug(row.name)))
    return row, path, load_diffusion_tokenizer(path)


def test_row_claims_hold(family):
    row, path, tokenizer = family
    model = load_diffusion_model(path)
    facts = get_diffusion_facts(model)
    assert is_bidirectional(model) and facts.family == row.family
    assert facts.mask_token_id == tokenizer.mask_token_id is not None
    assert facts.logit_shift is row.logit_shift
    assert supports_kv_cache(model) is row.kv_cache
    if row.family == "masked_lm":  # published masked LMs hold the mask in the tokenizer only
        assert "mask_token_id" not in json.loads((Path(path) / "config.json").read_text())
    if row.four_bit:
        import bitsandbytes as bnb

        quantised = load_diffusion_model(path, load_in_4bit=True).eval()
        assert any(isinstance(m, bnb.nn.Linear4bit) for m in quantised.modules())
        out = _sample(quantised, tokenizer, "none")
        assert out.shape == (1, len(tokenizer(PROMPT).input_ids) + SAMPLER["gen_length"])


def test_left_padded_batch_rows_equal_solo_runs(family):
    row, path, tokenizer = family
    model = sharpen_weights(load_diffusion_model(path))  # confident, context-dependent predictions
    long, short = tokenizer("Question: what is 12 plus").input_ids, tokenizer("Solve").input_ids
    pads = len(long) - len(short)
    ids = torch.tensor([long, [tokenizer.pad_token_id] * pads + short])
    attention = torch.tensor([[1] * len(long), [0] * pads + [1] * len(short)])
    for cache in row.cache_modes:
        config = DiffusionGenerationConfig(**SAMPLER, cache=cache)
        batch = diffusion_generate(model, ids, attention, generation_config=config).sequences
        for r, prompt in enumerate((long, short)):
            solo = diffusion_generate(model, torch.tensor([prompt]), generation_config=config).sequences
            assert torch.equal(batch[r, len(long):], solo[0, len(prompt):]), (cache, r)


def _sample(model, tokenizer, cache: str) -> torch.Tensor:
    ids = torch.tensor([tokenizer(PROMPT).input_ids])
    config = DiffusionGenerationConfig(**SAMPLER, cache=cache)
    return diffusion_generate(model.eval(), ids, generation_config=config).sequences


@pytest.fixture(scope="module", params=METHODS)
def trained(request, family, tmp_path_factory):
    """A trainer that ran 2 steps of the method on the family, its weights before, and the saved folder."""
    row, path, tokenizer = family
    method = request.param
    out = str(tmp_path_factory.mktemp(f"{_slug(row.name)}-{method}"))
    args = DiffusionSFTConfig(output_dir=out, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
                              logging_steps=1, report_to="none", save_strategy="no", seed=0,
                              dataloader_pin_memory=False, lift=method == "lift")
    peft = LoraConfig(r=4, lora_alpha=8, target_modules=None) if method == "lora" else None
    trainer = DiffusionSFTTrainer(path, args=args, train_dataset=DATA, peft_config=peft)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    trainer.save_model(out)
    return row, path, tokenizer, method, trainer, before, out


def _reload(path: str, method: str, saved: str):
    return load_diffusion_model(path, adapter=saved) if method == "lora" else load_diffusion_model(saved)


def test_trains_saves_reloads_and_samples_alike(trained):
    row, path, tokenizer, method, trainer, before, saved = trained
    logged = [log for log in trainer.state.log_history if "loss" in log]
    assert len(logged) == 2 and all(torch.isfinite(torch.tensor(log["loss"])) for log in logged)
    if method == "lift":
        assert any(key.startswith("lift_share_") for key in logged[0])
    moved = {n: not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert moved and all(moved.values()), [n for n, ok in moved.items() if not ok]
    if method == "lora":  # the family's default targets, exactly those
        wrapped = {n.split(".lora_A.")[0].rsplit(".", 1)[-1] for n in before if ".lora_A." in n}
        assert wrapped == set(row.lora_targets)
    reloaded = _reload(path, method, saved).eval()
    trained_weights, reloaded_weights = trainer.model.state_dict(), reloaded.state_dict()
    assert trained_weights.keys() == reloaded_weights.keys()
    assert all(torch.equal(w, reloaded_weights[n]) for n, w in trained_weights.items())
    for cache in row.cache_modes:
        assert torch.equal(_sample(reloaded, tokenizer, cache), _sample(trainer.model, tokenizer, cache)), cache


def test_lift_dlm_equal_in_memory_and_reloaded(trained):
    row, path, _, method, trainer, _, saved = trained
    source = {"pretrained": path, "peft": saved} if method == "lora" else {"pretrained": saved}
    lm = LIFTDiffusionLM(**source, dtype="float32", block_length=4, steps=8, mc_num=4, max_gen_toks=8)
    assert lm.facts.family == row.family
    requests = ([Instance("generate_until", {}, (PROMPT, {"until": [], "max_gen_toks": 8}), 0, ("t", 0, 1))],
                [Instance("loglikelihood", {}, ("Question: what is 12 plus 30?", " 42"), 0, ("t", 0, 1))])
    reloaded = (lm.generate_until(requests[0]), lm.loglikelihood(requests[1]))
    lm.model = trainer.model.eval()
    in_memory = (lm.generate_until(requests[0]), lm.loglikelihood(requests[1]))
    assert reloaded[0] == in_memory[0] and isinstance(reloaded[0][0], str)
    assert reloaded[1][0][0] == pytest.approx(in_memory[1][0][0], abs=1e-5) and reloaded[1][0][0] < 0


def test_unsupported_combinations_are_refused(family):
    row, path, tokenizer = family
    model = load_diffusion_model(path)
    for cache in {"none", "prefix", "dual"} - set(row.cache_modes):
        with pytest.raises(ValueError, match=rf"cache='{cache}' needs a KV cache.*Use cache='none'"):
            _sample(model, tokenizer, cache)
        with pytest.raises(ValueError, match=rf"cache='{cache}' needs a KV cache.*Use cache='none'"):
            LIFTDiffusionLM(pretrained=path, dtype="float32", cache=cache)
    refusal = "converts causal llama / qwen2" if row.family == "masked_lm" else "already bidirectional"
    with pytest.raises(ValueError, match=refusal):
        autoregressive_to_diffusion(model, tokenizer)


def test_masked_lm_without_a_mask_token_is_refused(tmp_path):
    make_tiny_masked_lm(str(tmp_path), "bert", make_tiny_tokenizer("dream", with_mask=False))
    with pytest.raises(ValueError, match=r"\(bert\) has no mask token id.*tokenizer.mask_token_id"):
        get_diffusion_facts(load_diffusion_model(str(tmp_path)))
    facts = get_diffusion_facts(load_diffusion_model(str(tmp_path), mask_token_id=7))  # or name one
    assert facts.mask_token_id == 7


def test_causal_checkpoint_is_refused_naming_the_conversion(tmp_path):
    make_tiny_causal(str(tmp_path), "qwen2")
    with pytest.raises(ValueError, match=r"has causal attention.*autoregressive_to_diffusion\(name_or_path, output_dir"):
        load_diffusion_model(str(tmp_path))


def _readme_table() -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Supported models\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [tuple(cell.strip() for cell in line.strip().strip("|").split(" | ")) for line in lines]
    return cells[0], cells[2:]


def test_readme_table_is_the_matrix():
    header, rows = _readme_table()
    assert header == TABLE_HEADER
    assert rows == support_table_rows()
    assert [row[0] for row in rows] == list(ROWS)  # every README row runs in this module
