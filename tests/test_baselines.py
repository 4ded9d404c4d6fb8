"""GIFT and CART (trl_lift.methods): hand-computed probabilities, weights and losses, the methods, training."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, load_diffusion_model  # noqa: E402
from trl_lift.methods.cart import CARTWeighting, cart_kernel, cart_weights  # noqa: E402
from trl_lift.methods.gift import GIFTMasking, gift_masking_probs  # noqa: E402
from trl_lift.diffusion.masking import mask_positions, sample_times  # noqa: E402
from trl_lift.diffusion.scoring import GoldScores, gold_log_probs  # noqa: E402
from trl_lift.methods import DiffusionBatch  # noqa: E402

MASK_ID = 99


# ---- GIFT ----------------------------------------------------------------------------------------
def test_gift_probabilities_by_hand():
    entropy = torch.tensor([[4.0, 1.0, 0.0, 9.0, 7.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    content = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)  # row 0: 2 padding positions
    t = torch.tensor([0.5, 0.3])
    probs = gift_masking_probs(entropy, t, content, eps=1e-3)
    # Row 0: beta = (2, 1, 0), mean 1 -> t_i = 1 - 0.5^2, 1 - 0.5^1, 1 - 0.5^0 = 0 (clamped to eps); padding 0.
    # Row 1: all entropies zero -> ratio 1 -> t_i = t.
    expected = torch.tensor([[0.75, 0.5, 1e-3, 0.0, 0.0], [0.0, 0.3, 0.3, 0.3, 0.3]])
    torch.testing.assert_close(probs, expected, atol=1e-7, rtol=0)
    # Non-trivial mean: beta = (3, 1), mean 2, t = 0.2 -> 1 - 0.8^1.5, 1 - 0.8^0.5.
    probs = gift_masking_probs(torch.tensor([[9.0, 1.0]]), torch.tensor([0.2]), torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(probs, torch.tensor([[1 - 0.8**1.5, 1 - 0.8**0.5]]), atol=1e-7, rtol=0)


def _entropy_scores(plan, entropy):
    """What the trainer hands GIFT's ``finish``: ``entropy`` at the scored targets."""
    valid = plan.score_targets != -100
    zero = torch.zeros_like(entropy)
    return GoldScores(zero, torch.where(valid, entropy, zero), valid & False)


def _padded_batch():
    """Prompt 0-2, answer 3-9; row 1 has 3 positions of (unsupervised) right padding."""
    x0 = torch.arange(40).reshape(2, 20)[:, :10] + 10
    attention = torch.ones_like(x0)
    attention[1, 7:] = 0
    answer = torch.zeros_like(x0, dtype=torch.bool)
    answer[:, 3:] = True
    answer[1, 7:] = False
    return DiffusionBatch(x0, attention, answer, MASK_ID)


def test_gift_method():
    batch = _padded_batch()
    entropy = torch.rand(batch.input_ids.shape, generator=torch.Generator().manual_seed(0)) * 4
    method = GIFTMasking()
    method.generator.manual_seed(0)  # t = 0.50, 0.77
    state = method.generator.get_state()
    plan = method.plan(batch)
    # The scoring pass sees the whole answer masked, the prompt intact; targets exclude padding.
    assert torch.equal(plan.input_ids == MASK_ID, batch.answer_mask) and plan.train_mode is True
    assert torch.equal(plan.score_targets != -100, batch.answer_mask) and not plan.one_pass
    noised = method.finish(plan, _entropy_scores(plan, entropy))
    replay = torch.Generator()
    replay.set_state(state)
    t = sample_times(2, eps=1e-3, generator=replay)
    probs = gift_masking_probs(entropy, t, batch.answer_mask)
    masked = mask_positions(batch.answer_mask, probs, generator=replay)
    assert torch.equal(noised.t, t) and masked.any()
    assert torch.equal(noised.input_ids == MASK_ID, masked)
    torch.testing.assert_close(noised.loss_weights, masked / probs.clamp(min=1e-3), atol=0, rtol=0)
    assert noised.normalization == "masked"


def test_gift_excludes_supervised_padding_given_padding_mask():
    batch = _padded_batch()
    padding = batch.attention_mask == 0
    supervised = DiffusionBatch(batch.input_ids, torch.ones_like(batch.attention_mask), batch.answer_mask | padding,
                                MASK_ID, padding_mask=padding)  # what the trainer passes
    method = GIFTMasking(scoring_mode="eval")
    method.generator.manual_seed(0)
    for _ in range(10):
        plan = method.plan(supervised)
        assert torch.equal(plan.input_ids == MASK_ID, batch.answer_mask) and plan.train_mode is False  # not padding
        assert torch.equal(plan.score_targets != -100, batch.answer_mask)  # entropies of content only
        noised = method.finish(plan, _entropy_scores(plan, torch.ones(2, 10)))
        assert not (noised.loss_weights[padding] > 0).any() and not (noised.input_ids[padding] == MASK_ID).any()


# ---- CART ----------------------------------------------------------------------------------------
def test_cart_weights_by_hand():
    masked = torch.tensor([[0, 1, 1, 0, 0]], dtype=torch.bool)
    context = ~masked
    # Position 1: j = 0 (d 1), 3 (d 2), 4 (d 3): 0.05 + 0.045 + 0.0405; position 2: j = 0 (d 2), 3 (d 1), 4 (d 2).
    expected = torch.tensor([[0.0, 0.05 + 0.045 + 0.0405, 0.045 + 0.05 + 0.045, 0.0, 0.0]])
    torch.testing.assert_close(cart_weights(masked, context, p=0.1), expected, atol=1e-7, rtol=0)
    # p = 0.5, an invisible position 4 is not context: position 0 <- j = 2 (d 2) = 0.25 * 0.5, j = 3 (d 3) = 0.25 * 0.25
    masked = torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool)
    context = torch.tensor([[0, 0, 1, 1, 0]], dtype=torch.bool)
    got = cart_weights(masked, context, p=0.5)
    torch.testing.assert_close(got, torch.tensor([[0.125 + 0.0625, 0.25 + 0.125, 0, 0, 0]]), atol=1e-7, rtol=0)
    kernel = cart_kernel(4, p=0.1)
    assert torch.equal(kernel, kernel.T) and (kernel.diagonal() == 0).all()
    with pytest.raises(ValueError):
        cart_weights(masked, context, p=0.0)


@pytest.mark.parametrize("variant", ["lift_reference", "dream"])
def test_cart_method(variant):
    batch = _padded_batch()
    method = CARTWeighting(variant=variant)
    method.generator.manual_seed(5)
    replay = torch.Generator()
    replay.set_state(method.generator.get_state())
    plan = method.plan(batch)
    assert plan.score_targets is None  # CART needs no scoring pass
    noised = method.finish(plan, None)
    t = sample_times(2, eps=1e-3, generator=replay)
    masked = mask_positions(batch.answer_mask, t, generator=replay)
    assert torch.equal(noised.input_ids == MASK_ID, masked) and masked.any()
    context = (batch.attention_mask == 1) & ~masked  # prompt included, hidden padding not
    expected = cart_weights(masked, context, p=0.1) * ((1 / t)[:, None] if variant == "lift_reference" else 1.0)
    torch.testing.assert_close(noised.loss_weights, expected, atol=0, rtol=0)
    assert noised.normalization == {"lift_reference": "micro_batch", "dream": "masked"}[variant]
    assert CARTWeighting(**method.state()["args"]).state()["args"] == method.state()["args"]
    with pytest.raises(ValueError, match="variant"):
        CARTWeighting(variant="x")


# ---- training by one setting ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(llada_checkpoint, dream_checkpoint):
    """Paths of the tiny LLaDA- and Dream-format checkpoints (tests/conftest.py)."""
    return {"llada": llada_checkpoint[0], "dream": dream_checkpoint[0]}


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize("method", ["gift", "cart"])
def test_baseline_trains_by_one_setting(checkpoints, tmp_path, family, method):
    path = checkpoints[family]
    rows = [{"prompt": f"Question: what is {i} plus {i}?", "completion": f" Answer: {2 * i}."} for i in range(8)]
    args = DiffusionSFTConfig(output_dir=str(tmp_path), token_weighting=method, max_steps=16, per_device_train_batch_size=4,
                              learning_rate=3e-3, logging_steps=8, report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = DiffusionSFTTrainer(load_diffusion_model(path), args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=PreTrainedTokenizerFast.from_pretrained(path))
    assert type(trainer.token_weighting) is {"gift": GIFTMasking, "cart": CARTWeighting}[method]
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert f"{method}_{'entropy' if method == 'gift' else 'weight'}" in trainer.state.log_history[0]


@pytest.mark.parametrize("method", ["gift", "cart", "vanilla"])
def test_a_method_that_never_trains_supervised_padding_is_warned_about(checkpoints, tmp_path, method):
    rows = [{"prompt": "Question: 1 + 1?", "completion": " 2."}]
    args = DiffusionSFTConfig(output_dir=str(tmp_path), token_weighting=method, max_length=16, pad_to_max_length=True,
                              report_to=[], save_strategy="no")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(checkpoints["llada"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DiffusionSFTTrainer(load_diffusion_model(checkpoints["llada"]), args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer)
    warned = [str(w.message) for w in caught if "never learns to write EOS" in str(w.message)]
    assert len(warned) == (method == "gift") and all("gift excludes the trailing padding" in m for m in warned)


@pytest.mark.parametrize("variant", ["lift_reference", "dream"])
def test_cart_loss_by_hand(checkpoints, tmp_path, variant):
    """The trainer's CART loss: sum w_i CE_i / t over the answer tokens (LIFT reference), or sum w_i CE_i over the
    masked tokens (Dream's trainer)."""
    path = checkpoints["llada"]
    rows = [{"prompt": f"Question: what is {i} plus {i}?", "completion": f" Answer: {2 * i}." + " x" * i} for i in range(4)]
    args = DiffusionSFTConfig(output_dir=str(tmp_path), token_weighting="cart", cart_variant=variant, max_steps=1,
                              per_device_train_batch_size=4, report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = DiffusionSFTTrainer(load_diffusion_model(path), args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=PreTrainedTokenizerFast.from_pretrained(path))
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    model = trainer.model.train()  # a training step (the tiny model has no dropout)
    replay = trainer._diffusion_batch(inputs).noise  # the step's per-example seeds, drawn again from the start
    with torch.no_grad():
        loss = trainer.compute_loss(model, inputs)
    # By hand, from the same draws.
    padding = inputs["attention_mask"] == 0
    answer = (inputs["labels"] != -100) | padding  # LLaDA: padding supervised, filled with EOS, attended
    x0 = inputs["input_ids"].masked_fill(padding, trainer.facts.eos_token_id)
    t = sample_times(4, eps=1e-3, generator=replay)
    masked = mask_positions(answer, t, generator=replay)
    weights = cart_weights(masked, ~masked, p=0.1)
    noised = x0.masked_fill(masked, trainer.facts.mask_token_id)
    with torch.no_grad():
        ce = -gold_log_probs(model, noised, x0.masked_fill(~masked, -100)).log_probs
    if variant == "lift_reference":
        expected = (weights * ce / t[:, None]).sum() / answer.sum()
    else:
        expected = (weights * ce).sum() / masked.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
