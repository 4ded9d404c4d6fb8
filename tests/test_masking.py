"""Forward noising functions: exact values and invariants."""

import pytest
import torch

from trl_lift.diffusion.masking import (
    answer_mask_from_labels,
    apply_mask,
    grid_times,
    mask_positions,
    random_subset,
    sample_times,
    top_k_positions,
    uniform,
)


def test_sample_times_range_and_reproducibility():
    t1 = sample_times(1000, eps=0.1, generator=torch.Generator().manual_seed(3))
    t2 = sample_times(1000, eps=0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(t1, t2)
    assert t1.min() >= 0.1 and t1.max() < 1.0
    u = torch.rand(4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(sample_times(4, eps=1e-3, generator=torch.Generator().manual_seed(5)), 0.999 * u + 1e-3)
    with pytest.raises(ValueError):
        sample_times(2, eps=1.0)


def test_grid_times_are_cell_midpoints():
    torch.testing.assert_close(grid_times(4, eps=0.0), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    torch.testing.assert_close(grid_times(2, eps=0.2), torch.tensor([0.4, 0.8]))
    with pytest.raises(ValueError):
        grid_times(0)


def test_answer_mask_and_padding_supervision():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, 8, 9, 10]])
    attention = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    plain = answer_mask_from_labels(labels, attention, supervise_padding=False)
    padded = answer_mask_from_labels(labels, attention, supervise_padding=True)
    assert plain.tolist() == [[False, False, True, True, False], [False, True, True, True, True]]
    assert padded.tolist() == [[False, False, True, True, True], [False, True, True, True, True]]


def test_mask_positions_only_touches_the_answer_and_follows_t():
    answer = torch.zeros(2, 4000, dtype=torch.bool)
    answer[:, 1000:] = True
    masked = mask_positions(answer, torch.tensor([0.25, 0.75]), generator=torch.Generator().manual_seed(0))
    assert not masked[:, :1000].any()
    ratios = masked[:, 1000:].float().mean(1)
    assert abs(ratios[0] - 0.25) < 0.03 and abs(ratios[1] - 0.75) < 0.03
    assert not mask_positions(answer, torch.tensor([0.0, 0.0])).any()
    assert torch.equal(mask_positions(answer, torch.tensor([1.0, 1.0])), answer)


def test_apply_mask_does_not_mutate():
    ids = torch.tensor([[1, 2, 3]])
    out = apply_mask(ids, torch.tensor([[False, True, False]]), 99)
    assert out.tolist() == [[1, 99, 3]] and ids.tolist() == [[1, 2, 3]]


def test_top_k_positions_exact_with_stable_ties():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9, 0.3], [1.0, 2.0, 3.0, 4.0, 5.0]])
    candidates = torch.tensor([[True, True, True, True, True], [True, True, True, False, True]])
    chosen = top_k_positions(scores, candidates, torch.tensor([2, 3]))
    assert chosen.tolist() == [[False, True, False, True, False], [False, True, True, False, True]]
    # Ties go to the lower position.
    assert top_k_positions(scores, candidates, torch.tensor([1, 0]))[0].tolist() == [False, True, False, False, False]
    # k larger than the candidates takes them all.
    assert torch.equal(top_k_positions(scores, candidates, torch.tensor([9, 9])), candidates)


def test_random_subset_counts():
    candidates = torch.tensor([[True] * 10, [False] * 5 + [True] * 5])
    chosen = random_subset(candidates, torch.tensor([4, 7]), generator=torch.Generator().manual_seed(1))
    assert chosen.sum(1).tolist() == [4, 5]
    assert not (chosen & ~candidates).any()


# ---- per-example noise (trl_lift.diffusion.example_noise) -------------------------------------------------
def test_row_noise_does_not_depend_on_batch_position_padding_or_neighbours():
    from trl_lift.diffusion.example_noise import row_seeds

    a, b, c = torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10]), torch.tensor([11, 12, 13])
    batch = torch.zeros(3, 6, dtype=torch.long)
    content = torch.zeros(3, 6, dtype=torch.bool)
    for i, row in enumerate((a, b, c)):
        batch[i, : len(row)], content[i, : len(row)] = row, True
    noise = row_seeds(batch, content, seed=7, step=3)
    t, masks = sample_times(3, generator=noise), uniform((3, 6), generator=noise)
    # Row b alone, padded to another length, in another batch position: the same draws on its tokens.
    alone = row_seeds(torch.tensor([[9, 10, 0, 0, 0, 0, 0, 0, 0]]), torch.tensor([[1, 1] + [0] * 7]).bool(),
                      seed=7, step=3)
    t_b, masks_b = sample_times(1, generator=alone), uniform((1, 9), generator=alone)
    assert t_b.item() == t[1].item()
    assert torch.equal(masks_b[0, :6], masks[1])
    # Another step, seed or content: other draws; identical rows in one batch: distinct draws.
    for other in (row_seeds(batch, content, seed=7, step=4), row_seeds(batch, content, seed=8, step=3)):
        assert not torch.equal(sample_times(3, generator=other), t)
    twins = row_seeds(torch.stack([batch[0], batch[0]]), torch.stack([content[0], content[0]]), seed=7, step=3)
    pair = sample_times(2, generator=twins)
    assert pair[0].item() == t[0].item() and pair[1].item() != pair[0].item()
    with pytest.raises(ValueError, match="a draw of 2 rows from RowSeeds of 3 rows"):
        uniform((2, 6), generator=noise)
