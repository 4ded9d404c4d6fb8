"""GIFT and CART (trl_lift.baselines): hand-computed probabilities and weights, the callbacks, training."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, load_diffusion_model  # noqa: E402
from trl_lift.baselines import CARTWeighting, GIFTMasking, cart_kernel, cart_weights, gift_masking_probs  # noqa: E402
from trl_lift.losses import GoldScores  # noqa: E402
from trl_lift.masking import mask_positions, sample_times  # noqa: E402
from trl_lift.token_weighting import DiffusionBatch  # noqa: E402

ARGS = SimpleNamespace(time_epsilon=1e-3, loss_weighting="inverse_t")
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


class EntropyScorer:
    def __init__(self, entropy):
        self.entropy, self.calls = entropy, []

    def __call__(self, ids, targets, *, train_mode=True):
        self.calls.append((ids.clone(), targets.clone(), train_mode))
        valid = targets != -100
        zero = torch.zeros_like(self.entropy)
        return GoldScores(zero, torch.where(valid, self.entropy, zero), valid & False)


def _padded_batch():
    """Prompt 0-2, answer 3-9; row 1 has 3 positions of (unsupervised) right padding."""
    x0 = torch.arange(40).reshape(2, 20)[:, :10] + 10
    attention = torch.ones_like(x0)
    attention[1, 7:] = 0
    answer = torch.zeros_like(x0, dtype=torch.bool)
    answer[:, 3:] = True
    answer[1, 7:] = False
    return DiffusionBatch(x0, attention, answer, MASK_ID)


def test_gift_callback():
    batch = _padded_batch()
    entropy = torch.rand(batch.input_ids.shape, generator=torch.Generator().manual_seed(0)) * 4
    callback = GIFTMasking()
    callback.generator.manual_seed(0)  # t = 0.50, 0.77
    state = callback.generator.get_state()
    scorer = EntropyScorer(entropy)
    noised = callback.noise(batch, scorer=scorer, args=ARGS)
    (ids, targets, train_mode), = scorer.calls
    # The scoring pass sees the whole answer masked, the prompt intact; targets exclude padding.
    assert torch.equal(ids == MASK_ID, batch.answer_mask) and train_mode is True
    assert torch.equal(targets != -100, batch.answer_mask)
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
    supervised = DiffusionBatch(batch.input_ids, torch.ones_like(batch.attention_mask), batch.answer_mask | padding, MASK_ID)
    supervised.padding_mask = padding  # what the trainer would pass (see the report)
    scorer = EntropyScorer(torch.ones(2, 10))
    callback = GIFTMasking(scoring_mode="eval")
    callback.generator.manual_seed(0)
    for _ in range(10):
        noised = callback.noise(supervised, scorer=scorer, args=ARGS)
        assert not (noised.loss_weights[padding] > 0).any() and not (noised.input_ids[padding] == MASK_ID).any()
    ids, targets, train_mode = scorer.calls[0]
    assert torch.equal(ids == MASK_ID, batch.answer_mask) and train_mode is False  # whole answer, not padding
    assert torch.equal(targets != -100, batch.answer_mask)  # entropies of content only


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


@pytest.mark.parametrize("inverse_t", [False, True])
def test_cart_callback(inverse_t):
    batch = _padded_batch()
    callback = CARTWeighting(inverse_t=inverse_t)
    callback.generator.manual_seed(5)
    replay = torch.Generator()
    replay.set_state(callback.generator.get_state())
    noised = callback.noise(batch, scorer=None, args=ARGS)
    t = sample_times(2, eps=1e-3, generator=replay)
    masked = mask_positions(batch.answer_mask, t, generator=replay)
    assert torch.equal(noised.input_ids == MASK_ID, masked) and masked.any()
    context = (batch.attention_mask == 1) & ~masked  # prompt included, hidden padding not
    expected = cart_weights(masked, context, p=0.1) * ((1 / t)[:, None] if inverse_t else 1.0)
    torch.testing.assert_close(noised.loss_weights, expected, atol=0, rtol=0)
    assert noised.normalization == "sequence"
    assert CARTWeighting(**callback.state_args()).state_args() == callback.state_args()


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
