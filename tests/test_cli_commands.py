"""``trl-lift``'s commands on tiny models, offline: help and version, generate, convert, eval, tasks-dir."""

import io
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trl_lift import DiffusionGenerationConfig, diffusion_generate, load_diffusion_model, load_diffusion_tokenizer
from trl_lift.cli import main
from trl_lift.cli.generate import make_parser, sampler_config
from trl_lift.evaluation.lm_eval_args import DEFAULT_PRESET, default_preset
from trl_lift.generation.presets import preset_values

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--gen_length", "16", "--block_length", "8", "--steps", "8"]


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(f"  {c} " in text for c in ("sft", "generate", "convert", "eval", "tasks-dir"))
    assert main([]) == 2 and "usage: trl-lift" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2 and "unknown command 'frobnicate'" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("trl-lift 0.1.0 (torch ")
    for command, expected in (("sft", "--token_weighting"), ("generate", "--block_length"),
                              ("convert", "--from-autoregressive"), ("eval", "lift_dlm's model_args"),
                              ("tasks-dir", "lm_eval/tasks/trl_lift")):
        assert main([command, "--help"]) == 0, command
        assert expected in capsys.readouterr().out, command


def test_tasks_dir_prints_the_folder(capsys, monkeypatch):
    monkeypatch.delenv("TRL_LIFT_TASKS", raising=False)
    assert main(["tasks-dir"]) == 0 and capsys.readouterr().out.strip() == str(ROOT / "lm_eval_tasks")


def test_sampler_flags_over_presets():
    parse = make_parser().parse_args
    assert sampler_config(parse(["m"])) == DiffusionGenerationConfig.preset(DEFAULT_PRESET, progress=True)
    flags_only = sampler_config(parse(["m", "--steps", "64"]))
    assert (flags_only.steps, flags_only.gen_length) == (64, DiffusionGenerationConfig().gen_length)  # no preset
    config = sampler_config(parse(["m", "--preset", "llada_gsm8k", "--threshold", "0.9", "--show-canvas"]))
    assert (config.block_length, config.threshold, config.progress) == (8, 0.9, False)
    with pytest.raises(SystemExit):
        parse(["m", "--remasking", "nonsense"])


def test_generate_answers_as_the_sampler_does(llada_checkpoint, capsys):
    path = llada_checkpoint[0]
    assert main(["generate", path, "--prompt", "What is 12 plus 30?", "--prompt", "Hi", *SMALL]) == 0
    out = capsys.readouterr()
    assert "diffusion steps" in out.err and "[8 forward passes" in out.err  # 8 steps over 2 blocks, one batch
    tokenizer, model = load_diffusion_tokenizer(path), load_diffusion_model(path).eval()
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                           tokenize=False) for p in ("What is 12 plus 30?", "Hi")]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    config = DiffusionGenerationConfig(gen_length=16, block_length=8, steps=8)
    rows = diffusion_generate(model, batch["input_ids"], batch["attention_mask"], config).sequences
    stops = {model.config.eos_token_id, tokenizer.convert_tokens_to_ids("<|eot_id|>")}
    expected = []
    for row in rows[:, batch["input_ids"].shape[1]:].tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), len(row))
        expected.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    assert out.out == f"### What is 12 plus 30?\n{expected[0]}\n\n### Hi\n{expected[1]}\n\n"


def test_chat_keeps_the_conversation_and_canvas_shows_every_step(llada_checkpoint, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello\n\nWhat is 2 plus 2?\n/exit\nnever read\n"))
    assert main(["generate", llada_checkpoint[0], "--system", "Be brief.", "--show-canvas", *SMALL]) == 0
    out = capsys.readouterr()
    assert len(out.out.strip("\n").split("\n")) >= 1 and out.err.count("--- step") == 2 * 8  # two turns of 8 steps
    assert "\u2591" * 16 not in out.err  # the first step already commits a token
    assert "\u2591" in out.err.split("--- step")[1]  # ... and leaves the others masked


def test_lift_dlm_defaults_to_the_papers_model_and_sampler(llada_checkpoint, monkeypatch):
    from trl_lift.evaluation.lm_eval_model import LIFTDiffusionLM

    assert default_preset(None, {}) == "lift_paper" and default_preset(None, {"steps": 8}) is None
    model = LIFTDiffusionLM(pretrained=llada_checkpoint[0], dtype="float32")
    assert model.preset == "lift_paper" and model.sampler_overrides == preset_values("lift_paper") == {
        "gen_length": 256, "block_length": 32, "steps": 128, "remasking": "low_confidence"}
    assert LIFTDiffusionLM(pretrained=llada_checkpoint[0], block_length=8, steps=8).preset is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"(?s)'GSAI-ML/LLaDA-8B-Instruct'.*HF_HUB_OFFLINE=1.*hf download GSAI-ML/LLaDA"):
        LIFTDiffusionLM()  # lm_eval --model lift_dlm --tasks aime24, offline: fails for want of the weights


def test_offline_task_data_error_names_the_variable(monkeypatch):
    from trl_lift.evaluation.data import load_benchmark

    monkeypatch.delenv("TRL_LIFT_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="set TRL_LIFT_DATA_DIR to a folder holding gsm8k/test.jsonl"):
        load_benchmark("gsm8k")


def assert_native(folder, model, tokenizer, *, same_tokens: bool = True):
    """``folder`` loads with plain transformers, without remote code, to the same weights and tokenizer.

    With a Qwen2 config, plain ``AutoTokenizer`` picks ``Qwen2Tokenizer``, which applies Qwen2's own
    pre-tokenizer: right for Dream's real tokenizer (Qwen2's), not for the tiny test tokenizer, whose
    vocabulary then splits some texts differently (``same_tokens=False``: the vocabulary is compared).
    """
    assert not any("auto_map" in json.loads(p.read_text()) for p in Path(folder).glob("*config.json"))
    native = AutoModelForCausalLM.from_pretrained(folder)
    assert native.config.is_causal is False and native.config.mask_token_id == model.config.mask_token_id
    for (name, a), (_, b) in zip(model.state_dict().items(), native.state_dict().items()):
        assert torch.equal(a, b), name
    plain = AutoTokenizer.from_pretrained(folder)
    assert plain.get_vocab() == tokenizer.get_vocab() and plain.mask_token == tokenizer.mask_token
    if same_tokens:
        assert plain("a + b = 2")["input_ids"] == tokenizer("a + b = 2")["input_ids"]


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_convert_writes_a_native_folder(family, request, tmp_path, capsys):
    path, _ = request.getfixturevalue(f"{family}_checkpoint")
    assert main(["convert", path, str(tmp_path / "out")]) == 0
    assert "wrote a native" in capsys.readouterr().err
    assert_native(tmp_path / "out", load_diffusion_model(path), load_diffusion_tokenizer(path),
                  same_tokens=family == "llada")
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["convert", path, str(tmp_path / "out")])


def test_convert_merges_an_adapter(tmp_path, llada_checkpoint, llada_tokenizer):
    from test_lm_eval_model import make_lora_adapter

    adapter, merged = make_lora_adapter(tmp_path, llada_checkpoint[0], llada_tokenizer)
    assert main(["convert", llada_checkpoint[0], str(tmp_path / "out"), "--peft", adapter]) == 0
    assert_native(tmp_path / "out", AutoModelForCausalLM.from_pretrained(merged), llada_tokenizer)


def test_convert_from_autoregressive(tmp_path):
    from trl_lift.testing_families import make_tiny_causal

    make_tiny_causal(str(tmp_path / "causal"), "qwen2")
    assert main(["convert", str(tmp_path / "causal"), str(tmp_path / "out"), "--from-autoregressive"]) == 0
    model = load_diffusion_model(str(tmp_path / "out"))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert model.config.is_causal is False and tokenizer.mask_token == "<|mask|>"
    assert model.config.mask_token_id == tokenizer.mask_token_id and model.config.diffusion_logit_shift is True


def test_readmes_python_example_runs(tmp_path, llada_checkpoint):
    """The README's ten lines, on the tiny model and a local data set in TRL's conversational format."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## Ten lines of Python\n\n```python\n")[1].split("```")[0]
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus 2?"},
                          {"role": "assistant", "content": f"{i + 2}"}]} for i in range(8)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for old, new in (('"GSAI-ML/LLaDA-8B-Instruct"', repr(llada_checkpoint[0])),
                     ('"trl-lib/Capybara"', repr(str(tmp_path / "data"))),
                     ('output_dir="llada-lift"', f'output_dir={str(tmp_path / "out")!r}, max_steps=2, '
                                                 'report_to="none"')):
        assert old in code
        code = code.replace(old, new)
    printed = []
    exec(compile(code, "README.md", "exec"), {"print": lambda *a: printed.append(a)})
    assert len(printed) == 1 and isinstance(printed[0][0], str)


def test_the_command_line_drops_only_the_known_notices():
    import logging

    from trl_lift.cli.quiet import silence_known_noise

    silence_known_noise()
    logger = logging.getLogger("transformers.configuration_utils")
    note = logging.LogRecord(logger.name, logging.WARNING, __file__, 1, "You are using a model of type `llada` to "
                             "instantiate a model of type `llama`. This may be expected", None, None)
    other = logging.LogRecord(logger.name, logging.WARNING, __file__, 1, "You are using a model of type `bert` to "
                              "instantiate a model of type `llama`.", None, None)
    assert (logger.filter(note), bool(logger.filter(other))) == (False, True)
    assert logging.getLogger("bitsandbytes.backends.cpu.ops").getEffectiveLevel() == logging.ERROR


def test_stock_aime24_runs_on_lift_dlm_with_the_papers_sampler(tmp_path, llada_checkpoint):
    """lm-eval's own aime24 task, its data read from the local copy: 32768 tokens asked, lift_paper decodes 256."""
    import lm_eval
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from test_tasks_lm_eval import DATA_DIR, NO_DATA

    if not DATA_DIR.is_dir():
        pytest.skip(NO_DATA)

    stock = Path(lm_eval.__file__).parent / "tasks" / "aime" / "aime24.yaml"
    (tmp_path / "aime24_local.yaml").write_text(
        f"include: {stock}\ntask: aime24_local\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    train: {DATA_DIR / 'aime24' / 'test.jsonl'}\n")
    results = simple_evaluate(model="lift_dlm", model_args=f"pretrained={llada_checkpoint[0]},dtype=float32",
                              tasks=["aime24_local"], limit=1,
                              task_manager=TaskManager(include_defaults=False, include_path=str(tmp_path)))
    info = results["config"]["lift_dlm"]
    assert info["preset"] == "lift_paper"
    (used,) = info["sampler_configs_used"]
    assert (used["sampler"]["gen_length"], used["sampler"]["block_length"], used["sampler"]["steps"]) == (256, 32, 128)
    assert results["results"]["aime24_local"]["exact_match,none"] == 0.0


def test_generate_with_an_adapter_answers_as_the_merged_model(tmp_path, llada_checkpoint, llada_tokenizer, capsys):
    from test_lm_eval_model import make_lora_adapter

    adapter, merged = make_lora_adapter(tmp_path, llada_checkpoint[0], llada_tokenizer)
    answers = []
    for model, args in ((llada_checkpoint[0], ["--peft", adapter]), (merged, []), (llada_checkpoint[0], [])):
        assert main(["generate", model, *args, "--prompt", "What is 12 plus 30?", "--no-progress", *SMALL]) == 0
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1] != answers[2]  # the adapter counts, unmerged
