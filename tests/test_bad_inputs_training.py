"""Bad inputs to DiffusionSFTTrainer: each refused (or warned about) before any work, with a message that names the fix."""

import os
import shutil
from dataclasses import fields

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from trl_lift import DiffusionSFTConfig, DiffusionSFTTrainer, load_diffusion_model
from trl_lift.methods import METHODS
from trl_lift.training.run_checks import check_resume_checkpoint

ROWS = {"prompt": ["What is 2+2?", "Name a colour."], "completion": [" 4", " blue"]}


def _args(tmp_path, **kw):
    defaults = dict(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                    logging_steps=1, report_to="none", save_strategy="no", seed=0, dataloader_num_workers=0,
                    dataloader_pin_memory=False)
    return DiffusionSFTConfig(**{**defaults, **kw})


def _trainer(model, tmp_path, rows=ROWS, tokenizer=None, **kw):
    return DiffusionSFTTrainer(model, args=_args(tmp_path, **kw), train_dataset=Dataset.from_dict(rows),
                               processing_class=tokenizer)


# ---- data sets ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows,message", [
    ({"question": ["q"], "answer": ["a"]}, r"train_dataset has the columns \['question', 'answer'\], none of which is "
     r"one of TRL's SFT formats.*dataset.rename_columns\(\{'question': 'prompt', 'answer': 'completion'\}\)"),
    ({"prompt": ["q"]}, "train_dataset has a 'prompt' column but no 'completion' column"),
    ({"content": ["q"]}, r"a 'text' column \(language modelling; another column can be named with dataset_text_field"),
])
def test_a_data_set_without_trls_columns_is_refused_before_the_model_loads(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):  # the model path does not exist: the columns came first
        _trainer("/no/such/model", tmp_path, rows)


def test_the_eval_data_set_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"eval_dataset\['gsm8k'\] has the columns \['q', 'a'\]"):
        DiffusionSFTTrainer("/no/such/model", args=_args(tmp_path), train_dataset=Dataset.from_dict(ROWS),
                            eval_dataset={"gsm8k": Dataset.from_dict({"q": ["x"], "a": ["y"]})})


def test_every_example_dropped_for_length_is_an_error(tmp_path, llada_checkpoint, llada_tokenizer):
    rows = {"prompt": ["What is 2+2? " * 10] * 3, "completion": [" 4"] * 3}
    with pytest.raises(ValueError, match=r"No train example is left after truncation to max_length=16: 3 of 3 lost "
                       r"every answer token .* Raise max_length \(the longest example has \d+ tokens\)"):
        _trainer(llada_checkpoint[0], tmp_path, rows, llada_tokenizer, max_length=16)


def test_truncated_and_dropped_examples_are_counted(tmp_path, llada_checkpoint, llada_tokenizer):
    rows = {"prompt": ["What is 2+2? " * 10, "Hi", "Hi"], "completion": [" 4", " 4 " * 20, " 4"]}
    whole = _trainer(llada_checkpoint[0], tmp_path, rows, llada_tokenizer, max_length=None).train_dataset
    lengths = [len(ids) for ids in whole["input_ids"]]
    cut = sum(n - 16 for n in lengths if n > 16)
    assert lengths[2] <= 16 < min(lengths[:2])
    with pytest.warns(UserWarning) as caught:
        trainer = _trainer(llada_checkpoint[0], tmp_path, rows, llada_tokenizer, max_length=16)
    assert [str(w.message) for w in caught if "max_length" in str(w.message)] == [
        f"2 of 3 train examples are longer than max_length=16 and were truncated (truncation_mode='keep_start'), "
        f"{cut} tokens in all; 1 of them lost every answer token and were dropped, 2 examples remain. Raise max_length "
        f"(the longest example has {max(lengths)} tokens), shorten or filter the long examples, or set "
        "truncation_mode='keep_end' to cut the start of the prompt instead of the answer."
    ]
    assert len(trainer.train_dataset) == 2 and max(len(i) for i in trainer.train_dataset["input_ids"]) == 16


def test_examples_without_an_answer_token_are_reported(tmp_path, llada_checkpoint, llada_tokenizer):
    rows = {"input_ids": [[5, 6, 7], [5, 6], [8, 9]], "labels": [[-100, 6, 7], [-100, -100], [-100, 9]]}
    with pytest.warns(UserWarning, match="1 of 3 train examples have no answer token and train nothing"):
        _trainer(llada_checkpoint[0], tmp_path, rows, llada_tokenizer, max_length=None)
    with pytest.warns(UserWarning, match=r"1 of 3 train examples have no answer token \(nothing in the loss\) and were "
                      "dropped"):
        assert len(_trainer(llada_checkpoint[0], tmp_path, rows, llada_tokenizer, max_length=64).train_dataset) == 2


# ---- tokenizer, mask and ids against the model ------------------------------------------------------------------------
def test_a_tokenizer_whose_mask_token_is_not_the_models_is_refused(tmp_path, llada_checkpoint, llada_tokenizer):
    model = load_diffusion_model(llada_checkpoint[0])
    model.config.mask_token_id = 7
    mask = llada_tokenizer.mask_token_id
    with pytest.raises(ValueError, match=rf"tokenizer's mask token '<\|mdm_mask\|>' has id {mask}, but the model's "
                       rf"mask_token_id is 7.*model.config.mask_token_id = {mask}"):
        _trainer(model, tmp_path, tokenizer=llada_tokenizer)


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path, llada_checkpoint, llada_tokenizer):
    model = load_diffusion_model(llada_checkpoint[0])
    model.resize_token_embeddings(300)
    model.config.mask_token_id = 5  # inside the 300 rows: the tokenizer's size is what is wrong
    with pytest.raises(ValueError, match=rf"tokenizer has {len(llada_tokenizer)} tokens but the model's embedding only "
                       r"300 rows.*model.resize_token_embeddings\(len\(tokenizer\)\)"):
        _trainer(model, tmp_path, tokenizer=llada_tokenizer)


def test_a_mask_id_outside_the_embedding_is_refused(tmp_path, llada_checkpoint, llada_tokenizer):
    model = load_diffusion_model(llada_checkpoint[0])
    model.config.mask_token_id = 10**6
    with pytest.raises(ValueError, match=r"mask_token_id 1000000 is outside the model's vocabulary \(embedding size 448\)"):
        _trainer(model, tmp_path, tokenizer=llada_tokenizer)


def test_data_ids_outside_the_vocabulary_or_holding_the_mask_are_refused(tmp_path, llada_checkpoint, llada_tokenizer):
    with pytest.raises(ValueError, match=r"train data set holds the token id 999, outside the model's vocabulary "
                       r"\(embedding size 448\): it was tokenized with another tokenizer"):
        _trainer(llada_checkpoint[0], tmp_path, {"input_ids": [[5, 6, 999], [5, 6]]}, llada_tokenizer)
    rows = {"text": ["What is <|mdm_mask|>?", "fine"]}
    with pytest.raises(ValueError, match=rf"holds the mask token id {llada_tokenizer.mask_token_id} 1 times"):
        _trainer(llada_checkpoint[0], tmp_path, rows, llada_tokenizer)


# ---- method settings: each range in its help ---------------------------------------------------------------------------
def test_every_numeric_method_setting_states_its_range_in_its_help():
    config_fields = {f.name: f for f in fields(DiffusionSFTConfig)}
    numeric = {f"{name}_{f.name}" for name, method in METHODS.items() for f in method.setting_fields()
               if type(f.default) in (int, float)}
    assert numeric == {"lift_bands", "lift_rho_floor", "cart_p"}
    ranges = {"lift_bands": "[2, 10]", "lift_rho_floor": "[0, 1)", "cart_p": "(0, 1]", "time_epsilon": "[0, 1)",
              "eval_timesteps": ">= 1"}
    for name, text in ranges.items():
        assert text in config_fields[name].metadata["help"], name


# ---- non-finite losses --------------------------------------------------------------------------------------------------
class Poison(TrainerCallback):
    """Sets the LM head to NaN at ``event`` of step ``at``: every later loss is NaN, as after a diverged update."""

    def __init__(self, at, event):
        self.at, self.event = at, event

    def _poison(self, state, model):
        if state.global_step == self.at:
            with torch.no_grad():
                model.lm_head.weight.fill_(float("nan"))

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.event == "begin":  # before step at + 1's forward pass
            self._poison(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.event == "end":  # after step at's update, before it logs
            self._poison(state, model)


@pytest.mark.parametrize("event,logging_steps,message,logged,saved", [
    ("begin", 2, r"Training stopped at step 4: the training loss was not finite \(NaN or inf\) at step 3 and the "
     r"trainable weights now hold NaN or inf.*The last checkpoint is .*checkpoint-2\.", [2], ["checkpoint-2"]),
    ("end", 1, r"Training stopped at step 2: the trainable weights hold NaN or inf, so every later update is lost",
     [1], []),
])
def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path, llada_checkpoint, llada_tokenizer, event,
                                                         logging_steps, message, logged, saved):
    trainer = DiffusionSFTTrainer(
        llada_checkpoint[0], args=_args(tmp_path, max_steps=6, per_device_train_batch_size=1, logging_steps=logging_steps,
                                        save_strategy="steps", save_steps=2),
        train_dataset=Dataset.from_dict(ROWS), processing_class=llada_tokenizer, callbacks=[Poison(2, event)],
    )
    with pytest.raises(RuntimeError, match=message):
        trainer.train()
    assert [log["step"] for log in trainer.state.log_history if "loss" in log] == logged  # nothing after the NaN
    out = tmp_path / "out"
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*")) if out.exists() else []
    assert checkpoints == saved  # and no checkpoint of dead weights


# ---- resuming -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, llada_checkpoint, llada_tokenizer):
    tmp_path = tmp_path_factory.mktemp("resume")
    trainer = _trainer(llada_checkpoint[0], tmp_path, tokenizer=llada_tokenizer, max_steps=1, save_strategy="steps",
                       save_steps=1)
    trainer.train()
    return str(tmp_path / "out" / "checkpoint-1")


@pytest.mark.parametrize("damage,error,message", [
    ({"remove": "optimizer.pt"}, FileNotFoundError, r"checkpoint-1 has no optimizer.pt \(saved with save_only_model="
     r"True, or copied in part\): resuming from it would restart the optimizer's moments.*load the checkpoint as the "
     r"model instead"),
    ({"remove": "scheduler.pt"}, FileNotFoundError, "checkpoint-1 has no scheduler.pt"),
    ({"remove": "trainer_state.json"}, FileNotFoundError, "checkpoint-1 has no trainer_state.json"),
    ({"truncate": "optimizer.pt"}, ValueError, r"checkpoint-1/optimizer.pt: .*the file is truncated or corrupt"),
    ({"truncate": "trainer_state.json"}, ValueError, r"trainer_state.json is not valid JSON"),
])
def test_resuming_from_an_incomplete_checkpoint_is_refused(tmp_path, checkpoint, llada_checkpoint, llada_tokenizer,
                                                           damage, error, message):
    folder = shutil.copytree(checkpoint, tmp_path / "out" / "checkpoint-1")
    for action, name in damage.items():
        path = os.path.join(folder, name)
        if action == "remove":
            os.remove(path)
        else:
            data = open(path, "rb").read()
            open(path, "wb").write(data[: len(data) // 2])
    trainer = _trainer(llada_checkpoint[0], tmp_path, tokenizer=llada_tokenizer)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(error, match=message):
        trainer.train(resume_from_checkpoint=True)  # the last checkpoint of output_dir
    assert trainer.state.global_step == 0
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())  # nothing loaded


def test_resuming_without_rng_state_warns(tmp_path, checkpoint):
    folder = str(shutil.copytree(checkpoint, tmp_path / "checkpoint-1"))
    args = _args(tmp_path)
    check_resume_checkpoint(folder, args)  # complete: silent
    os.remove(os.path.join(folder, "rng_state.pth"))
    with pytest.warns(UserWarning, match="has no rng_state.pth .*dropout and other random draws will differ"):
        check_resume_checkpoint(folder, args)
    with pytest.raises(FileNotFoundError, match="resume_from_checkpoint='.*nowhere' is not a folder"):
        check_resume_checkpoint(str(tmp_path / "nowhere"), args)
