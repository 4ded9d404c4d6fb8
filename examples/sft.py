# Launch (one GPU):  python examples/sft.py --config examples/recipes/qlora_llada_24gb.yaml
# Launch (4 GPUs):   accelerate launch --num_processes 4 --use_deepspeed --zero_stage 2 \
#                       examples/sft.py --config examples/recipes/lift_paper.yaml
"""``trl-lift sft`` as a script, the way TRL ships ``trl/scripts/sft.py``: the same parser and ``main``.

Every argument of ``trl sft`` (TRL's ScriptArguments, the trainer's config, ModelConfig, data set mixtures)
plus DiffusionSFTConfig's settings; ``python examples/sft.py --help`` lists them all.
"""

from trl_lift.cli.sft import main, make_parser

if __name__ == "__main__":
    script_args, training_args, model_args, dataset_args = make_parser().parse_args_and_config()
    main(script_args, training_args, model_args, dataset_args)
