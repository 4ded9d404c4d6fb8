"""The exact sampler: schedule, confidences, selection, config errors, and token-for-token agreement
with an independent re-implementation of LLaDA's reference ``generate`` (tests/_sampling_reference.py)."""

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from _sampling_reference import _favour_token, reference_generate  # noqa: E402

from trl_lift.diffusion.masking import top_k_positions as select_by_quota  # noqa: E402  (the sampler's quota rule)
from trl_lift.generation.config import DiffusionGenerationConfig  # noqa: E402
from trl_lift.generation.sampler import DiffusionGenerateOutput, diffusion_generate  # noqa: E402
from trl_lift.generation.schedule import (  # noqa: E402
    propose_tokens,
    select_by_threshold,
    token_confidence,
    transfer_schedule,
)

P = 10  # prompt length


@pytest.fixture(scope="module")
def eos_llada(llada, llada_tokenizer):
    """The tiny LLaDA made to propose EOS (and end-of-turn) at many masked positions."""
    model = copy.deepcopy(llada)
    _favour_token(model, llada_tokenizer.eos_token_id, 7.0, mask_id=llada_tokenizer.mask_token_id)
    eot = llada_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    return _favour_token(model, eot, 8.0, mask_id=llada_tokenizer.mask_token_id, jitter=0.5)


def _prompts(batch=1, seed=0, length=P):
    return torch.randint(0, 300, (batch, length), generator=torch.Generator().manual_seed(seed))


def _left_padded(tok, seed=3):
    """Three prompts of lengths 10, 7, 4, left-padded with the pad id, and their mask."""
    ids = _prompts(3, seed)
    mask = torch.ones_like(ids)
    for row, pad in ((1, 3), (2, 6)):
        ids[row, :pad] = tok.pad_token_id
        mask[row, :pad] = 0
    return ids, mask


def _generate(model, ids, mask=None, generator=None, **kw):
    return diffusion_generate(model, ids, mask, generation_config=DiffusionGenerationConfig(**kw), generator=generator)


# --- pure functions ---------------------------------------------------------------------------


def test_transfer_schedule_spreads_the_remainder_over_the_first_steps():
    assert transfer_schedule(torch.tensor([8]), 3).tolist() == [[3, 3, 2]]
    table = transfer_schedule(torch.tensor([8, 2, 0, 6]), 3)
    assert table.tolist() == [[3, 3, 2], [1, 1, 0], [0, 0, 0], [2, 2, 2]]
    assert transfer_schedule(torch.tensor([5]), 1).tolist() == [[5]]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        transfer_schedule(torch.tensor([4]), 0)


def test_quota_selection_breaks_exact_ties_to_the_leftmost_position():
    conf = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.7, 0.5]])
    cand = torch.tensor([[True, True, True, True, False, True]])
    picks = [select_by_quota(conf, cand, torch.tensor([k]))[0].nonzero().flatten().tolist() for k in range(1, 6)]
    assert picks == [[1], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 5]]
    # a quota larger than the candidates never commits a non-candidate
    assert select_by_quota(conf, cand, torch.tensor([6]))[0].tolist() == cand[0].tolist()
    # rows are independent
    two = select_by_quota(conf.repeat(2, 1), cand.repeat(2, 1), torch.tensor([1, 3]))
    assert two.sum(1).tolist() == [1, 3]


def test_threshold_selection_commits_the_best_and_everything_above_tau():
    conf = torch.tensor([[0.2, 0.95, 0.3, 0.91, 0.99], [0.4, 0.1, 0.4, 0.2, 0.3], [0.9, 0.9, 0.9, 0.9, 0.9]])
    cand = torch.tensor([[True, True, True, True, False], [True, True, True, True, True], [False] * 5])
    out = select_by_threshold(conf, cand, 0.9)
    assert out.tolist() == [
        [False, True, False, True, False],  # 0.99 is not a candidate
        [True, False, False, False, False],  # none above tau: the best, ties to the leftmost
        [False] * 5,  # no candidates, nothing committed
    ]


def test_confidences_are_float32_exact_values():
    logits = torch.tensor([[[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.bfloat16)  # [1, 2, 4]
    tokens = torch.tensor([[0, 3]])
    probs = torch.softmax(logits.float(), dim=-1)
    low = token_confidence(logits, tokens, "low_confidence")
    assert low.dtype == torch.float32
    assert torch.equal(low, torch.stack([probs[0, 0, 0], probs[0, 1, 3]]).unsqueeze(0))
    margin = token_confidence(logits, tokens, "margin")
    assert torch.equal(margin[0], torch.stack([probs[0, 0, 0] - probs[0, 0, 1], torch.tensor(0.0)]))
    entropy = token_confidence(logits, tokens, "entropy")
    assert torch.allclose(entropy[0, 1], torch.log(torch.tensor(0.25)))  # -H of a uniform over 4
    assert torch.allclose(entropy[0, 0], (probs[0, 0] * probs[0, 0].log()).sum())
    # excluded ids get probability 0: a proposal of one has confidence 0, the rest renormalise
    excl = token_confidence(logits, tokens, "low_confidence", excluded_ids=[0])
    assert excl[0, 0].item() == 0.0
    assert torch.allclose(excl[0, 1], torch.tensor(1 / 3))
    assert torch.isfinite(token_confidence(logits, tokens, "entropy", excluded_ids=[0])).all()
    rand = token_confidence(logits, tokens, "random", generator=torch.Generator().manual_seed(0))
    assert torch.equal(rand, torch.rand((1, 2), generator=torch.Generator().manual_seed(0)))


def test_gumbel_max_is_seeded_float64_and_samples_the_softmax():
    logits = torch.tensor([0.0, 1.0, 2.0]).expand(1, 20000, 3)
    draw = propose_tokens(logits, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(draw, propose_tokens(logits, 1.0, torch.Generator().manual_seed(0)))
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(draw, (logits.double() - torch.log(-torch.log(u))).argmax(-1))
    freq = torch.bincount(draw.flatten(), minlength=3).double() / draw.numel()
    assert torch.allclose(freq, torch.softmax(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), 0), atol=0.015)
    hot = propose_tokens(logits[:, :1], 0.5, torch.Generator().manual_seed(0))  # lower T: sharper
    assert hot.shape == (1, 1)
    assert torch.equal(propose_tokens(logits, 0.0), torch.full((1, 20000), 2))


# --- configuration and input errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gen_length=16, block_length=5, steps=16), "multiple of block_length"),
        (dict(gen_length=16, block_length=4, steps=6), "divide evenly among the 4 blocks"),
        (dict(gen_length=16, block_length=8, steps=32), "exceeds block_length"),
        (dict(gen_length=0, block_length=4, steps=4), "gen_length must be a positive integer"),
        (dict(gen_length=8.0, block_length=4, steps=4), "gen_length must be a positive integer"),
        (dict(gen_length=8, block_length=8, steps=8, temperature=-0.1), "temperature must be >= 0"),
        (dict(gen_length=8, block_length=8, steps=8, remasking="topk"), "remasking must be one of"),
        (dict(gen_length=8, block_length=8, steps=8, cfg_scale=-1.0), "cfg_scale must be >= 0"),
        (dict(gen_length=8, block_length=8, steps=8, cache="kv"), "cache must be one of"),
        (dict(gen_length=8, block_length=8, steps=8, threshold=0.0), r"threshold must be in \(0, 1\]"),
        (dict(gen_length=8, block_length=8, steps=8, threshold=1.5), r"threshold must be in \(0, 1\]"),
        (dict(gen_length=8, block_length=8, steps=8, threshold=0.9, remasking="entropy"), "use remasking in"),
    ],
)
def test_config_errors_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffusionGenerationConfig(**kwargs)


def test_input_errors_name_the_fix(llada, llada_tokenizer, dream_checkpoint):
    tok = llada_tokenizer
    cfg = DiffusionGenerationConfig(gen_length=4, block_length=4, steps=4)
    ids = _prompts(2)
    right = torch.ones_like(ids)
    right[1, -3:] = 0
    with pytest.raises(ValueError, match="left-padded"):
        diffusion_generate(llada, ids, right, cfg)
    padded_with_mask = ids.clone()
    padded_with_mask[1, :3] = tok.mask_token_id
    with pytest.raises(ValueError, match="pad with another token"):
        diffusion_generate(llada, padded_with_mask, torch.ones_like(ids), cfg)
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        diffusion_generate(llada, ids[0], None, cfg)
    with pytest.raises(ValueError, match="differs from input_ids shape"):
        diffusion_generate(llada, ids, torch.ones(2, 3, dtype=torch.long), cfg)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):  # e.g. the 8B end-of-turn id
        diffusion_generate(llada, ids, None, DiffusionGenerationConfig(
            gen_length=4, block_length=4, steps=4, confidence_eos_eot_inf=True, eot_token_id=126348))
    causal = copy.deepcopy(llada)
    causal.config.is_causal = True
    with pytest.raises(ValueError, match="bidirectional model"):
        diffusion_generate(causal, ids, None, cfg)
    no_mask = copy.deepcopy(llada)
    no_mask.config.mask_token_id = None
    no_mask.config.diffusion_family = "bidirectional"
    with pytest.raises(ValueError, match="no mask token id"):
        diffusion_generate(no_mask, ids, None, cfg)
    out = diffusion_generate(no_mask, ids, None, DiffusionGenerationConfig(gen_length=4, block_length=4, steps=4, mask_token_id=tok.mask_token_id))
    assert out.sequences.shape == (2, P + 4)


# --- the exact path against the reference -----------------------------------------------------

SCHEDULES = [
    dict(gen_length=16, block_length=16, steps=16),
    dict(gen_length=16, block_length=8, steps=6),  # 8 masks over 3 steps: 3, 3, 2
    dict(gen_length=16, block_length=4, steps=8),
    dict(gen_length=12, block_length=4, steps=3),  # one step per block
]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_exact_path_matches_the_reference_token_for_token(llada, llada_tokenizer, schedule):
    mask_id = llada_tokenizer.mask_token_id
    ids = _prompts(1, seed=1)
    out = _generate(llada, ids, **schedule)
    expected, _, nfe = reference_generate(llada, ids, mask_id=mask_id, **schedule)
    assert torch.equal(out.sequences, expected)
    assert out.nfe == nfe == schedule["steps"]
    assert isinstance(out, DiffusionGenerateOutput)
    assert torch.equal(out.sequences[:, :P], ids)  # prompt unchanged
    assert not (out.sequences == mask_id).any()  # no mask left


def test_decoding_order_matters_so_the_comparison_can_fail(llada, llada_tokenizer):
    """The schedules above give different outputs on this model: matching the reference is not luck."""
    ids = _prompts(1, seed=1)
    outs = {tuple(_generate(llada, ids, **s).sequences[0, P : P + 12].tolist()) for s in SCHEDULES}
    assert len(outs) >= 3
    assert len(set(_generate(llada, ids, **SCHEDULES[0]).sequences[0, P:].tolist())) >= 5


def test_exact_path_matches_the_reference_with_cfg_and_left_padding(llada, llada_tokenizer):
    mask_id = llada_tokenizer.mask_token_id
    ids, mask = _left_padded(llada_tokenizer)
    for cfg_scale in (0.0, 1.0):
        out = _generate(llada, ids, mask, gen_length=16, block_length=8, steps=8, cfg_scale=cfg_scale)
        expected, _, nfe = reference_generate(
            llada, ids, mask, steps=8, gen_length=16, block_length=8, mask_id=mask_id, cfg_scale=cfg_scale
        )
        assert torch.equal(out.sequences, expected)
        assert out.nfe == nfe == (16 if cfg_scale else 8)
        assert torch.equal(out.sequences[:, :P], ids)
    guided = _generate(llada, ids, mask, gen_length=16, block_length=8, steps=8, cfg_scale=1.0).sequences
    plain = _generate(llada, ids, mask, gen_length=16, block_length=8, steps=8).sequences
    assert not torch.equal(guided, plain)  # guidance changes the output on this model


def test_cfg_without_attention_mask_matches_the_reference(llada, llada_tokenizer):
    ids = _prompts(2, seed=4)
    out = _generate(llada, ids, gen_length=8, block_length=8, steps=4, cfg_scale=0.5)
    expected, _, _ = reference_generate(
        llada, ids, steps=4, gen_length=8, block_length=8, mask_id=llada_tokenizer.mask_token_id, cfg_scale=0.5
    )
    assert torch.equal(out.sequences, expected)


def test_batched_rows_equal_their_solo_runs(llada, llada_tokenizer):
    ids, mask = _left_padded(llada_tokenizer)
    for kw in (dict(), dict(cfg_scale=1.0), dict(remasking="margin"), dict(remasking="entropy")):
        batch = _generate(llada, ids, mask, gen_length=16, block_length=4, steps=8, **kw).sequences
        for row, pad in enumerate((0, 3, 6)):
            solo = _generate(llada, ids[row : row + 1, pad:], gen_length=16, block_length=4, steps=8, **kw).sequences
            assert torch.equal(batch[row, pad:], solo[0]), (kw, row)


def test_eos_flags_match_the_reference_including_ties(eos_llada, llada_tokenizer):
    tok = llada_tokenizer
    eos, eot, mask_id = tok.eos_token_id, tok.convert_tokens_to_ids("<|eot_id|>"), tok.mask_token_id
    ids, mask = _left_padded(tok, seed=5)
    schedule = dict(gen_length=16, block_length=8, steps=16)
    outputs = {}
    for flags in (dict(), dict(logits_eos_inf=True), dict(confidence_eos_eot_inf=True)):
        out = _generate(eos_llada, ids, mask, eot_token_id=eot, **schedule, **flags)
        expected, ties, _ = reference_generate(
            eos_llada, ids, mask, mask_id=mask_id, eos_id=eos, eot_id=eot, **schedule, **flags
        )
        assert torch.equal(out.sequences, expected), flags
        outputs[tuple(flags)] = (out.sequences[:, P:], ties)
    plain, _ = outputs[()]
    no_eos, _ = outputs[("logits_eos_inf",)]
    deferred, ties = outputs[("confidence_eos_eot_inf",)]
    assert (plain == eos).sum() >= 4 and (plain == eot).sum() >= 1  # the model does like EOS / EoT
    assert not (no_eos == eos).any()
    assert not torch.equal(deferred, plain)
    assert ties > 0  # zero-confidence EOS proposals tie, and the leftmost rule decided


def test_dream_shift_matches_the_reference_with_shifted_logits(dream, dream_tokenizer):
    ids = _prompts(2, seed=6)
    mask = torch.ones_like(ids)
    ids[1, :2] = dream_tokenizer.pad_token_id
    mask[1, :2] = 0
    out = _generate(dream, ids, mask, gen_length=12, block_length=4, steps=6)
    expected, _, _ = reference_generate(
        dream, ids, mask, steps=6, gen_length=12, block_length=4, mask_id=dream_tokenizer.mask_token_id, shift=True
    )
    assert torch.equal(out.sequences, expected)
    unshifted, _, _ = reference_generate(
        dream, ids, mask, steps=6, gen_length=12, block_length=4, mask_id=dream_tokenizer.mask_token_id, shift=False
    )
    assert not torch.equal(out.sequences, unshifted)


def test_a_proposed_mask_token_is_decoded_again_as_in_the_reference(llada, llada_tokenizer):
    """Tiny random models can propose the mask token; the reference leaves it masked and revisits it."""
    mask_id = llada_tokenizer.mask_token_id
    model = _favour_token(copy.deepcopy(llada), mask_id, 6.0, mask_id=mask_id)
    ids = _prompts(2, seed=7)
    schedule = dict(gen_length=16, block_length=4, steps=16)
    expected, _, _ = reference_generate(model, ids, mask_id=mask_id, **schedule)
    out = _generate(model, ids, **schedule)
    assert torch.equal(out.sequences, expected)
    assert (expected[:, P:] == mask_id).sum() >= 2  # the quirk happened: committed masks, some revisited
    clean = _generate(model, ids, suppress_mask_token=True, **schedule).sequences
    assert not (clean == mask_id).any()
    assert torch.equal(clean[:, :P], ids)


def test_sampling_is_reproducible_under_a_seed(llada, llada_tokenizer):
    ids, mask = _left_padded(llada_tokenizer)
    for kw in (dict(temperature=1.0), dict(remasking="random"), dict(temperature=0.7, cfg_scale=0.5)):
        runs = [
            _generate(llada, ids, mask, torch.Generator().manual_seed(s), gen_length=16, block_length=8, steps=8, **kw).sequences
            for s in (0, 0, 1)
        ]
        assert torch.equal(runs[0], runs[1]), kw
        assert not torch.equal(runs[0], runs[2]), kw
        assert not (runs[0] == llada_tokenizer.mask_token_id).any()
        assert torch.equal(runs[0][:, :P], ids)


def test_progress_bar_counts_steps(llada, capsys):
    _generate(llada, _prompts(1), gen_length=8, block_length=4, steps=4, progress=True)
    assert "4/4" in capsys.readouterr().err
