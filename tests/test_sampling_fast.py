"""The fast paths: prefix / dual KV cache and confidence-threshold decoding, batched, and where they
must agree with the exact path."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from _sampling_reference import reference_generate  # noqa: E402

from trl_lift import DiffusionGenerationConfig, diffusion_generate  # noqa: E402
from trl_lift.generation.cache import CanvasForward, canvas_position_ids  # noqa: E402

P = 10


def _batch(tok, seed=3):
    ids = torch.randint(0, 300, (3, P), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    for row, pad in ((1, 3), (2, 6)):
        ids[row, :pad] = tok.pad_token_id
        mask[row, :pad] = 0
    return ids, mask


def _generate(model, ids, mask=None, **kw):
    return diffusion_generate(model, ids, mask, generation_config=DiffusionGenerationConfig(**kw))


def _canvas(ids, mask, tok, gen=16, filled=6):
    """A canvas mid-way through decoding: the first ``filled`` generated tokens decided."""
    canvas = torch.full((ids.shape[0], P + gen), tok.mask_token_id)
    canvas[:, :P] = ids
    canvas[:, P : P + filled] = torch.randint(0, 300, (ids.shape[0], filled), generator=torch.Generator().manual_seed(9))
    full_mask = torch.cat([mask, torch.ones(ids.shape[0], gen, dtype=mask.dtype)], dim=1)
    return canvas, full_mask


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_a_cache_built_from_the_same_canvas_gives_the_full_pass_logits(
    family, cfg_scale, llada, dream, llada_tokenizer, dream_tokenizer
):
    model, tok = (llada, llada_tokenizer) if family == "llada" else (dream, dream_tokenizer)
    ids, mask = _batch(tok)
    canvas, full_mask = _canvas(ids, mask, tok)
    block = (P + 4, P + 12)
    kw = dict(
        prompt_length=P,
        mask_token_id=tok.mask_token_id,
        logit_shift=family == "dream",
        cfg_scale=cfg_scale,
    )
    exact = CanvasForward(model, full_mask, canvas_position_ids(full_mask), cache="none", **kw)
    full = exact(canvas, *block, block_start=block[0], refresh=False)  # [B, 8, V]
    for mode in ("prefix", "dual"):
        fwd = CanvasForward(model, full_mask, canvas_position_ids(full_mask), cache=mode, **kw)
        first = fwd(canvas, *block, block_start=block[0], refresh=True)
        assert torch.equal(first, full)  # the block-start pass is the exact pass
        for _ in range(2):  # the cache is cut back after every pass: repeated passes agree
            cached = fwd(canvas, *block, block_start=block[0], refresh=False)
            if mode == "prefix":
                assert torch.equal(cached, full)
            else:  # keys stored in another order: equal up to float rounding
                torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
                assert torch.equal(cached.argmax(-1), full.argmax(-1))
        copies = 2 if cfg_scale else 1
        assert fwd.nfe == 3 * copies
        kept = fwd.cache.get_seq_length()
        shift = int(family == "dream")
        assert kept == (block[0] - shift if mode == "prefix" else canvas.shape[1] - (block[1] - block[0]) - shift)
        # a later change to the block is seen by the cached pass (only the cached keys are stale)
        changed = canvas.clone()
        changed[:, block[0]] = 5
        assert not torch.equal(fwd(changed, *block, block_start=block[0], refresh=False), cached)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cached_paths_equal_the_exact_path_with_one_step_per_block(llada, dream, llada_tokenizer, dream_tokenizer, cache):
    for model, tok in ((llada, llada_tokenizer), (dream, dream_tokenizer)):
        ids, mask = _batch(tok)
        schedule = dict(gen_length=16, block_length=4, steps=4)
        exact = _generate(model, ids, mask, **schedule)
        fast = _generate(model, ids, mask, cache=cache, **schedule)
        assert torch.equal(fast.sequences, exact.sequences)
        assert fast.nfe == exact.nfe == 4


@pytest.mark.parametrize(
    "kw",
    [
        dict(cache="prefix"),
        dict(cache="dual"),
        dict(threshold=0.9),
        dict(threshold=0.7, cache="prefix"),
        dict(threshold=0.7, cache="dual", remasking="margin"),
        dict(cache="dual", cfg_scale=1.0),
    ],
)
def test_fast_paths_run_batched_and_rows_equal_solo_runs(llada, llada_tokenizer, kw):
    ids, mask = _batch(llada_tokenizer)
    schedule = dict(gen_length=16, block_length=8, steps=16)
    out = _generate(llada, ids, mask, **schedule, **kw)
    assert not (out.sequences == llada_tokenizer.mask_token_id).any()
    assert torch.equal(out.sequences[:, :P], ids)
    for row, pad in enumerate((0, 3, 6)):
        solo = _generate(llada, ids[row : row + 1, pad:], **schedule, **kw)
        assert torch.equal(out.sequences[row, pad:], solo.sequences[0]), (kw, row)
        assert solo.nfe <= out.nfe


def test_threshold_decoding_matches_fast_dllm_rule_and_saves_passes(llada, llada_tokenizer):
    ids, mask = _batch(llada_tokenizer)
    schedule = dict(gen_length=16, block_length=8, steps=16)
    for tau in (0.5, 0.9):
        out = _generate(llada, ids, mask, threshold=tau, **schedule)
        expected, _, nfe = reference_generate(
            llada, ids, mask, mask_id=llada_tokenizer.mask_token_id, threshold=tau, **schedule
        )
        assert torch.equal(out.sequences, expected)
        assert out.nfe == nfe
        assert out.nfe < 16  # parallel commits happened


def test_cached_and_threshold_paths_cut_forward_work(llada, llada_tokenizer):
    ids, mask = _batch(llada_tokenizer)
    schedule = dict(gen_length=16, block_length=8, steps=16)
    exact = _generate(llada, ids, mask, **schedule)
    prefix = _generate(llada, ids, mask, cache="prefix", **schedule)
    both = _generate(llada, ids, mask, cache="prefix", threshold=0.9, **schedule)
    assert prefix.nfe == exact.nfe == 16
    assert both.nfe < prefix.nfe
    dual = _generate(llada, ids, mask, cache="dual", **schedule)
    assert dual.nfe == 16
    assert not torch.equal(prefix.sequences, exact.sequences) or not torch.equal(dual.sequences, exact.sequences)


def test_with_one_layer_the_caches_are_exact(llada_tokenizer):
    """In a one-layer model a position's keys and values depend on its own token only, so a cache is
    never stale: prefix, dual and their threshold variants must give the uncached tokens."""
    from transformers import LlamaForCausalLM

    from trl_lift.testing import sharpen_weights, tiny_llama_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(llada_tokenizer, layers=1))
    model.config.mask_token_id = llada_tokenizer.mask_token_id
    model = sharpen_weights(model, gain=2.0, head=8.0)
    ids, mask = _batch(llada_tokenizer)
    schedule = dict(gen_length=16, block_length=8, steps=16)
    exact = _generate(model, ids, mask, suppress_mask_token=True, **schedule)
    assert len(set(exact.sequences[:, P:].flatten().tolist())) >= 8
    for cache in ("prefix", "dual"):
        assert torch.equal(_generate(model, ids, mask, cache=cache, **schedule).sequences, exact.sequences), cache
    threshold = _generate(model, ids, mask, threshold=0.6, **schedule)
    assert threshold.nfe < 16
    for cache in ("prefix", "dual"):
        fast = _generate(model, ids, mask, cache=cache, threshold=0.6, **schedule)
        assert torch.equal(fast.sequences, threshold.sequences), cache
        assert fast.nfe == threshold.nfe
