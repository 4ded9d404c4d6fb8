"""Every helper works on the model as a trainer hands it over: DDP, torch.compile, PEFT, and nestings.

DDP runs in-process on a one-rank gloo group; ``torch.compile`` uses the ``eager`` backend (Dynamo's
wrapper and tracing without a C compiler: it traces LLaDA's fp32 RoPE and TRL's fused head). Each
wrapped call must give the plain model's result.
"""

import pytest
import torch
import torch.distributed as dist
from peft import LoraConfig, get_peft_model
from torch.nn.parallel import DistributedDataParallel

from trl_lift import (
    DiffusionGenerationConfig,
    diffusion_generate,
    get_diffusion_facts,
    load_diffusion_model,
)
from trl_lift.diffusion.scoring import gold_log_probs
from trl_lift.evaluation.likelihood import ELBORequest, estimate_elbo
from trl_lift.generation.cache import _accepts_logits_to_keep
from trl_lift.models.facts import text_config, unwrap_model


@pytest.fixture(scope="module")
def process_group(tmp_path_factory):
    """A one-rank gloo group, as DDP needs one (torchrun would set it up)."""
    if dist.is_initialized():
        yield
        return
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _lora(model):
    # LoRA's B starts at zero: the adapted model computes exactly what the base does.
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))


WRAPPERS = {
    "ddp": lambda m: DistributedDataParallel(m),
    "compile": lambda m: torch.compile(m, backend="eager"),
    "peft": _lora,
    "ddp(compile)": lambda m: DistributedDataParallel(torch.compile(m, backend="eager")),
    "ddp(peft)": lambda m: DistributedDataParallel(_lora(m)),
    "compile(peft)": lambda m: torch.compile(_lora(m), backend="eager"),
    "ddp(compile(peft))": lambda m: DistributedDataParallel(torch.compile(_lora(m), backend="eager")),
}


@pytest.fixture
def fresh_llada(llada_checkpoint):
    return load_diffusion_model(llada_checkpoint[0]).eval()


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_unwrap_reaches_the_transformers_model(process_group, fresh_llada, name):
    wrapped = WRAPPERS[name](fresh_llada)
    assert unwrap_model(wrapped) is fresh_llada
    assert get_diffusion_facts(wrapped) == get_diffusion_facts(fresh_llada)
    assert text_config(wrapped) is fresh_llada.config
    assert _accepts_logits_to_keep(wrapped)  # the sampler's cached pass reads the real forward's signature


def test_a_plain_model_and_a_config_are_returned_as_they_are(fresh_llada):
    assert unwrap_model(fresh_llada) is fresh_llada
    assert get_diffusion_facts(fresh_llada.config).mask_token_id == fresh_llada.config.mask_token_id


def _ids(tok, rows=2, length=12, seed=0):
    return torch.randint(0, 300, (rows, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["ddp", "compile", "ddp(peft)", "ddp(compile(peft))"])
def test_gold_scores_through_wrappers_equal_the_plain_model(process_group, llada_checkpoint, llada_tokenizer, name):
    plain = load_diffusion_model(llada_checkpoint[0]).eval()
    wrapped = WRAPPERS[name](load_diffusion_model(llada_checkpoint[0]).eval())
    ids = _ids(llada_tokenizer)
    noised = ids.clone()
    noised[:, 6:] = llada_tokenizer.mask_token_id
    targets = ids.masked_fill(noised != llada_tokenizer.mask_token_id, -100)
    with torch.no_grad():
        want = gold_log_probs(plain, noised, targets)
        got = gold_log_probs(wrapped, noised, targets)
    assert (want.log_probs[:, 6:] < 0).all() and (want.log_probs[:, :6] == 0).all()
    torch.testing.assert_close(got.log_probs, want.log_probs, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.entropy, want.entropy, rtol=0, atol=1e-6)
    assert torch.equal(got.is_top1, want.is_top1)
    assert getattr(unwrap_model(wrapped), "_trl_lift_fused_head", False)  # the head went on the model, not a wrapper


@pytest.mark.parametrize("cache", ["none", "prefix"])
def test_sampler_through_ddp_gives_the_plain_tokens(process_group, llada, llada_tokenizer, cache):
    ids = _ids(llada_tokenizer, length=6, seed=1)
    config = DiffusionGenerationConfig(gen_length=8, block_length=4, steps=8, cache=cache)
    want = diffusion_generate(llada, ids, None, generation_config=config)
    got = diffusion_generate(DistributedDataParallel(llada), ids, None, generation_config=config)
    assert torch.equal(got.sequences, want.sequences) and got.nfe == want.nfe == 8


def test_likelihood_through_ddp_and_peft_equals_the_plain_model(process_group, llada_checkpoint, llada_tokenizer):
    plain = load_diffusion_model(llada_checkpoint[0]).eval()
    wrapped = DistributedDataParallel(_lora(load_diffusion_model(llada_checkpoint[0]).eval()))

    def requests():
        return [ELBORequest([5, 6, 7], [8, 9], torch.Generator().manual_seed(3)),
                ELBORequest([10, 11], [12, 13, 14], torch.Generator().manual_seed(4))]

    kwargs = {"mc_num": 4, "mask_token_id": llada_tokenizer.mask_token_id, "pad_token_id": llada_tokenizer.pad_token_id}
    with torch.no_grad():
        want = estimate_elbo(plain, requests(), **kwargs)
        got = estimate_elbo(wrapped, requests(), **kwargs)
    assert [flag for _, flag in got] == [flag for _, flag in want]
    assert [value for value, _ in got] == pytest.approx([value for value, _ in want], abs=1e-5)
    assert all(value < 0 for value, _ in want)


def test_torch_compile_keeps_the_float32_rotation(llada_checkpoint, llada_tokenizer):
    """Compiled, a bf16 LLaDA still rotates q/k in float32: Dynamo traces the rebound attention forward with
    its own globals, not the stock module's (whose rotation, in bf16, gives other logits)."""
    path = llada_checkpoint[0]
    fp32_rope = load_diffusion_model(path, dtype=torch.bfloat16).eval()
    stock = load_diffusion_model(path, dtype=torch.bfloat16, rope_fp32=False).eval()
    compiled = torch.compile(load_diffusion_model(path, dtype=torch.bfloat16).eval(), backend="eager")
    ids = _ids(llada_tokenizer)
    with torch.no_grad():
        want, got, other = (model(ids).logits for model in (fp32_rope, compiled, stock))
    assert torch.equal(got, want) and not torch.equal(want, other)
