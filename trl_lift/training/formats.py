"""Data-set formats that are not TRL's, mapped to TRL's prompt-completion format (``--dataset_format``).

``s1k``: s1K (``simplescaling/s1K``, Muennighoff et al. 2025), the LIFT paper's training set. Each row
becomes the paper's conversation: a system text asking for ``<reasoning>...</reasoning><answer>...</answer>``
with a ``\\boxed{}`` answer (the same text as the ``lift_*`` lm-eval tasks' description, so training
and evaluation prompt alike), the question as the user turn, and as the assistant turn the row's first
thinking trajectory inside ``<reasoning>`` and its ``solution`` boxed inside ``<answer>``. The paper
names the format, not the exact strings: which s1K columns fill the two parts is our reading.
"""

from __future__ import annotations

# The lift_* tasks' description (lm_eval_tasks/lift_reasoning/_lift_reasoning_template_yaml), minus its
# trailing blank line.
REASONING_SYSTEM_PROMPT = (
    "You are a careful problem solver. Think through the problem step by step, then give the final answer. "
    "Respond in exactly this format:\n<reasoning>\n...your step-by-step reasoning...\n</reasoning>\n<answer>\n"
    "\\boxed{final answer}\n</answer>\nThe final answer must be written inside \\boxed{}."
)


def s1k_to_prompt_completion(row: dict) -> dict:
    """One s1K row (``question``, ``solution``, ``thinking_trajectories``) -> conversational prompt-completion."""
    missing = [c for c in ("question", "solution") if c not in row]
    if missing:
        raise ValueError(f"dataset_format 's1k' needs the columns question, solution and thinking_trajectories; this "
                         f"data set lacks {missing}. Drop --dataset_format for a data set already in a TRL format.")
    trajectories = row.get("thinking_trajectories") or [""]
    thinking = trajectories[0] if isinstance(trajectories, list) else str(trajectories)
    solution = row["solution"].strip()
    answer = f"<reasoning>\n{thinking.strip()}\n</reasoning>\n<answer>\n\\boxed{{{solution}}}\n</answer>"
    return {
        "prompt": [{"role": "system", "content": REASONING_SYSTEM_PROMPT},
                   {"role": "user", "content": row["question"]}],
        "completion": [{"role": "assistant", "content": answer}],
    }


FORMATS = {"s1k": s1k_to_prompt_completion}


def apply_format(dataset, name: str | None):
    """``dataset`` (a ``Dataset`` or ``DatasetDict``) mapped by the format ``name``; unchanged for ``None``."""
    if name is None:
        return dataset
    if name not in FORMATS:
        raise ValueError(f"Unknown dataset_format {name!r}; choose one of {sorted(FORMATS)}, or none for a data set "
                         "already in a TRL format (prompt-completion, messages, text).")
    columns = dataset.column_names
    columns = next(iter(columns.values())) if isinstance(columns, dict) else columns
    return dataset.map(FORMATS[name], remove_columns=columns)
