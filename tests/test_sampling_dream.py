"""Dream's schedule: its maths, its errors, and token-for-token agreement with an independent
re-implementation of Dream's ``diffusion_generate`` (tests/_dream_reference.py)."""

import copy
import dataclasses
import itertools
import math

import pytest
import torch
from _dream_reference import dream_reference_generate
from _sampling_reference import _favour_token

from trl_lift.generation.cache import CanvasForward, canvas_position_ids
from trl_lift.generation.config import DiffusionGenerationConfig
from trl_lift.generation.dream import (
    choose_positions,
    dream_timesteps,
    dream_transfer_count,
    filter_logits,
    sample_tokens,
)
from trl_lift.generation.sampler import diffusion_generate

P, NEW = 10, 16
ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")


def _prompts(tok, padded: bool):
    """Three prompts of 10 tokens; padded: lengths 10, 7, 4, left-padded with the pad id, and their mask."""
    ids = torch.randint(0, 300, (3, P), generator=torch.Generator().manual_seed(3))
    if not padded:
        return ids, None
    mask = torch.ones_like(ids)
    for row, pad in ((1, 3), (2, 6)):
        ids[row, :pad] = tok.pad_token_id
        mask[row, :pad] = 0
    return ids, mask


def _both(model, tok, padded, seed=7, ban_ids=(), config_changes=None, **dream):
    """(reference canvas, trl_lift output) under the same seed: the global generator vs a torch.Generator."""
    ids, mask = _prompts(tok, padded)
    torch.manual_seed(seed)
    ref, passes = dream_reference_generate(model, ids.clone(), mask, mask_token_id=tok.mask_token_id,
                                           ban_ids=ban_ids, **dream)
    config = DiffusionGenerationConfig.from_dream(**dream)
    if config_changes:
        config = dataclasses.replace(config, **config_changes)
    out = diffusion_generate(model, ids, mask, generation_config=config, generator=torch.Generator().manual_seed(seed))
    return ref, passes, out


# --- the maths, by hand -----------------------------------------------------------------------


def test_time_grid_and_the_batch_averaged_quota():
    grid = dream_timesteps(4, 0.2)
    assert grid.dtype == torch.float32 and torch.allclose(grid, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]))
    masked = torch.zeros(2, 8, dtype=torch.bool)
    masked[0, :5] = True  # 5 masks
    masked[1, :2] = True  # 2 masks: Dream's n is their mean, 3.5, for both rows
    t, s = grid[0], grid[1]
    assert dream_transfer_count(masked, t, s, last=False) == 0  # int(3.5 * 0.2) = int(0.7)
    assert dream_transfer_count(masked, grid[2], grid[3], last=False) == 1  # int(3.5 * (1 - 0.4 / 0.6)) = int(1.17)
    assert dream_transfer_count(masked, grid[3], grid[4], last=True) == 3  # int(3.5) at the last step
    assert dream_transfer_count(masked[:1], grid[2], grid[3], last=False) == 1  # int(5 / 3)
    assert dream_transfer_count(masked[:1], grid[3], grid[4], last=True) == 5


def test_nucleus_and_top_k_filters():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])  # softmax 0.644, 0.237, 0.087, 0.032
    floor = torch.finfo(torch.float32).min
    assert filter_logits(logits, 0.7, None).tolist() == [[2.0, 1.0, floor, floor]]  # 0.644 < 0.7: keep the next
    assert filter_logits(logits, 0.5, None).tolist() == [[2.0, floor, floor, floor]]
    assert filter_logits(logits, 1.0, None).tolist() == logits.tolist()  # top_p = 1 is off, as in Dream
    assert filter_logits(logits, None, 3).tolist() == [[2.0, 1.0, 0.0, floor]]
    assert filter_logits(torch.tensor([[1.0, 1.0, 0.0]]), None, 1).tolist() == [[1.0, 1.0, floor]]  # ties stay
    assert filter_logits(logits, None, 99).tolist() == logits.tolist()


def test_sample_tokens_confidences():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]))
    conf, tokens = sample_tokens(logits)
    assert tokens.tolist() == [1, 0] and torch.allclose(conf, torch.tensor([0.5, 0.6]))
    margin, _ = sample_tokens(logits, confidence="margin")
    assert torch.allclose(margin, torch.tensor([0.2, 0.3]))
    entropy, _ = sample_tokens(logits, confidence="entropy")
    hand = [sum(p * math.log(p + 1e-10) for p in row) for row in ([0.2, 0.5, 0.3], [0.6, 0.1, 0.3])]
    assert torch.allclose(entropy, torch.tensor(hand))  # -1.0297, -0.8979
    # top_k=1 leaves one token: a draw at any temperature returns it, with probability 1
    drawn_conf, drawn = sample_tokens(logits, temperature=2.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert drawn.tolist() == [1, 0] and drawn_conf.tolist() == [1.0, 1.0]


def test_choose_positions_takes_unmasked_columns_when_asked_for_more():
    conf = torch.tensor([[-math.inf, 0.3, -math.inf, 0.9], [0.1, -math.inf, -math.inf, -math.inf]])
    picks = choose_positions(conf, 2, None)
    assert sorted(picks[0].tolist()) == [1, 3]
    assert 0 in picks[1].tolist() and len(set(picks[1].tolist())) == 2  # the only mask and one -inf column
    sampled = choose_positions(conf, 2, 0.5, torch.Generator().manual_seed(0))
    assert sorted(sampled[0].tolist()) == [1, 3] and 0 in sampled[1].tolist()


def test_left_padded_logits_equal_dream_attention_convention(dream, dream_tokenizer):
    """Dream: 4-D mask mask_i AND mask_j, pads at position 1. Here: 2-D mask, pads at 0. Same non-pad logits."""
    ids, mask = _prompts(dream_tokenizer, padded=True)
    canvas = torch.cat([ids, torch.full((3, NEW), dream_tokenizer.mask_token_id)], dim=1)
    full = torch.cat([mask, torch.ones(3, NEW, dtype=torch.long)], dim=1)
    positions = full.cumsum(-1) - 1
    dream_positions = positions.masked_fill(full == 0, 1)
    square = (full.bool()[:, None, :, None] & full.bool()[:, None, None, :])
    with torch.no_grad():
        theirs = dream(canvas, attention_mask=square, position_ids=dream_positions).logits
        ours = dream(canvas, attention_mask=full, position_ids=canvas_position_ids(full)).logits
        window = CanvasForward(dream, full, canvas_position_ids(full), prompt_length=P, mask_token_id=0,
                               logit_shift=True)(canvas, 0, P + NEW, block_start=P, refresh=True)
    real = full.bool()
    assert torch.equal(theirs[real], ours[real])
    assert not torch.allclose(theirs[~real], ours[~real])  # pad rows differ; nothing reads them
    shifted = torch.cat([ours[:, :1], ours[:, :-1]], dim=1)  # Dream's shift; position 0 read from row 0
    assert torch.equal(window, shifted)


# --- token for token against the reference ----------------------------------------------------

GREEDY = list(itertools.product(ALGS, (5, NEW, 23), (False, True)))


@pytest.mark.parametrize("alg,steps,padded", GREEDY)
def test_temperature_zero_matches_dream(dream, dream_tokenizer, alg, steps, padded):
    """All algs; fewer, as many and more steps than tokens; left-padded batches (origin draws under a shared seed)."""
    ref, passes, out = _both(dream, dream_tokenizer, padded, max_new_tokens=NEW, steps=steps, alg=alg)
    assert torch.equal(out.sequences, ref)
    assert not (ref[:, P:] == dream_tokenizer.mask_token_id).any()
    # A step that commits nothing skips its pass: the first at steps >= NEW (int(16 * 0.999 / 16) = 0).
    assert out.nfe <= passes and (out.nfe < passes) == (steps >= NEW)


SAMPLED = [(alg, alg_temp, padded) for alg, alg_temp, padded in itertools.product(ALGS, (None, 0.5), (False, True))
           if not (alg == "origin" and alg_temp)]


@pytest.mark.parametrize("alg,alg_temp,padded", SAMPLED)
def test_sampling_matches_dream_draw_for_draw(dream, dream_tokenizer, alg, alg_temp, padded):
    """temperature, top_p, top_k and alg_temp: the same draws from the same seed, so the same tokens."""
    kw = dict(max_new_tokens=NEW, steps=7, alg=alg, alg_temp=alg_temp, temperature=0.7, top_p=0.9, top_k=20)
    ref, passes, out = _both(dream, dream_tokenizer, padded, **kw)
    assert torch.equal(out.sequences, ref) and out.nfe == passes == 7
    other = _both(dream, dream_tokenizer, padded, seed=8, **kw)[2]
    assert not torch.equal(other.sequences, out.sequences)  # the draws matter


@pytest.fixture(scope="module")
def mask_loving_dream(dream, dream_tokenizer):
    """The tiny Dream made to propose its own mask token at many positions: Dream's quirks fire."""
    mask = dream_tokenizer.mask_token_id
    return _favour_token(copy.deepcopy(dream), mask, 8.0, mask_id=mask, jitter=0.5)


@pytest.mark.parametrize("alg,padded", list(itertools.product(ALGS[1:], (False, True))))
def test_dream_quirks_reproduced(mask_loving_dream, dream_tokenizer, alg, padded):
    """Committed mask tokens make rows' mask counts differ; the batch-averaged quota then re-masks a prompt
    column of the first row and leaves masks in the last: reproduced exactly."""
    ref, _, out = _both(mask_loving_dream, dream_tokenizer, padded, max_new_tokens=NEW, steps=5, alg=alg)
    assert torch.equal(out.sequences, ref)
    ids, mask = _prompts(dream_tokenizer, padded)
    assert (ref[0, :P] != ids[0]).sum() == 1  # a prompt token overwritten with the mask token
    assert (ref[0, :P] == dream_tokenizer.mask_token_id).sum() == 1
    left = (ref[:, P:] == dream_tokenizer.mask_token_id).sum(1).tolist()
    assert len(set(left)) == 3 and min(left) > 0  # the rows' mask counts diverged; all keep some masks
    # The same rows decoded alone: the quota is each row's own, the output differs.
    solo = diffusion_generate(mask_loving_dream, ids[:1], None,
                              generation_config=DiffusionGenerationConfig.from_dream(max_new_tokens=NEW, steps=5,
                                                                                     alg=alg))
    assert not torch.equal(solo.sequences[0], out.sequences[0])


def test_suppressing_the_mask_token_makes_a_row_its_solo_run(mask_loving_dream, dream_tokenizer):
    ids, mask = _prompts(dream_tokenizer, padded=True)
    mask_id = dream_tokenizer.mask_token_id
    config = dataclasses.replace(DiffusionGenerationConfig.from_dream(max_new_tokens=NEW, steps=5, alg="entropy"),
                                 suppress_mask_token=True)
    batch = diffusion_generate(mask_loving_dream, ids, mask, generation_config=config).sequences
    torch.manual_seed(0)
    ref, _ = dream_reference_generate(mask_loving_dream, ids.clone(), mask, mask_token_id=mask_id, max_new_tokens=NEW,
                                      steps=5, alg="entropy", ban_ids=(mask_id,))
    assert torch.equal(batch, ref) and not (batch == mask_id).any()
    for row, pad in enumerate((0, 3, 6)):
        alone = diffusion_generate(mask_loving_dream, ids[row:row + 1, pad:], generation_config=config).sequences
        assert torch.equal(alone[0], batch[row, pad:])


def test_logits_eos_inf_under_dream(dream, dream_tokenizer):
    eos = dream_tokenizer.eos_token_id
    favour = _favour_token(copy.deepcopy(dream), eos, 7.0, mask_id=dream_tokenizer.mask_token_id)
    plain = _both(favour, dream_tokenizer, True, max_new_tokens=NEW, steps=8, alg="maskgit_plus")[2]
    assert (plain.sequences[:, P:] == eos).any()
    ref, _, out = _both(favour, dream_tokenizer, True, ban_ids=(eos,), config_changes={"logits_eos_inf": True},
                        max_new_tokens=NEW, steps=8, alg="maskgit_plus")
    assert torch.equal(out.sequences, ref) and not (ref[:, P:] == eos).any()


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin"])
def test_threshold_decoding_matches_reference(dream, dream_tokenizer, alg):
    """Each step commits every row's best masked position and all at least 0.5 confident (mask token banned)."""
    mask_id = dream_tokenizer.mask_token_id
    ids, mask = _prompts(dream_tokenizer, padded=True)
    ref, passes = dream_reference_generate(dream, ids.clone(), mask, mask_token_id=mask_id, max_new_tokens=NEW,
                                           alg=alg, threshold=0.5, ban_ids=(mask_id,))
    config = dataclasses.replace(DiffusionGenerationConfig.from_dream(max_new_tokens=NEW, alg=alg), threshold=0.5)
    out = diffusion_generate(dream, ids, mask, generation_config=config)
    assert torch.equal(out.sequences, ref) and out.nfe == passes
    assert 1 < passes < NEW  # several positions per pass, more than one pass


def test_prefix_cache_under_dream_matches_reference(dream, dream_tokenizer):
    """The prompt's keys and values from the first pass, reused by every later pass (approximate, like Fast-dLLM's)."""
    ids, _ = _prompts(dream_tokenizer, padded=False)
    mask_id = dream_tokenizer.mask_token_id
    exact = DiffusionGenerationConfig.from_dream(max_new_tokens=NEW, steps=8, alg="entropy")
    cached = diffusion_generate(dream, ids, generation_config=dataclasses.replace(exact, cache="prefix"))
    ref, passes = dream_reference_generate(dream, ids.clone(), mask_token_id=mask_id, max_new_tokens=NEW, steps=8,
                                           alg="entropy", prefix_cache=True, ban_ids=(mask_id,))
    assert torch.equal(cached.sequences, ref) and cached.nfe == passes == 8
    uncached = diffusion_generate(dream, ids, generation_config=dataclasses.replace(exact, suppress_mask_token=True))
    assert not torch.equal(uncached.sequences, cached.sequences)  # the cache is stale after the first pass
    one = [diffusion_generate(dream, ids, generation_config=dataclasses.replace(exact, steps=1, cache=c)).sequences
           for c in ("none", "prefix")]
    assert torch.equal(one[0], one[1])  # a single pass sees nothing stale
    padded = diffusion_generate(dream, *_prompts(dream_tokenizer, padded=True),
                                generation_config=dataclasses.replace(exact, cache="prefix"))
    assert not (padded.sequences == mask_id).any()


# --- settings -------------------------------------------------------------------------------


def test_from_dream_uses_dream_names_and_defaults():
    config = DiffusionGenerationConfig.from_dream(max_new_tokens=32)
    assert (config.schedule, config.gen_length, config.block_length, config.steps) == ("dream", 32, 32, 512)
    assert (config.alg, config.eps, config.alg_temp, config.temperature, config.top_p, config.top_k) == (
        "origin", 1e-3, None, 0.0, None, None)
    assert config.is_stochastic  # origin draws at every temperature
    greedy = DiffusionGenerationConfig.from_dream(max_new_tokens=8, steps=4, alg="entropy", alg_temp=0, top_k=5,
                                                  top_p=0.95, output_history=False, return_dict_in_generate=True)
    assert not greedy.is_stochastic and (greedy.top_k, greedy.top_p, greedy.alg_temp) == (5, 0.95, 0)
    assert DiffusionGenerationConfig.from_dream(max_new_tokens=8, alg="entropy", alg_temp=0.3).is_stochastic
    # Direct construction: Dream's defaults are filled in and recorded.
    direct = DiffusionGenerationConfig(schedule="dream", gen_length=8, block_length=8, steps=20)
    assert (direct.alg, direct.eps) == ("origin", 1e-3)


@pytest.mark.parametrize("kwargs,message", [
    ({"max_new_tokens": 8, "stpes": 4}, r"unknown arguments \['stpes'\].*DreamGenerationConfig"),
    ({"max_new_tokens": 8, "diffusion_steps": 4}, r"unknown arguments \['diffusion_steps'\]"),
    ({"max_length": 64}, "max_new_tokens = max_length - prompt_length"),
    ({"steps": 4}, "needs max_new_tokens"),
    ({"max_new_tokens": 0}, r"max_new_tokens must be in \[1, inf\]"),
    ({"max_new_tokens": 8, "steps": 0}, r"steps must be in \[1, inf\]"),
    ({"max_new_tokens": 8, "steps": 2.5}, "steps must be an integer"),
    ({"max_new_tokens": 8, "eps": 1.0}, r"eps must be in \[0, 1\)"),
    ({"max_new_tokens": 8, "alg": "confidence"}, "alg must be one of"),
    ({"max_new_tokens": 8, "alg_temp": -1}, r"alg_temp must be in \[0, inf\]"),
    ({"max_new_tokens": 8, "temperature": -0.1}, r"temperature must be in \[0, inf\]"),
    ({"max_new_tokens": 8, "top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"max_new_tokens": 8, "top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"max_new_tokens": 8, "top_k": 0}, r"top_k must be in \[1, inf\]"),
    ({"max_new_tokens": 8, "output_history": True}, "does not record the intermediate canvases"),
    ({"max_new_tokens": 8, "num_return_sequences": 2}, "repeat the prompts"),
])
def test_from_dream_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffusionGenerationConfig.from_dream(**kwargs)


@pytest.mark.parametrize("changes,message", [
    ({"schedule": "llada"}, r"\['alg', 'eps'\] are settings of Dream's sampler: add schedule='dream'"),
    ({"block_length": 4}, "set block_length = gen_length"),
    ({"remasking": "margin"}, "picks positions by alg"),
    ({"confidence_eos_eot_inf": True}, "use logits_eos_inf"),
    ({"cache": "dual"}, "no suffix to cache"),
    ({"cache": "prefix", "suppress_mask_token": False}, "need suppress_mask_token"),
    ({"threshold": 0.9}, "use alg 'maskgit_plus' or 'topk_margin', not 'entropy'"),
    ({"threshold": 0.9, "alg": "maskgit_plus", "alg_temp": 0.5}, "set alg_temp=None"),
    ({"schedule": "beam"}, "schedule must be one of"),
])
def test_dream_schedule_refuses_what_it_does_not_have(changes, message):
    base = DiffusionGenerationConfig.from_dream(max_new_tokens=8, steps=4, alg="entropy")
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(base, **changes)


def test_llada_schedule_refuses_dream_fields():
    with pytest.raises(ValueError, match=r"\['alg', 'top_k'\] are settings of Dream's sampler"):
        DiffusionGenerationConfig(alg="entropy", top_k=5)


def test_dream_requests_resolve_to_one_span():
    overrides = {"schedule": "dream", "alg": "entropy", "temperature": 0.1, "top_p": 0.9}
    resolved = DiffusionGenerationConfig.from_request({"max_gen_toks": 40, "top_k": 5, "until": ["."]},
                                                      overrides=overrides)
    config = resolved.config
    assert (config.gen_length, config.block_length, config.steps, config.top_k, config.top_p) == (40, 40, 40, 5, 0.9)
    assert resolved.keep == 40 and not resolved.notes
    stepped = DiffusionGenerationConfig.from_request({"max_gen_toks": 40}, overrides={**overrides, "steps": 12})
    assert stepped.config.steps == 12 and stepped.config.gen_length == 40  # Dream's steps are for the whole span
    llada = DiffusionGenerationConfig.from_request({"max_gen_toks": 16, "top_k": 5}, overrides={"block_length": 8})
    assert llada.config.top_k is None and "top_k" in llada.notes[0][1]  # ignored by LLaDA's sampler, with a note
