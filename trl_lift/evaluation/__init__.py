"""Evaluation of diffusion LMs under the LIFT paper's protocol (Parashar et al., ICML 2026).

Graders, puzzle generators, sandboxed code execution, avg@K / pass@K and the
benchmark data loader used by the lm-eval tasks in ``lm_eval_tasks/``. One
concept per module:

- :mod:`.answers`: last ``\\boxed{}`` / ``<answer>`` extraction, GSM8K numbers;
- :mod:`.math_equivalence`: MATH-500 / AIME (math-verify) and GSM8K graders;
- :mod:`.countdown`, :mod:`.sudoku`: seeded generators and checkers;
- :mod:`.code_execution`: the HumanEval / MBPP judge, run outside the sandbox;
- :mod:`.sandbox`: the OS-isolated process a candidate program runs in (bubblewrap, seccomp);
- :mod:`.pass_at_k`: avg@K and unbiased pass@K;
- :mod:`.data`: hub sets, local copies (``TRL_LIFT_DATA_DIR``), generated puzzles;
- :mod:`.likelihood`, :mod:`.lm_eval_model`: the ELBO estimate and the lm-eval model ``lift_dlm``.
"""
