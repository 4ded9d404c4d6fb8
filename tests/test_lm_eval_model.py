"""lift_dlm through lm-eval: simple_evaluate on local tasks, gen kwargs, PEFT, Dream, recorded settings."""

import json
import logging
import textwrap

import pytest
import torch
from lm_eval.api.instance import Instance

import lm_eval
from lm_eval.tasks import TaskManager
from trl_lift import DiffusionGenerationConfig
from trl_lift.evaluation.lm_eval_model import LIFTDiffusionLM
from trl_lift.evaluation.request_seeds import request_seed

DOCS = [
    {"question": "Question: what is 12 plus 30? Answer:", "answer": "42", "choices": [" 42", " 7", " 12"], "label": 0},
    {"question": "Solve for x: 2x + 3 = 7, so x =", "answer": "2", "choices": [" 2", " 5"], "label": 0},
    {"question": "The quick brown fox jumps over the", "answer": "lazy dog", "choices": [" lazy dog", " fox"], "label": 1},
]
SAMPLER = "block_length=8,steps=8,mc_num=4,dtype=float32"


def write_tasks(folder):
    """A generation task and a multiple-choice (likelihood) task over a local jsonl file."""
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    common = f"""
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        doc_to_text: "{{{{question}}}}"
    """
    (folder / "tiny_gen.yaml").write_text(textwrap.dedent(f"""
        task: tiny_gen{common}
        output_type: generate_until
        doc_to_target: "{{{{answer}}}}"
        generation_kwargs:
          until: "."
          max_gen_toks: 16
        metric_list:
          - metric: exact_match
    """))
    (folder / "tiny_mc.yaml").write_text(textwrap.dedent(f"""
        task: tiny_mc{common}
        output_type: multiple_choice
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: "{{{{label}}}}"
        metric_list:
          - metric: acc
    """))
    return folder


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory):
    return TaskManager(include_path=str(write_tasks(tmp_path_factory.mktemp("tasks"))))


def evaluate(pretrained, task_manager, extra="", **kwargs):
    return lm_eval.simple_evaluate(
        model="lift_dlm",
        model_args=f"pretrained={pretrained},{SAMPLER}{extra}",
        tasks=["tiny_gen", "tiny_mc"],
        task_manager=task_manager,
        batch_size=2,
        log_samples=True,
        **kwargs,
    )


def responses(results, task):
    return [s["resps"] for s in sorted(results["samples"][task], key=lambda s: (s["doc_id"], str(s["arguments"])))]


def test_registered_after_lm_eval_own_models():
    from lm_eval.api.registry import get_model

    assert get_model("lift_dlm") is LIFTDiffusionLM
    assert get_model("dummy").__name__ == "DummyLM"  # lm-eval's table is intact


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_simple_evaluate_records_sampler_settings(family, request, task_manager):
    path = request.getfixturevalue(f"{family}_checkpoint")[0]
    estimator = "count" if family == "dream" else "time"
    results = evaluate(path, task_manager, extra=f",mc_estimator={estimator}")
    assert set(results["results"]) == {"tiny_gen", "tiny_mc"}
    info = results["config"]["lift_dlm"]
    assert info["family"] == family and info["mc_num"] == 4 and info["mc_estimator"] == estimator
    assert info["sampler_model_args"] == {"block_length": 8, "steps": 8}
    (used,) = info["sampler_configs_used"]
    # The task's max_gen_toks=16 sets the canvas (2 blocks of 8, 8 steps); batches of 2 -> 2 sampler calls.
    assert used["sampler"]["gen_length"] == 16 and used["sampler"]["steps"] == 8
    assert used["requests"] == 3 and used["nfe"] == 16 and used["nfe_per_request"] == 8
    assert info["tokens_per_second"] > 0 and info["likelihood_requests"] == 7
    for resp in responses(results, "tiny_gen"):
        assert "." not in resp[0][0]
    lls = [float(choice[0][0]) for resp in responses(results, "tiny_mc") for choice in resp]
    assert len(lls) == 7
    assert all(ll < 0 for ll in lls)
    # Per-request seeds: a second run reproduces every sample exactly.
    again = evaluate(path, task_manager, extra=f",mc_estimator={estimator}")
    assert responses(again, "tiny_gen") == responses(results, "tiny_gen")
    assert responses(again, "tiny_mc") == responses(results, "tiny_mc")


def test_chat_template_and_system_instruction(llada_checkpoint, task_manager):
    results = evaluate(llada_checkpoint[0], task_manager, apply_chat_template=True, system_instruction="Be brief.")
    prompt = results["samples"]["tiny_gen"][0]["arguments"][0][0]
    assert prompt.startswith("<|startoftext|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.fixture(scope="module")
def lm(llada_checkpoint):
    return LIFTDiffusionLM(pretrained=llada_checkpoint[0], dtype="float32", block_length=8, steps=8, mc_num=4,
                           batch_size=4, max_gen_toks=16)


def gen_request(context, gen_kwargs, idx=0):
    return Instance("generate_until", {}, (context, gen_kwargs), idx, ("t", idx, 1))


def test_until_as_string_or_list(lm):
    full = lm.generate_until([gen_request("The quick brown fox", {"until": [], "max_gen_toks": 16})])[0]
    assert len(full) > 2
    stop = full[len(full) // 2 : len(full) // 2 + 1]
    cut = full.split(stop, 1)[0]
    as_string = lm.generate_until([gen_request("The quick brown fox", {"until": stop, "max_gen_toks": 16})])[0]
    as_list = lm.generate_until([gen_request("The quick brown fox", {"until": [stop, "\x00"], "max_gen_toks": 16})])[0]
    assert as_string == as_list == cut


def test_max_gen_toks_is_clamped_with_warning(lm, caplog):
    with caplog.at_level(logging.WARNING):
        lm.generate_until([gen_request("The quick brown fox", {"until": "x", "max_gen_toks": 32768})])
    assert "clamped to max_gen_toks=16" in caplog.text
    resolve = lambda kwargs: DiffusionGenerationConfig.from_request(  # noqa: E731
        kwargs, overrides=lm.sampler_overrides, max_gen_toks=lm.max_gen_toks)
    got = resolve({"until": "x", "max_gen_toks": 32768})
    config = got.config
    assert (config.gen_length, config.block_length, config.steps, got.keep, got.until) == (16, 8, 8, 16, "x")
    assert [key for key, _ in got.notes] == ["clamp32768"]
    got = resolve({"max_gen_toks": 5, "do_sample": True, "temperature": 0.7})
    assert (got.config.gen_length, got.keep, got.config.temperature) == (8, 5, 0.7)  # a block, cut to 5 tokens
    assert resolve({"do_sample": False, "temperature": 0.7}).config.temperature == 0.0
    assert "has no meaning" in resolve({"top_p": 0.9}).notes[0][1]


def test_model_args_take_precedence_over_task(llada_checkpoint, caplog):
    lm = LIFTDiffusionLM(pretrained=llada_checkpoint[0], dtype="float32", gen_length=16, block_length=4, steps=8,
                         temperature=0.0)
    got = DiffusionGenerationConfig.from_request({"max_gen_toks": 64, "temperature": 1.0, "block_length": 32},
                                                 overrides=lm.sampler_overrides, max_gen_toks=lm.max_gen_toks)
    config = got.config
    assert (config.gen_length, config.block_length, config.steps, config.temperature, got.keep) == (16, 4, 8, 0.0, 16)
    # Overriding a task's sampling temperature (AIME's repeated samples) is said once.
    with caplog.at_level("WARNING"):
        lm.generate_until([gen_request("x", {"max_gen_toks": 64, "temperature": 1.0, "block_length": 32})] * 2)
    assert caplog.text.count("override the task's own") == 1 and "'temperature': 1.0" in caplog.text
    with pytest.raises(TypeError, match="unknown model_args"):
        LIFTDiffusionLM(pretrained=llada_checkpoint[0], gen_lenght=16)
    with pytest.raises(ValueError, match="remote code"):
        LIFTDiffusionLM(pretrained=llada_checkpoint[0], trust_remote_code=True)


def test_outputs_do_not_depend_on_batch_or_split(lm):
    """What a data-parallel split does: each rank sees a strided subset, in other batches."""
    prompts = ["The quick brown", "Solve for x:", "Question: what is 12", "def add(a, b):", "assert add"]
    reqs = [gen_request(p, {"until": [], "max_gen_toks": 16, "do_sample": True, "temperature": 1.0}, i)
            for i, p in enumerate(prompts)]
    whole = lm.generate_until(reqs)
    ranks = [lm.generate_until(reqs[r::2]) for r in range(2)]
    assert ranks[0] == whole[0::2] and ranks[1] == whole[1::2]
    # Repeats of one instance (avg@K) draw differently; the seed is stable across processes.
    twice = lm.generate_until([reqs[0], reqs[0]])
    assert twice[0] == whole[0] and twice[1] != twice[0]
    assert request_seed(1, reqs[0], 0) == request_seed(1, reqs[0], 0) != request_seed(1, reqs[0], 1)
    ll = [Instance("loglikelihood", {}, (p, " fox"), i, ("t", i, 1)) for i, p in enumerate(prompts)]
    scores = lm.loglikelihood(ll)
    split = lm.loglikelihood(ll[1::2])
    assert [s[0] for s in split] == pytest.approx([s[0] for s in scores[1::2]], abs=1e-5)


def test_loglikelihood_rolling_sums_windows(lm):
    text = "The quick brown fox jumps over the lazy dog."
    (total,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0, ("t", 0, 1))])
    assert total < 0 and torch.isfinite(torch.tensor(total))


def make_lora_adapter(root, checkpoint, tokenizer):
    """Save a LoRA adapter with non-zero weights on ``checkpoint``, and the merged model (native format)."""
    from peft import LoraConfig, get_peft_model

    from trl_lift.models.loading import load_diffusion_model

    base = load_diffusion_model(checkpoint)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "gate_proj"],
                                                 init_lora_weights=False, lora_alpha=16))
    peft_model.save_pretrained(root / "adapter")
    peft_model.merge_and_unload().save_pretrained(root / "merged")
    tokenizer.save_pretrained(root / "merged")
    return str(root / "adapter"), str(root / "merged")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, llada_checkpoint, llada_tokenizer):
    return make_lora_adapter(tmp_path_factory.mktemp("peft"), llada_checkpoint[0], llada_tokenizer)


def test_peft_adapter_unmerged_equals_merged_and_differs_from_base(llada_checkpoint, adapters):
    from peft import PeftModel

    adapter, merged = adapters
    kwargs = dict(dtype="float32", block_length=8, steps=8, mc_num=8, batch_size=2, max_gen_toks=16)
    models = {
        "base": LIFTDiffusionLM(pretrained=llada_checkpoint[0], **kwargs),
        "peft": LIFTDiffusionLM(pretrained=llada_checkpoint[0], peft=adapter, **kwargs),
        "merged": LIFTDiffusionLM(pretrained=merged, **kwargs),
    }
    assert isinstance(models["peft"].model, PeftModel)  # evaluated unmerged
    gens = [gen_request(p, {"until": [], "max_gen_toks": 16}, i) for i, p in enumerate(["The quick brown", "Solve for x:"])]
    lls = [Instance("loglikelihood", {}, ("Question: what is", " 42"), 0, ("t", 0, 1))]
    out = {name: (m.generate_until(gens), m.loglikelihood(lls)[0][0]) for name, m in models.items()}
    assert out["peft"][0] == out["merged"][0]
    assert out["peft"][1] == pytest.approx(out["merged"][1], abs=1e-4)
    assert out["peft"][0] != out["base"][0]
    assert abs(out["peft"][1] - out["base"][1]) > 1e-3


def test_load_in_4bit(llada_checkpoint):
    import bitsandbytes as bnb

    lm4 = LIFTDiffusionLM(pretrained=llada_checkpoint[0], dtype="float32", load_in_4bit=True, block_length=8, steps=8,
                          mc_num=4, max_gen_toks=16)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in lm4.model.modules())
    (text,) = lm4.generate_until([gen_request("Question: what is 12", {"until": [], "max_gen_toks": 16})])
    assert isinstance(text, str)
    (score,) = lm4.loglikelihood([Instance("loglikelihood", {}, ("Question: what is", " 42"), 0, ("t", 0, 1))])
    assert score[0] < 0
