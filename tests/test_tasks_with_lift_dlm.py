"""The benchmark tasks run on a real diffusion model: ``lift_dlm`` on a tiny LLaDA-format checkpoint.

The gold-answer runs (test_tasks_lm_eval.py) check the graders; this checks the protocol end to end:
the chat prompt with the opened ``<reasoning>``, the sampler settings from the model args, AIME's
repeated samples, and the sandboxed code tasks, offline from the local data.
"""

from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from test_tasks_lm_eval import CODE, DATA_DIR, REASONING, TASKS_DIR, needs_data


@needs_data
def test_every_task_runs_on_a_tiny_llada(monkeypatch, llada_checkpoint):
    monkeypatch.setenv("TRL_LIFT_DATA_DIR", str(DATA_DIR))
    results = simple_evaluate(
        model="lift_dlm",
        model_args=f"pretrained={llada_checkpoint[0]},gen_length=16,block_length=8,steps=8,dtype=float32",
        tasks=["lift_reasoning", *CODE],
        task_manager=TaskManager(include_path=str(TASKS_DIR)),
        limit=1,
        apply_chat_template=True,
        confirm_run_unsafe_code=True,
        log_samples=True,
    )
    assert set(REASONING + CODE) <= set(results["results"])
    for task in REASONING + CODE:
        (sample,) = results["samples"][task]
        prompt = sample["arguments"][0][0]
        assert prompt.startswith("<|startoftext|><|start_header_id|>system<|end_header_id|>")
        if task in REASONING:
            assert prompt.endswith("<reasoning>")  # the assistant turn opens with the literal tag
        # A random tiny model answers nothing right; what matters is that every grader ran.
        assert all(0.0 <= value <= 1.0 for key, value in results["results"][task].items()
                   if isinstance(value, float) and "stderr" not in key)
    assert len(results["samples"]["lift_aime24"][0]["resps"][0]) == 16  # repeated sampling for avg@K / pass@K
    info = results["config"]["lift_dlm"]
    assert info["sampler_model_args"] == {"gen_length": 16, "block_length": 8, "steps": 8}
    temperatures = {used["sampler"]["temperature"] for used in info["sampler_configs_used"]}
    assert 0.0 in temperatures and any(t > 0 for t in temperatures)  # greedy tasks and sampled AIME


def test_task_folder_is_where_the_cli_finds_it():
    from trl_lift import cli

    assert cli.tasks_dir() is not None and (cli.tasks_dir() / "lift_reasoning.yaml").is_file()
