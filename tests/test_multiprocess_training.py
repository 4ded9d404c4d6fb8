"""Two training processes on a CPU (gloo) end where one process with the same global batch ends.

Vanilla starts through ``torchrun``; LIFT through ``accelerate launch`` with
examples/accelerate/ddp.yaml (``accelerate launch --cpu --num_processes 2`` would start one process).
The noise of each example is drawn from the example, not from the rank, so the two runs draw the
same masks. The one-process runs: vanilla with the whole global batch at once (its ``sequence``
normalisation is over the global batch on any number of devices), LIFT with the two devices'
micro-batches accumulated (its ``micro_batch`` normalisation averages per-micro-batch ratios over
micro-batches and devices alike).
"""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

HERE = pathlib.Path(__file__).resolve().parent
WORKER = str(HERE / "_multiprocess_train.py")
DDP_CONFIG = str(HERE.parent / "examples" / "accelerate" / "ddp.yaml")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", DDP_CONFIG, "--num_processes", "2",
              "--mixed_precision", "no", "--main_process_port", "29562"]


def _train(launcher, checkpoint, out, *options):
    proc = subprocess.run([*launcher, WORKER, checkpoint, str(out), *options], capture_output=True, text=True,
                          env=ENV, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


RUNS = {  # method: (two-process launcher, the one-process run with the same global batch)
    "vanilla": (TORCHRUN, ["--per-device", "4"]),
    "lift": (ACCELERATE, ["--per-device", "2", "--accumulation", "2"]),
}


@pytest.fixture(scope="module", params=list(RUNS))
def runs(request, tmp_path_factory, llada_checkpoint):
    """(method, one-process run, two-process run, initial parameters), each run three optimizer steps."""
    method, (launcher, one_process) = request.param, RUNS[request.param]
    tmp, checkpoint = tmp_path_factory.mktemp(method), llada_checkpoint[0]
    one = _train([sys.executable], checkpoint, tmp / "one.pt", "--method", method, *one_process)
    two = _train(launcher, checkpoint, tmp / "two.pt", "--method", method, "--per-device", "2")
    return method, one, two, {name: p.detach() for name, p in llada_checkpoint[1].named_parameters()}


def test_two_processes_start_and_train(runs):
    _, one, two, initial = runs
    assert (one["world_size"], two["world_size"], two["distributed_type"]) == (1, 2, "DistributedType.MULTI_CPU")
    assert one["params"].keys() == two["params"].keys() == initial.keys()
    assert len(one["losses"]) == len(two["losses"]) == 3
    for run in (one, two):  # three steps at lr 5e-3 move the weights far beyond the parity tolerance
        assert max((run["params"][k] - initial[k]).abs().max().item() for k in initial) > 1e-3


def test_two_processes_end_where_one_process_ends(runs):
    _, one, two, initial = runs
    for name in initial:
        torch.testing.assert_close(two["params"][name], one["params"][name], rtol=1e-5, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)  # the logged loss: the mean over ranks
