"""Packed training equals padded training of the same documents: layout, loss, gradients, refusals."""

import pytest
import torch
from datasets import Dataset

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, load_diffusion_model
from trl_lift.training.packing import PackedLayout, packed_gold_log_probs

PROMPTS = ["What is 2+2?", "Solve x+1=3.", "Name a colour.", "12 plus 30?", "def add(a, b):"]
ANSWERS = [" 4", " x = 2, so the answer is 2", " blue", " 42, the answer", "\n    return a + b\n"]

METHODS = {
    "vanilla": {},
    "lift": {"lift": True, "lift_bands": 3},
    "lift2": {"lift": True, "lift_bands": 2},  # every row selects by confidence: the scoring pass runs
    "gift": {"token_weighting": "gift"},
    "cart": {"token_weighting": "cart"},
}


def _trainer(tmp_path, path, tokenizer, packed, **method):
    args = DiffusionSFTConfig(
        output_dir=str(tmp_path / f"out-{packed}"), max_steps=1, per_device_train_batch_size=len(PROMPTS),
        report_to="none", save_strategy="no", seed=3, dataloader_num_workers=0, dataloader_pin_memory=False,
        bf16=False, supervise_padding=None if packed else False, packing=packed, max_length=512, **method,
    )
    data = Dataset.from_dict({"prompt": PROMPTS, "completion": ANSWERS})
    model = load_diffusion_model(path, attn_implementation="sdpa")
    return DiffusionSFTTrainer(model, args=args, train_dataset=data, processing_class=tokenizer)


def _loss_and_grads(trainer):
    examples = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]  # packed: one row
    inputs = dict(trainer.data_collator(examples))
    model = trainer.model.train()
    model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, inputs


def test_layout_round_trip_and_documents():
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    layout = PackedLayout(position_ids)
    assert layout.num_documents == 3 and layout.lengths.tolist() == [3, 2, 4]
    ids = torch.arange(10, 19)[None]
    docs = layout.to_documents(ids, -1)
    assert docs.tolist() == [[10, 11, 12, -1], [13, 14, -1, -1], [15, 16, 17, 18]]
    assert torch.equal(layout.to_packed(docs, -1), ids)
    assert layout.starts.tolist() == [[True, False, False, True, False, True, False, False, False]]
    mask = layout.attention_kwargs("sdpa", torch.float32)["attention_mask"][0, 0]
    expected = torch.block_diag(torch.ones(3, 3), torch.ones(2, 2), torch.ones(4, 4)).bool()
    assert torch.equal(mask, expected)  # bidirectional within a document, nothing across


def test_dense_masks_regroup_a_flattened_batch_at_document_boundaries(llada_checkpoint):
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 0, 1]])
    flat, grouped = PackedLayout(position_ids), PackedLayout(position_ids, row_length=5)
    regrouped = grouped.regrouped()
    assert regrouped.shape == (3, 5) and regrouped.lengths.tolist() == [3, 2, 4, 2]  # [3+2], [4], [2]
    ids = flat.to_documents(torch.arange(20, 31)[None], 0)
    assert torch.equal(regrouped.to_documents(regrouped.to_packed(ids, -1), 0), ids)  # same documents, same order
    model = load_diffusion_model(llada_checkpoint[0], attn_implementation="sdpa").eval()
    targets = ids.masked_fill(~flat.valid, -100)
    with torch.no_grad():
        one_row = packed_gold_log_probs(model, flat, ids, targets).log_probs
        rows = packed_gold_log_probs(model, grouped, ids, targets).log_probs
    torch.testing.assert_close(rows, one_row, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize("method", list(METHODS))
def test_packed_loss_and_gradients_equal_padded(tmp_path, family, method, llada_checkpoint, dream_checkpoint,
                                                llada_tokenizer, dream_tokenizer):
    path = (llada_checkpoint if family == "llada" else dream_checkpoint)[0]
    tokenizer = llada_tokenizer if family == "llada" else dream_tokenizer
    padded_loss, padded_grads, padded = _loss_and_grads(_trainer(tmp_path, path, tokenizer, False, **METHODS[method]))
    packed_loss, packed_grads, packed = _loss_and_grads(_trainer(tmp_path, path, tokenizer, True, **METHODS[method]))
    assert packed["input_ids"].shape[0] == 1 and padded["input_ids"].shape[0] == len(PROMPTS)  # really packed
    assert (padded["attention_mask"] == 0).any()  # ... and really padded
    assert packed_loss > 0
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_packed_documents_do_not_see_each_other(tmp_path, dream_checkpoint, dream_tokenizer):
    """Changing one document changes no other document's scores (Dream: nor through the logit shift)."""
    trainer = _trainer(tmp_path, dream_checkpoint[0], dream_tokenizer, True)
    inputs = dict(trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]))
    batch = trainer._diffusion_batch(inputs)
    targets = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    model = trainer.model.eval()
    with torch.no_grad():
        before = trainer._gold(model, batch, batch.input_ids, targets).log_probs
        changed = batch.input_ids.clone()
        changed[0, batch.attention_mask[0].sum() - 1] = batch.mask_token_id  # the first document's last token
        after = trainer._gold(model, batch, changed, targets).log_probs
    assert not torch.allclose(before[0], after[0])
    torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-6)
    assert (before[:, 0] == 0).all()  # a document's first token is predicted by nothing (shift)


def test_packing_refusals(tmp_path, llada_checkpoint, llada_tokenizer):
    base = dict(output_dir=str(tmp_path), report_to="none")
    with pytest.raises(ValueError, match="packing_strategy='bfd'"):
        DiffusionSFTConfig(**base, packing=True, packing_strategy="wrapped")
    with pytest.raises(ValueError, match="supervise_padding=None"):
        DiffusionSFTConfig(**base, packing=True, supervise_padding=True)
    with pytest.raises(ValueError, match="set one of them"):
        DiffusionSFTConfig(**base, packing=True, pad_to_max_length=True, max_length=64)
    assert DiffusionSFTConfig(**base, packing=True).supervise_padding is False
    model = load_diffusion_model(llada_checkpoint[0], attn_implementation="sdpa")
    model.config._attn_implementation = "paged|sdpa"  # a backend that cannot confine attention
    with pytest.raises(ValueError, match="attn_implementation one of"):
        DiffusionSFTTrainer(model, args=DiffusionSFTConfig(**base, packing=True),
                            train_dataset=Dataset.from_dict({"prompt": PROMPTS, "completion": ANSWERS}),
                            processing_class=llada_tokenizer)


def test_packed_training_runs_end_to_end(tmp_path, llada_checkpoint, llada_tokenizer):
    data = Dataset.from_dict({"prompt": PROMPTS * 4, "completion": ANSWERS * 4})
    args = DiffusionSFTConfig(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=2, per_device_eval_batch_size=2,
        max_length=64, packing=True, lift=True, report_to="none", save_strategy="no", logging_steps=1,
        dataloader_num_workers=0, dataloader_pin_memory=False, bf16=False, eval_timesteps=2,
    )
    trainer = DiffusionSFTTrainer(llada_checkpoint[0], args=args, train_dataset=data, eval_dataset=data,
                                  processing_class=llada_tokenizer)
    trainer.train()
    logs = [log for log in trainer.state.log_history if "loss" in log]
    rows = len(trainer.train_dataset)
    assert rows < len(data) and len(logs) == (rows + 1) // 2  # several documents per row
    assert all(0 < log["loss"] < 100 for log in logs)
    assert logs[-1]["num_tokens"] == sum(len(ids) for ids in trainer.train_dataset["input_ids"])  # no padding
    first, second = trainer.evaluate()["eval_loss"], trainer.evaluate()["eval_loss"]
    assert first == second and first > 0
