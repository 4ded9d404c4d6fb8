"""Gold-token scoring (chunked head, logit shift) and the loss normalisations, by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from trl_lift import diffusion_loss, gold_log_probs, load_diffusion_model


def test_diffusion_loss_normalisations_by_hand():
    log_probs = torch.tensor([[0.0, -1.0, -2.0, 0.0], [0.0, 0.0, -3.0, -0.5]])
    weights = torch.tensor([[0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 4.0, 4.0]])  # 1/t = 2 and 4
    answer = torch.tensor([[False, True, True, True], [False, True, True, True]])
    # per-token losses: row 0: 2*1 + 2*2 = 6; row 1: 4*3 + 4*0.5 = 14
    assert diffusion_loss(log_probs, weights, answer, normalization="sequence").item() == pytest.approx((6 / 3 + 14 / 3) / 2)
    assert diffusion_loss(log_probs, weights, answer, normalization="sequence", num_sequences=4).item() == pytest.approx(
        (6 / 3 + 14 / 3) / 4
    )
    assert diffusion_loss(log_probs, weights, answer, normalization="batch").item() == pytest.approx(20 / 6)
    assert diffusion_loss(log_probs, weights, answer, normalization="batch", num_items=10).item() == pytest.approx(2.0)
    assert diffusion_loss(log_probs, weights, answer, normalization="masked").item() == pytest.approx(20 / 4)
    with pytest.raises(ValueError, match="normalization"):
        diffusion_loss(log_probs, weights, answer, normalization="tokens")


def test_empty_loss_is_finite_zero():
    zeros = torch.zeros(1, 3)
    for norm in ("sequence", "batch", "masked"):
        assert diffusion_loss(zeros, zeros, zeros.bool(), normalization=norm).item() == 0.0


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_gold_log_probs_match_full_logits_with_shift(family, llada_checkpoint, dream_checkpoint):
    path, _ = llada_checkpoint if family == "llada" else dream_checkpoint
    model = load_diffusion_model(path).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (2, 10), generator=g)
    targets = torch.full_like(ids, -100)
    targets[0, 3], targets[0, 7], targets[1, 9] = 11, 12, 13
    with torch.no_grad():
        scores = gold_log_probs(model, ids, targets)
        logits = model(ids).logits.float()
    if family == "dream":  # logits at i predict i + 1
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    logp = F.log_softmax(logits, -1)
    for b, i, tok in [(0, 3, 11), (0, 7, 12), (1, 9, 13)]:
        assert scores.log_probs[b, i].item() == pytest.approx(logp[b, i, tok].item(), abs=1e-5)
        entropy = -(logp[b, i].exp() * logp[b, i]).sum().item()
        assert scores.entropy[b, i].item() == pytest.approx(entropy, abs=1e-4)
    off = targets == -100
    assert (scores.log_probs[off] == 0).all() and not scores.is_top1[off].any()
    assert scores.log_probs.shape == ids.shape
    assert math.isfinite(scores.log_probs.sum().item())
