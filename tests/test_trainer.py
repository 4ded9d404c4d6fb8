"""DiffusionSFTTrainer end to end on tiny models: learning, invariants, exact losses, GA, LoRA, QLoRA, resume."""

import os
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import LoraConfig
from transformers import BitsAndBytesConfig, LlamaForCausalLM

from trl_lift import (
    DiffusionSFTConfig,
    DiffusionSFTTrainer,
    gold_log_probs,
    NoisedBatch,
    NoisePlan,
    TokenWeightingCallback,
    get_diffusion_facts,
    load_diffusion_model,
)
from trl_lift.methods import time_weights

PROMPTS = ["What is 2+2?", "Solve x+1=3.", "Name a colour.", "12 plus 30?"]
ANSWERS = [" 4", " x = 2", " blue", " 42, the answer"]


def _dataset(n=16):
    return Dataset.from_dict({"prompt": (PROMPTS * n)[:n], "completion": (ANSWERS * n)[:n]})


def _args(tmp_path, **kw):
    defaults = dict(
        output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4, learning_rate=1e-2,
        logging_steps=1, report_to="none", save_strategy="no", gradient_checkpointing=False, seed=0,
        dataloader_num_workers=0, dataloader_pin_memory=False,
    )
    defaults.update(kw)
    return DiffusionSFTConfig(**defaults)


@dataclass(eq=False)
class FixedMasking(TokenWeightingCallback):
    """Masks every other answer token with t = 0.5, whatever the step: makes losses computable by hand."""

    def plan(self, batch):
        positions = torch.arange(batch.input_ids.size(1), device=batch.input_ids.device)
        masked = batch.answer_mask & (positions % 2 == 1)
        t = torch.full((batch.input_ids.size(0),), 0.5)
        ids = batch.input_ids.masked_fill(masked, batch.mask_token_id)
        weights = masked.float() * time_weights(t, self.loss_weighting)[:, None]
        return NoisePlan(ids, t, state={"noised": NoisedBatch(ids, weights, t, normalization="sequence")})


class InputSpy:
    """Records the input_ids of every forward pass of a model."""

    def __init__(self, model):
        self.inputs = []
        model.register_forward_pre_hook(lambda m, a, kw: self.inputs.append(kw["input_ids"].clone()), with_kwargs=True)


def test_default_precision_runs_on_cpu(tmp_path):
    args = _args(tmp_path)
    assert args.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert args.restore_callback_states_from_checkpoint is True


def test_training_learns_and_updates_every_parameter(tmp_path, llada_checkpoint, llada_tokenizer):
    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path, max_steps=30, learning_rate=3e-3, logging_steps=5),
        train_dataset=_dataset(32), processing_class=llada_tokenizer,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses[-1] < losses[0]
    for name, param in trainer.model.named_parameters():
        assert not torch.equal(param, before[name]), f"{name} did not change"
    logged = trainer.state.log_history[0]
    for key in ("loss", "mean_token_accuracy", "mask_ratio", "num_tokens"):
        assert key in logged
    assert any(k.startswith("loss_t_") for k in logged)


def test_prompt_is_never_masked(tmp_path, llada_checkpoint, llada_tokenizer):
    model = load_diffusion_model(llada_checkpoint[0])
    trainer = DiffusionSFTTrainer(
        model, args=_args(tmp_path, max_steps=6), train_dataset=_dataset(), processing_class=llada_tokenizer
    )
    spy = InputSpy(model.model)
    trainer.train()
    mask_id = get_diffusion_facts(model).mask_token_id
    prompt_ids = [llada_tokenizer(p)["input_ids"] for p in PROMPTS]
    assert spy.inputs
    for ids in spy.inputs:
        for row in ids.tolist():
            prompt = next(p for p in prompt_ids if row[: len(p)] == p)  # the prompt is intact ...
            assert mask_id not in row[: len(prompt)]  # ... and never masked
    assert any(mask_id in row for ids in spy.inputs for row in ids.tolist())


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_loss_equals_hand_computation_with_shift(tmp_path, family, llada_checkpoint, dream_checkpoint, llada_tokenizer, dream_tokenizer):
    path = (llada_checkpoint if family == "llada" else dream_checkpoint)[0]
    tok = llada_tokenizer if family == "llada" else dream_tokenizer
    model = load_diffusion_model(path)
    trainer = DiffusionSFTTrainer(
        model, args=_args(tmp_path, supervise_padding=False), train_dataset=_dataset(),
        processing_class=tok, callbacks=[FixedMasking()],
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    # By hand: full logits, the family's shift, CE at the masked answer positions, weight 1/t = 2.
    ids, labels = batch["input_ids"], batch["labels"]
    answer = labels != -100
    masked = answer & (torch.arange(ids.size(1)) % 2 == 1)
    with torch.no_grad():
        logits = model(input_ids=ids.masked_fill(masked, get_diffusion_facts(model).mask_token_id),
                       attention_mask=batch["attention_mask"]).logits
    if family == "dream":
        logits = torch.cat([logits[:, :1], logits[:, :-1]], 1)
    ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
    expected = ((ce * masked * 2.0).sum(1) / answer.sum(1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("normalization,supervise_padding", [("sequence", False), ("batch", False), ("batch", True)])
def test_gradient_accumulation_matches_larger_batch(tmp_path, llada_checkpoint, llada_tokenizer, normalization, supervise_padding):
    def one_step(batch_size, accumulation):
        model = load_diffusion_model(llada_checkpoint[0])
        args = _args(
            tmp_path / f"{batch_size}", max_steps=1, per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation, optim="sgd", learning_rate=1.0, max_grad_norm=0.0,
            loss_normalization=normalization, supervise_padding=supervise_padding, pad_to_multiple_of=32,
            lr_scheduler_type="constant",
        )
        trainer = DiffusionSFTTrainer(
            model, args=args, train_dataset=_dataset(8), processing_class=llada_tokenizer, callbacks=[FixedMasking()]
        )
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer.train()
        return {n: p.detach() - before[n] for n, p in model.named_parameters()}

    big, accumulated = one_step(4, 1), one_step(2, 2)
    for name in big:
        torch.testing.assert_close(accumulated[name], big[name], atol=2e-6, rtol=1e-4)


def test_lora_trains_only_adapters(tmp_path, llada_checkpoint, llada_tokenizer):
    facts_targets = list(get_diffusion_facts(load_diffusion_model(llada_checkpoint[0])).lora_target_modules)
    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path, max_steps=3, learning_rate=1e-2), train_dataset=_dataset(),
        processing_class=llada_tokenizer, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=facts_targets),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert changed == {n for n in trainable if "lora_B" in n or "lora_A" in n}
    assert any("lora_B" in n for n in changed)


def test_qlora_by_one_argument(tmp_path, llada_checkpoint, llada_tokenizer):
    import bitsandbytes as bnb

    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path, max_steps=2), train_dataset=_dataset(),
        processing_class=llada_tokenizer,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"]),
    )
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in trainer.model.modules())
    before = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert all(not torch.equal(after[n].detach().float(), before[n]) for n in before if "lora_B" in n)


def test_dataset_formats(tmp_path, llada_checkpoint, llada_tokenizer):
    conversations = Dataset.from_dict({"messages": [
        [{"role": "user", "content": p}, {"role": "assistant", "content": a}] for p, a in zip(PROMPTS * 2, ANSWERS * 2)
    ]})
    text = Dataset.from_dict({"text": [p + a for p, a in zip(PROMPTS * 2, ANSWERS * 2)]})
    for dataset, extra in ((conversations, {"assistant_only_loss": True}), (text, {})):
        trainer = DiffusionSFTTrainer(
            llada_checkpoint[0], args=_args(tmp_path, max_steps=2, **extra), train_dataset=dataset,
            processing_class=llada_tokenizer,
        )
        trainer.train()
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        answer = trainer._diffusion_batch(dict(batch)).answer_mask
        if extra:  # the user turn is prompt, the assistant turn answer
            assert not answer[:, :3].any() and answer.any()
        else:  # plain text: everything is answer
            assert answer[batch["attention_mask"] == 1].all()


def test_refusals(tmp_path, llada_checkpoint, llada_tokenizer):
    with pytest.raises(ValueError, match="packing_strategy='wrapped'"):  # packing itself is accepted (test_packing)
        _args(tmp_path, packing=True, packing_strategy="wrapped")
    causal = load_diffusion_model(llada_checkpoint[0])
    causal.config.is_causal = True
    with pytest.raises(ValueError, match="causal"):
        DiffusionSFTTrainer(causal, args=_args(tmp_path), train_dataset=_dataset(), processing_class=llada_tokenizer)
    no_mask = load_diffusion_model(llada_checkpoint[0])
    no_mask.config.diffusion_family = "bidirectional"
    no_mask.config.mask_token_id = None
    with pytest.raises(ValueError, match="mask token"):
        DiffusionSFTTrainer(no_mask, args=_args(tmp_path), train_dataset=_dataset(), processing_class=llada_tokenizer)


def test_padding_is_supervised_as_eos_for_llada(tmp_path, llada_checkpoint, llada_tokenizer):
    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path), train_dataset=_dataset(), processing_class=llada_tokenizer
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    diffusion = trainer._diffusion_batch(dict(batch))
    padding = batch["attention_mask"] == 0
    assert padding.any()
    assert (diffusion.input_ids[padding] == llada_tokenizer.eos_token_id).all()
    assert diffusion.answer_mask[padding].all() and (diffusion.attention_mask == 1).all()


def test_evaluation_loss_is_deterministic(tmp_path, llada_checkpoint, llada_tokenizer):
    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path, eval_timesteps=4, per_device_eval_batch_size=4),
        train_dataset=_dataset(), eval_dataset=_dataset(8), processing_class=llada_tokenizer,
    )
    first, second = trainer.evaluate()["eval_loss"], trainer.evaluate()["eval_loss"]
    assert first == second and first > 0


def test_resume_continues_exactly(tmp_path, llada_checkpoint, llada_tokenizer):
    def run(out, resume=None, max_steps=4):
        args = _args(tmp_path / out, max_steps=max_steps, save_strategy="steps", save_steps=2, learning_rate=5e-3)
        trainer = DiffusionSFTTrainer(
            llada_checkpoint[0], args=args, train_dataset=_dataset(), processing_class=llada_tokenizer
        )
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    full = run("full")
    checkpoint = os.path.join(str(tmp_path / "full" / "out"), "checkpoint-2")
    # The checkpoint holds native Llama keys (a LLaDA-named one would silently not resume).
    reloaded = LlamaForCausalLM.from_pretrained(checkpoint)
    assert reloaded.config.is_causal is False
    resumed = run("resumed", resume=checkpoint)
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    full_losses = [log["loss"] for log in full.state.log_history if "loss" in log]
    resumed_losses = [log["loss"] for log in resumed.state.log_history if "loss" in log]
    assert len(full_losses) == 4 and resumed_losses == pytest.approx(full_losses, rel=1e-5)


def test_lift_is_configured_from_the_config_alone(tmp_path, llada_checkpoint, llada_tokenizer):
    from trl_lift import LIFTCallback

    args = _args(tmp_path, lift=True, lift_bands=2, lift_policy="reversed", lift_rho_rule="paper", max_steps=3)
    trainer = DiffusionSFTTrainer(llada_checkpoint[0], args=args, train_dataset=_dataset(), processing_class=llada_tokenizer)
    callback = trainer.token_weighting
    assert isinstance(callback, LIFTCallback)
    assert (callback.bands, callback.policy, callback.rho_rule) == (2, "reversed", "paper")
    trainer.train()
    logged = set().union(*(log.keys() for log in trainer.state.log_history))
    assert any(key.startswith("loss_lift_") for key in logged)  # loss per component
    assert any(key.startswith("lift_share_") for key in logged)


def test_scoring_pass_restricted_to_rows_matches_the_full_pass(tmp_path, llada_checkpoint, llada_tokenizer):
    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path), train_dataset=_dataset(), processing_class=llada_tokenizer
    )
    collated = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    batch = trainer._diffusion_batch(dict(collated))
    # The padding stays known after supervised padding opened the attention mask (GIFT excludes it).
    assert torch.equal(batch.padding_mask, collated["attention_mask"] == 0) and batch.padding_mask.any()
    noised = batch.input_ids.masked_fill(batch.answer_mask, batch.mask_token_id)
    targets = batch.targets_at(batch.answer_mask)
    plan = lambda rows: NoisePlan(noised, torch.ones(4), targets, rows, train_mode=False)  # noqa: E731
    full = trainer._scoring_pass(trainer.model, batch, plan(None))
    rows = torch.tensor([True, False, True, False])
    part = trainer._scoring_pass(trainer.model, batch, plan(rows))
    torch.testing.assert_close(part.log_probs[rows], full.log_probs[rows])
    assert (part.log_probs[~rows] == 0).all() and full.log_probs[~rows].abs().sum() > 0
    trainer.model.train()
    trainer._scoring_pass(trainer.model, batch, plan(rows))
    assert trainer.model.training  # the scoring pass restores the mode it found


@pytest.mark.parametrize("normalization", ["sequence", "micro_batch", "batch", "masked"])
def test_normalisations_by_hand_over_an_accumulation_window(tmp_path, llada_checkpoint, llada_tokenizer, normalization):
    """Two micro-batches of unequal answer lengths, accumulated: each normalisation's share, by hand."""
    args = _args(tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2, supervise_padding=False,
                 loss_normalization=normalization)
    trainer = DiffusionSFTTrainer(load_diffusion_model(llada_checkpoint[0]), args=args, train_dataset=_dataset(),
                                  processing_class=llada_tokenizer, callbacks=[FixedMasking()])
    micro = [dict(trainer.data_collator([trainer.train_dataset[i] for i in pair])) for pair in ((0, 2), (1, 3))]
    model = trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2
    num_items = trainer._get_num_items_in_batch(micro, torch.device("cpu"))
    sums, answers, masked, per_sequence = [], [], [], []
    for inputs in micro:
        answer = inputs["labels"] != -100
        in_loss = answer & (torch.arange(answer.size(1)) % 2 == 1)
        with torch.no_grad():
            logp = gold_log_probs(model, inputs["input_ids"].masked_fill(in_loss, trainer.facts.mask_token_id),
                                  inputs["input_ids"].masked_fill(~in_loss, -100),
                                  attention_mask=inputs["attention_mask"]).log_probs
        per_token = -logp * in_loss * 2.0  # 1 / t = 2
        sums.append(per_token.sum())
        answers.append(answer.sum())
        masked.append(in_loss.sum())
        per_sequence.append(per_token.sum(1) / answer.sum(1))
    assert answers[0] != answers[1] and num_items == answers[0] + answers[1]
    expected = {
        "sequence": [ps.sum() / 4 for ps in per_sequence],  # the mean over the 4 sequences
        "micro_batch": [s_ / n / 2 for s_, n in zip(sums, answers)],  # the mean of the micro-batch ratios
        "batch": [s_ / num_items for s_ in sums],  # one ratio over the whole window
        "masked": [s_ / m / 2 for s_, m in zip(sums, masked)],
    }[normalization]
    with torch.no_grad():
        got = [trainer.compute_loss(model, inputs, num_items_in_batch=num_items) for inputs in micro]
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_lift_approximate_mode_is_one_pass(tmp_path, llada_checkpoint, llada_tokenizer):
    def passes_per_step(**lift):
        model = load_diffusion_model(llada_checkpoint[0])
        args = _args(tmp_path / str(lift), lift=True, lift_bands=2, max_steps=2, **lift)  # LIFT-2: every row scored
        trainer = DiffusionSFTTrainer(model, args=args, train_dataset=_dataset(), processing_class=llada_tokenizer)
        spy = InputSpy(model.model)
        trainer.train()
        mask_id = get_diffusion_facts(model).mask_token_id
        return len(spy.inputs) / 2, [(ids == mask_id).sum().item() for ids in spy.inputs]

    faithful, faithful_masks = passes_per_step()
    approximate, _ = passes_per_step(lift_approximate=True)
    assert (faithful, approximate) == (2, 1)  # scoring pass + training pass, vs the training pass alone
    # The faithful training pass reveals M \ S (fewer masks than its scoring pass on x_sup).
    assert faithful_masks[1] <= faithful_masks[0] and faithful_masks[3] <= faithful_masks[2]
