"""The Monte-Carlo ELBO against the exact ELBO, enumerated over every mask subset on a tiny model."""

import itertools
import math

import pytest
import torch

from trl_lift.evaluation.likelihood import ELBORequest, estimate_elbo, noised_copies, stratified_counts
from trl_lift.models.loading import load_diffusion_model
from trl_lift.diffusion.scoring import gold_log_probs


def exact_elbo(model, context, continuation, mask_id):
    """E_{t ~ U(0,1)} E_mask [(1/t) sum_masked log p]: a subset S of size k has weight
    int_0^1 t^(k-1) (1-t)^(n-k) dt = (k-1)! (n-k)! / n! (the 1/t cancels one factor t)."""
    n, p = len(continuation), len(context)
    sequence = torch.tensor(context + continuation)
    total = 0.0
    for k in range(1, n + 1):
        weight = math.factorial(k - 1) * math.factorial(n - k) / math.factorial(n)
        for subset in itertools.combinations(range(n), k):
            ids, targets = sequence.clone(), torch.full_like(sequence, -100)
            for i in subset:
                ids[p + i], targets[p + i] = mask_id, sequence[p + i]
            with torch.no_grad():
                total += weight * gold_log_probs(model, ids[None], targets[None]).log_probs.sum().item()
    return total


@pytest.fixture(scope="module")
def llada(llada_checkpoint):
    return load_diffusion_model(llada_checkpoint[0]).eval()


def test_noised_copies_masks_only_the_continuation():
    times = torch.tensor([0.0001, 0.5, 1.0])
    ids, targets = noised_copies([5, 6], [7, 8, 9], times, mask_token_id=99, generator=torch.Generator().manual_seed(0))
    assert ids[:, :2].eq(torch.tensor([5, 6])).all() and (targets[:, :2] == -100).all()
    assert (ids[2, 2:] == 99).all() and targets[2, 2:].tolist() == [7, 8, 9]  # t = 1 masks everything
    assert ((ids == 99) == (targets != -100)).all()


def test_mc_estimate_converges_to_exact_elbo_and_spread_shrinks(llada, llada_tokenizer):
    context = llada_tokenizer("Question: what is").input_ids
    continuation = llada_tokenizer(" 12 plus 30").input_ids[:3]
    mask_id = llada.config.mask_token_id
    exact = exact_elbo(llada, context, continuation, mask_id)

    def estimates(mc_num, seeds=8):
        out = []
        for seed in range(seeds):
            request = ELBORequest(context, continuation, torch.Generator().manual_seed(seed))
            out.append(estimate_elbo(llada, [request], mc_num=mc_num, mask_token_id=mask_id, pad_token_id=0, batch_size=512)[0][0])
        return torch.tensor(out, dtype=torch.float64)

    small, large = estimates(16), estimates(512)
    assert large.std() < small.std() / 3  # ~ sqrt(32) = 5.7 in expectation
    assert abs(large.mean().item() - exact) < 4 * large.std().item() / math.sqrt(len(large)) + 0.05 * abs(exact)


def test_estimate_is_independent_of_batch_composition(llada, llada_tokenizer):
    a = ELBORequest([1, 2, 3], [4, 5], torch.Generator().manual_seed(7))
    b = ELBORequest([9, 10, 11, 12, 13], [14], torch.Generator().manual_seed(8))
    kwargs = dict(mc_num=6, mask_token_id=llada.config.mask_token_id, pad_token_id=0, batch_size=5)
    together = estimate_elbo(llada, [b, a], **kwargs)
    a.generator.manual_seed(7)
    alone = estimate_elbo(llada, [a], **kwargs)
    assert together[1][0] == pytest.approx(alone[0][0], abs=1e-5)
    assert together[1][1] == alone[0][1]


def test_greedy_flag_is_argmax_of_fully_masked_continuation(llada):
    mask_id = llada.config.mask_token_id
    context = [1, 2, 3, 4]
    ids = torch.tensor([context + [mask_id, mask_id]])
    with torch.no_grad():
        argmax = llada(input_ids=ids).logits[0, 4:].argmax(-1).tolist()
    kwargs = dict(mc_num=2, mask_token_id=mask_id, pad_token_id=0)
    assert estimate_elbo(llada, [ELBORequest(context, argmax)], **kwargs)[0][1] is True
    other = [argmax[0], (argmax[1] + 1) % 300]
    assert estimate_elbo(llada, [ELBORequest(context, other)], **kwargs)[0][1] is False


def test_count_estimator_is_exact_in_expectation_with_lower_spread(llada, llada_tokenizer):
    context = llada_tokenizer("Question: what is").input_ids
    continuation = llada_tokenizer(" 12 plus 30").input_ids[:3]
    mask_id = llada.config.mask_token_id
    exact = exact_elbo(llada, context, continuation, mask_id)
    assert stratified_counts(6, 3).tolist() == [1, 1, 2, 2, 3, 3]

    def estimates(estimator, mc_num=24, seeds=12):
        out = []
        for seed in range(seeds):
            request = ELBORequest(context, continuation, torch.Generator().manual_seed(seed))
            out.append(estimate_elbo(llada, [request], mc_num=mc_num, mask_token_id=mask_id, pad_token_id=0,
                                     batch_size=512, estimator=estimator)[0][0])
        return torch.tensor(out, dtype=torch.float64)

    by_count, by_time = estimates("count"), estimates("time")
    # With C | K every l in 1..C is used equally: unbiased for the same bound.
    assert abs(by_count.mean().item() - exact) < 4 * by_count.std().item() / math.sqrt(len(by_count)) + 1e-6
    assert by_count.std() < by_time.std()
    with pytest.raises(ValueError, match="estimator"):
        estimate_elbo(llada, [ELBORequest(context, continuation)], mc_num=2, mask_token_id=mask_id, pad_token_id=0,
                      estimator="tokens")
