"""LIFT (trl_lift.lift): the pure selection maths, the callback on hand-made batches, and training.

Offline, CPU, seconds: spy scorers with hand-made confidences, tiny LLaDA/Dream-format checkpoints.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trl_lift.methods.lift import (  # noqa: E402
    BOTTOM,
    TOP,
    VANILLA,
    LIFTCallback,
    band_components,
    choose_components,
    extra_ratios,
    keep_counts,
    select_positions,
)
from trl_lift.diffusion.scoring import GoldScores  # noqa: E402
from trl_lift.diffusion.masking import apply_mask, mask_positions, sample_times  # noqa: E402
from trl_lift.methods import DiffusionBatch  # noqa: E402

MASK_ID = 99
PROMPT = 4


# ---- pure functions -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_band_rule_boundaries_go_to_vanilla(dtype):
    t = torch.tensor([0.001, 1 / 3 - 1e-5, 1 / 3, 0.5, 2 / 3, 2 / 3 + 1e-5, 0.999], dtype=dtype)
    assert band_components(t, 3).tolist() == [BOTTOM, BOTTOM, VANILLA, VANILLA, VANILLA, TOP, TOP]


def test_band_rule_other_band_counts():
    t = torch.tensor([0.01, 0.4999, 0.5, 0.5001, 0.99])
    assert band_components(t, 2).tolist() == [BOTTOM, BOTTOM, TOP, TOP, TOP]  # LIFT-2: no vanilla band
    assert VANILLA not in band_components(torch.linspace(0, 1, 1001), 2).tolist()
    t4 = torch.tensor([0.2, 0.25, 0.5, 0.75, 0.8])
    assert band_components(t4, 4).tolist() == [BOTTOM, VANILLA, VANILLA, VANILLA, TOP]
    with pytest.raises(ValueError):
        band_components(t, 1)


def test_keep_counts_formula():
    num = torch.tensor([10, 10, 7, 0, 5, 10, 5])
    t = torch.tensor([0.3, 0.5, 0.001, 0.5, 0.2, 0.0005, 0.1])
    rho = torch.tensor([0.2, 0.0, 0.5, 0.1, 0.3, 0.0, 0.1])
    # 10*0.6=6; 10*1=10; 7*clamp(0.001/0.501)=0.014 -> 0; 0; 5*0.4=2;
    # t + rho below 1e-3: 10 * 0.0005 / 1e-3 = 5; 5 * 0.5 = 2.5 -> 2 (half to even).
    assert keep_counts(num, t, rho).tolist() == [6, 10, 0, 0, 2, 5, 2]


def test_extra_ratio_rules():
    eps = 1e-3
    t0 = torch.tensor([0.0, 0.2, 0.85, 0.95, 0.999])
    t = (1 - eps) * t0 + eps
    u = torch.rand(5, generator=torch.Generator().manual_seed(7))
    rho = extra_ratios(t, eps=eps, rule="reference", generator=torch.Generator().manual_seed(7))
    high = 1 - t0
    low = torch.tensor([0.1, 0.1, 0.1, 0.0, 0.0])  # the 0.1 floor only while 1 - t0 > 0.1
    torch.testing.assert_close(rho, low + (high - low) * u, atol=1e-6, rtol=0)
    paper = extra_ratios(t, eps=eps, rule="paper", generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(paper, (1 - t) * u, atol=0, rtol=0)
    many_t = sample_times(4000, eps=eps, generator=torch.Generator().manual_seed(1))
    many = extra_ratios(many_t, eps=eps, generator=torch.Generator().manual_seed(2))
    t0s = (many_t - eps) / (1 - eps)
    assert (many[t0s < 0.85] >= 0.1).all() and (many <= 1 - t0s + 1e-6).all()
    with pytest.raises(ValueError):
        extra_ratios(t, rule="nope")


def test_topk_keeps_most_confident_bottomk_least():
    conf = torch.tensor([[-0.1, -3.0, -0.5, -2.0, -0.05, -1.0]] * 4)
    superset = torch.tensor([[1, 1, 1, 1, 0, 1]] * 4, dtype=torch.bool)  # position 4 is not in M
    k = torch.tensor([2, 2, 2, 9])
    component = torch.tensor([TOP, BOTTOM, VANILLA, TOP])
    got = select_positions(conf, superset, k, component, generator=torch.Generator().manual_seed(0))
    assert got[0].nonzero().flatten().tolist() == [0, 2]
    assert got[1].nonzero().flatten().tolist() == [1, 3]
    assert got[2].sum() == 2 and not (got[2] & ~superset[2]).any()
    assert torch.equal(got[3], superset[3])  # K larger than |M| keeps all of M


def test_vanilla_keeps_at_least_one_token():
    superset = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    got = select_positions(torch.zeros(2, 4), superset, torch.tensor([0, 0]), torch.tensor([VANILLA, VANILLA]))
    assert got.sum(1).tolist() == [1, 0] and not (got & ~superset).any()


def test_policies_and_restrictions():
    t = torch.tensor([0.1, 0.5, 0.9])
    assert choose_components(t).tolist() == [BOTTOM, VANILLA, TOP]
    assert choose_components(t, policy="reversed").tolist() == [TOP, VANILLA, BOTTOM]
    assert choose_components(t, bands=2, policy="reversed").tolist() == [TOP, BOTTOM, BOTTOM]
    assert choose_components(t, components="top_only").tolist() == [VANILLA, VANILLA, TOP]
    assert choose_components(t, components="bottom_only").tolist() == [BOTTOM, VANILLA, VANILLA]
    # batch scope: one choice from the mean t (0.383 -> vanilla, 0.783 -> Top-K, 0.2 -> Bottom-K)
    assert choose_components(torch.tensor([0.1, 0.1, 0.95]), scope="batch").tolist() == [VANILLA] * 3
    assert choose_components(torch.tensor([0.9, 0.95, 0.5]), scope="batch").tolist() == [TOP] * 3
    assert choose_components(torch.tensor([0.1, 0.3, 0.2]), scope="batch").tolist() == [BOTTOM] * 3


def test_random_policy_ignores_t():
    gen = torch.Generator().manual_seed(0)
    drawn = choose_components(torch.full((3000,), 0.95), policy="random", generator=gen)
    shares = torch.bincount(drawn, minlength=3).float() / 3000
    assert (shares - 1 / 3).abs().max() < 0.04
    lift2 = choose_components(torch.full((3000,), 0.05), bands=2, policy="random", generator=gen)
    assert set(lift2.tolist()) == {BOTTOM, TOP}
    one = choose_components(torch.rand(64, generator=gen), policy="random", scope="batch", generator=gen)
    assert len(set(one.tolist())) == 1
    expected = torch.tensor([BOTTOM, VANILLA, TOP])[(torch.rand(5, generator=torch.Generator().manual_seed(3)) * 3).long()]
    again = choose_components(torch.full((5,), 0.5), policy="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, expected)


# ---- the method on hand-made batches: the trainer's side of the protocol played by a table ----------
def _scores(plan, table):
    """What the trainer hands ``finish``: ``table`` at the scored targets (unscored rows read zeros)."""
    valid = plan.score_targets != -100
    if plan.score_rows is not None and not plan.one_pass:
        valid = valid & plan.score_rows[:, None]
    return GoldScores(torch.where(valid, table, 0.0), torch.zeros_like(table), valid & False)


def _run(method, batch, table):
    """Plan, score from ``table`` where the plan asks, finish: ``(plan, noised batch)``."""
    plan = method.plan(batch)
    return plan, method.finish(plan, None if plan.score_targets is None else _scores(plan, table))


def _batch(b=6, length=20):
    x0 = 10 + (torch.arange(b * length).reshape(b, length) * 7) % 80
    answer = torch.zeros(b, length, dtype=torch.bool)
    answer[:, PROMPT:] = True
    return DiffusionBatch(x0, torch.ones_like(x0), answer, MASK_ID)


def _replay(callback, state, batch):
    gen = torch.Generator()
    gen.set_state(state)
    t = sample_times(batch.input_ids.size(0), eps=callback.time_epsilon, generator=gen)
    rho = extra_ratios(t, eps=callback.time_epsilon, rule=callback.rho_rule, floor=callback.rho_floor, generator=gen)
    return t, rho, mask_positions(batch.answer_mask, t + rho, generator=gen)


def _expected_component(t, bands=3):
    return [BOTTOM if v < 1 / bands else TOP if v > 1 - 1 / bands else VANILLA for v in t.tolist()]


@pytest.mark.parametrize("approximate", [False, True])
def test_callback_follows_the_spec(approximate):
    batch = _batch()
    table = torch.randn(batch.input_ids.shape, generator=torch.Generator().manual_seed(5))
    callback = LIFTCallback(approximate=approximate, scoring_mode="eval")
    callback.generator.manual_seed(11)
    seen = set()
    for _ in range(25):
        t, rho, superset = _replay(callback, callback.generator.get_state(), batch)
        plan, noised = _run(callback, batch, table)
        x_sup = apply_mask(batch.input_ids, superset, MASK_ID)
        component = _expected_component(t)
        seen.update(component)
        scored = torch.tensor([c != VANILLA for c in component]) & superset.any(1)
        assert torch.equal(noised.t, t) and torch.equal(plan.t, t)
        assert noised.groups["lift_top"].tolist() == [c == TOP for c in component]
        assert noised.groups["lift_bottom"].tolist() == [c == BOTTOM for c in component]
        assert noised.normalization == "micro_batch" and torch.equal(plan.score_rows, scored)
        selected = noised.loss_weights > 0
        # Weights: 1 / t (not 1 / (t + rho)) on S, zero elsewhere.
        assert torch.equal(noised.loss_weights, selected.float() * (1.0 / t)[:, None])
        assert not (selected & ~superset).any()
        if approximate:  # one pass, no separate scoring: the training pass scores M (scored rows) and S (vanilla)
            assert plan.one_pass and plan.score_targets is not None
            assert torch.equal(plan.score_targets != -100, (superset & scored[:, None]) | (selected & ~scored[:, None]))
            # Top-K / Bottom-K rows train on x_sup; vanilla rows reveal M \ S, as in the reference.
            revealed = apply_mask(batch.input_ids, selected, MASK_ID)
            assert torch.equal(noised.input_ids, torch.where(scored[:, None], x_sup, revealed))
            assert torch.equal(plan.input_ids, noised.input_ids)
        else:  # only S stays masked; M \ S carries its gold token again
            assert not plan.one_pass and plan.train_mode is False and torch.equal(plan.input_ids, x_sup)
            if scored.any():
                assert torch.equal(plan.score_targets != -100, superset & scored[:, None])
            else:
                assert plan.score_targets is None
            assert torch.equal(noised.input_ids == MASK_ID, selected)
            assert torch.equal(noised.input_ids, apply_mask(batch.input_ids, selected, MASK_ID))
        assert torch.equal(noised.input_ids[:, :PROMPT], batch.input_ids[:, :PROMPT])  # prompt never masked
        k = keep_counts(superset.sum(1), t, rho)
        for row, code in enumerate(component):
            m = superset[row].nonzero().flatten().tolist()
            chosen = selected[row].nonzero().flatten().tolist()
            if code == VANILLA:
                assert len(chosen) == (max(int(k[row]), 1) if m else 0)
                continue
            ranked = sorted(m, key=lambda i: table[row, i].item(), reverse=code == TOP)
            assert chosen == sorted(ranked[: int(k[row])])
    assert seen == {BOTTOM, VANILLA, TOP}


def test_approximate_mode_draws_what_the_exact_mode_draws():
    """Same generator, same batch: t, rho, M, the components and the vanilla rows' subsets agree."""
    batch = _batch()
    table = torch.randn(batch.input_ids.shape, generator=torch.Generator().manual_seed(5))
    exact, approximate = LIFTCallback(), LIFTCallback(approximate=True)
    exact.generator.manual_seed(3)
    approximate.generator.manual_seed(3)
    for _ in range(10):
        (plan_e, noised_e), (plan_a, noised_a) = _run(exact, batch, table), _run(approximate, batch, table)
        assert torch.equal(plan_e.state["superset"], plan_a.state["superset"])
        vanilla = plan_e.state["component"] == VANILLA
        assert torch.equal(noised_e.loss_weights[vanilla], noised_a.loss_weights[vanilla])
        assert torch.equal(noised_e.input_ids[vanilla], noised_a.input_ids[vanilla])


def test_scoring_mode_train_is_the_default():
    callback = LIFTCallback(bands=2)  # LIFT-2: every row is Top-K or Bottom-K
    callback.generator.manual_seed(0)
    assert callback.plan(_batch(b=1)).train_mode is True


def test_uniform_weighting_and_settings_roundtrip():
    callback = LIFTCallback(bands=2, rho_rule="paper", component_scope="batch", policy="reversed",
                            components="bottom_only", approximate=True, scoring_mode="eval", rho_floor=0.2, seed=3,
                            loss_weighting="uniform")
    assert LIFTCallback(**callback.state()["args"]).state()["args"] == callback.state()["args"]
    callback.generator.manual_seed(0)
    _, noised = _run(callback, _batch(), torch.zeros(6, 20))
    assert torch.equal(noised.loss_weights, (noised.loss_weights > 0).float())
    for bad in ({"bands": 1}, {"bands": 11}, {"bands": 2.5}, {"rho_rule": "x"}, {"policy": "x"},
                {"component_scope": "x"}, {"components": "x"}, {"scoring_mode": "x"}, {"rho_floor": 1.0},
                {"time_epsilon": 1.0}, {"loss_weighting": "x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LIFTCallback(**bad)


# ---- with the trainer and tiny LLaDA / Dream-format checkpoints ----------------------------------
from datasets import Dataset  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, gold_log_probs, load_diffusion_model  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(llada_checkpoint, dream_checkpoint):
    """Paths of the tiny LLaDA- and Dream-format checkpoints (tests/conftest.py)."""
    return {"llada": llada_checkpoint[0], "dream": dream_checkpoint[0]}


def _dataset(n=8):
    rows = [{"prompt": f"Question: what is {i} plus {i}?", "completion": f" Answer: {2 * i}. So \\boxed{{{2 * i}}}." + " x" * (i % 3)}
            for i in range(n)]
    return Dataset.from_list(rows)


def _trainer(path, out, *, steps, callbacks=None, **config):
    config = {"max_steps": steps, "per_device_train_batch_size": 4, "learning_rate": 3e-3, "logging_steps": 1,
              "report_to": [], "save_strategy": "no", "seed": 0, "disable_tqdm": True, **config}
    return DiffusionSFTTrainer(
        load_diffusion_model(path), args=DiffusionSFTConfig(output_dir=str(out), **config),
        train_dataset=_dataset(), processing_class=PreTrainedTokenizerFast.from_pretrained(path), callbacks=callbacks,
    )


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_lift_config_trains_and_loss_falls(checkpoints, tmp_path, family):
    trainer = _trainer(checkpoints[family], tmp_path, steps=24, lift=True, logging_steps=8)
    assert isinstance(trainer.token_weighting, LIFTCallback) and trainer.token_weighting.bands == 3
    trainer.train()
    losses = _losses(trainer)
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]
    logged = trainer.state.log_history[0]
    shares = [logged[f"lift_share_{c}"] for c in ("bottom", "vanilla", "top")]
    assert sum(shares) == pytest.approx(1.0)
    assert logged["lift_conf_selected_top"] > logged["lift_conf_revealed_top"]
    assert logged["lift_conf_selected_bottom"] < logged["lift_conf_revealed_bottom"]


@pytest.mark.parametrize(
    "callback",
    [LIFTCallback(bands=2), LIFTCallback(policy="random"), LIFTCallback(policy="reversed"),
     LIFTCallback(components="top_only"), LIFTCallback(components="bottom_only"), LIFTCallback(approximate=True),
     LIFTCallback(component_scope="batch"), LIFTCallback(rho_rule="paper"), LIFTCallback(scoring_mode="eval")],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.state()["args"].items() if v != LIFTCallback().state()["args"][k]),
)
def test_every_control_runs_by_one_setting(checkpoints, tmp_path, callback):
    trainer = _trainer(checkpoints["llada"], tmp_path, steps=2, callbacks=[callback])
    assert trainer.token_weighting is callback
    trainer.train()
    losses = _losses(trainer)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_micro_batch_normalisation_counts_answer_and_padding(checkpoints, tmp_path):
    trainer = _trainer(checkpoints["llada"], tmp_path, steps=1, lift=True)  # LLaDA: padding supervised
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert (inputs["attention_mask"] == 0).any()  # the batch has padding
    answer = (inputs["labels"] != -100) | (inputs["attention_mask"] == 0)
    model = trainer.model.train()
    loss = trainer.compute_loss(model, inputs)  # per-example noise: the same draws again below
    noised, _ = trainer._training_step_noise(model, trainer._diffusion_batch(inputs))
    in_loss = noised.loss_weights > 0
    assert not (in_loss & ~answer).any() and in_loss.any()
    with torch.no_grad():
        ids = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, trainer.facts.eos_token_id)
        logp = gold_log_probs(model, noised.input_ids, ids.masked_fill(~in_loss, -100)).log_probs
    expected = (-logp * in_loss / noised.t[:, None]).sum() / answer.sum()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)


def _random_batch(trainer, rows):
    """``rows`` random sequences of 24 tokens, the last 19 the answer, for the trainer's model."""
    x0 = torch.randint(0, 300, (rows, 24), generator=torch.Generator().manual_seed(0))
    answer = torch.zeros_like(x0, dtype=torch.bool)
    answer[:, 5:] = True
    return DiffusionBatch(x0, torch.ones_like(x0), answer, trainer.facts.mask_token_id)


def test_trainer_scores_only_the_rows_the_plan_names(checkpoints, tmp_path):
    trainer = _trainer(checkpoints["llada"], tmp_path, steps=1)
    model = trainer.model.eval()
    batch = _random_batch(trainer, 4)
    callback = LIFTCallback(scoring_mode="eval")
    callback.generator.manual_seed(0)
    partial = 0
    for _ in range(12):
        plan = callback.plan(batch)
        if plan.score_targets is None:
            continue
        got = trainer._scoring_pass(model, batch, plan)
        with torch.no_grad():
            full = gold_log_probs(model, plan.input_ids, plan.score_targets).log_probs
        rows = plan.score_rows
        torch.testing.assert_close(got.log_probs[rows], full[rows], rtol=1e-5, atol=1e-6)
        assert (got.log_probs[~rows] == 0).all()
        partial += int(not rows.all())
    assert partial > 0


def test_dream_shift_in_the_scoring_pass(checkpoints, tmp_path):
    trainer = _trainer(checkpoints["dream"], tmp_path, steps=1)
    model = trainer.model.eval()
    batch = _random_batch(trainer, 3)
    x0 = batch.input_ids
    callback = LIFTCallback(bands=2, scoring_mode="eval")  # LIFT-2: every row is scored
    callback.generator.manual_seed(1)
    plan = callback.plan(batch)
    noised = callback.finish(plan, trainer._scoring_pass(model, batch, plan))
    x_sup, component = plan.input_ids, plan.state["component"]
    selected = noised.loss_weights > 0
    superset = (x_sup == batch.mask_token_id) & batch.answer_mask
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x_sup).logits.float(), -1)
    gold = lambda lp: lp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    # Dream: the logits at i - 1 predict the token at i.
    shifted = torch.cat([torch.zeros(3, 1), logp[:, :-1].gather(-1, x0[:, 1:].unsqueeze(-1)).squeeze(-1)], 1)
    unshifted = gold(logp)
    k = selected.sum(1)
    assert torch.equal(selected, select_positions(shifted, superset, k, component))
    assert not torch.equal(selected, select_positions(unshifted, superset, k, component))


def test_resume_reproduces_the_uninterrupted_run(checkpoints, tmp_path):
    settings = dict(bands=2, policy="reversed", rho_rule="paper")
    full = _trainer(checkpoints["llada"], tmp_path, steps=4, callbacks=[LIFTCallback(**settings)],
                    save_strategy="steps", save_steps=2)
    full.train()  # uninterrupted, leaving a checkpoint after step 2
    resumed = _trainer(checkpoints["llada"], tmp_path / "again", steps=4, callbacks=[LIFTCallback()])
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert resumed.token_weighting.state()["args"] == LIFTCallback(**settings).state()["args"]  # settings restored
    history = lambda tr, key: [h[key] for h in tr.state.log_history if key in h and "train_runtime" not in h]  # noqa: E731
    assert len(history(resumed, "loss")) == 4  # two restored from the checkpoint, two trained again
    for key in ("loss", "mask_ratio", "lift_superset_ratio", "lift_share_top"):
        assert history(resumed, key)[2:] == pytest.approx(history(full, key)[2:], rel=1e-5, abs=1e-7), key
    fresh = _trainer(checkpoints["llada"], tmp_path / "fresh", steps=4, callbacks=[LIFTCallback(**settings, seed=1)])
    fresh.train()  # another noise seed gives other masks: the comparison above can fail
    assert history(fresh, "mask_ratio")[2:] != pytest.approx(history(full, "mask_ratio")[2:], rel=1e-5)
