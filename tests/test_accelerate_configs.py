"""The accelerate config files in examples/accelerate/: each parses with accelerate's own loader and
names its GPU launch command; the DDP one starts two training processes on a CPU in
test_multiprocess_training.py. DeepSpeed and FSDP need GPUs (and DeepSpeed a `pip install deepspeed`):
on a CPU they are checked as far as parsing and accelerate's own launch-argument validation go."""

import argparse
import pathlib

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "examples" / "accelerate"

EXPECTED = {
    "ddp.yaml": (DistributedType.MULTI_GPU, {}, {}),
    "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, {"zero_stage": 2, "zero3_init_flag": False}, {}),
    "deepspeed_zero3.yaml": (DistributedType.DEEPSPEED, {"zero_stage": 3, "zero3_init_flag": True,
                                                         "zero3_save_16bit_model": True}, {}),
    "fsdp.yaml": (DistributedType.FSDP, {}, {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                             "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer"}),
}


def test_every_config_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_config_parses_with_accelerates_loader(name):
    distributed_type, deepspeed, fsdp = EXPECTED[name]
    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == distributed_type
    assert (config.num_processes, config.num_machines, config.mixed_precision, config.use_cpu) == (4, 1, "bf16", False)
    assert {k: config.deepspeed_config.get(k) for k in deepspeed} == deepspeed
    assert {k: config.fsdp_config.get(k) for k in fsdp} == fsdp
    text = (CONFIGS / name).read_text()
    assert f"accelerate launch --config_file examples/accelerate/{name} --num_processes 4" in text


@pytest.mark.parametrize("name", list(EXPECTED))
def test_launch_arguments_validate(name):
    """accelerate's launcher reads the file into its launch arguments (what `accelerate launch` does first)."""
    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(CONFIGS / name), "--num_processes", "2", "train.py"])
    args, _, _ = _validate_launch_command(args)
    assert isinstance(args, argparse.Namespace) and args.num_processes == 2 and args.mixed_precision == "bf16"
    distributed_type = EXPECTED[name][0]
    assert args.use_deepspeed == (distributed_type == DistributedType.DEEPSPEED)
    assert args.use_fsdp == (distributed_type == DistributedType.FSDP)
    assert args.multi_gpu == (distributed_type == DistributedType.MULTI_GPU)
    if distributed_type == DistributedType.DEEPSPEED:
        assert args.zero_stage == EXPECTED[name][1]["zero_stage"]
