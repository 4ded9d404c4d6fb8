"""Data parallel evaluation: two processes (gloo on CPU) give the per-sample outputs of one process."""

import json
import subprocess
import sys

from test_lm_eval_install import ENV
from test_lm_eval_model import write_tasks


def _samples(out_dir):
    samples = {}
    for path in out_dir.rglob("samples_*.jsonl"):
        task = path.name[len("samples_"):].rsplit("_", 1)[0]
        for line in path.read_text().splitlines():
            row = json.loads(line)
            samples[(task, row["doc_id"])] = (row["resps"], row["filtered_resps"])
    (result,) = list(out_dir.rglob("results_*.json"))
    return samples, json.loads(result.read_text())["config"]["lift_dlm"]


def _run(launcher, tmp_path, name, tasks, checkpoint):
    out = tmp_path / name
    args = [
        "-m", "trl_lift.cli", "eval", "--model", "lift_dlm", "--include_path", str(tasks),
        # Sampled decoding and likelihoods: per-request seeds must not depend on the process.
        "--model_args", f"pretrained={checkpoint},block_length=8,steps=8,mc_num=4,dtype=float32,temperature=1.0",
        "--tasks", "tiny_gen,tiny_mc", "--log_samples", "--output_path", str(out), "--device", "cpu",
    ]
    proc = subprocess.run([*launcher, *args], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _samples(out)


def test_two_processes_give_the_outputs_of_one(tmp_path, llada_checkpoint):
    tasks = write_tasks((tmp_path / "tasks").mkdir() or tmp_path / "tasks")
    single, single_info = _run([sys.executable], tmp_path, "one", tasks, llada_checkpoint[0])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    double, double_info = _run(torchrun, tmp_path, "two", tasks, llada_checkpoint[0])
    assert (single_info["world_size"], double_info["world_size"]) == (1, 2)
    assert double_info["generate_requests"] < single_info["generate_requests"]  # the work was split
    assert {task for task, _ in single} == {"tiny_gen", "tiny_mc"} and double.keys() == single.keys()
    for key, (resps, filtered) in single.items():
        double_resps, double_filtered = double[key]
        assert double_filtered == filtered, key
        # lm-eval pads the shorter rank with copies of its last request and appends their outputs to that
        # document's responses; the responses themselves are the one-process ones.
        assert [d[: len(r)] for d, r in zip(double_resps, resps)] == resps, key
