"""Checks of the trainer's data sets: TRL's columns, the tokenizer against the model, what truncation cost.

TRL's preparation fails on a data set without its columns with a bare ``KeyError: 'text'`` deep in
``Dataset.map``, truncates examples to ``max_length`` and drops those left without an answer token
without a word (``num_samples=0`` when every prompt is too long), and tokenizes with a tokenizer
whose ids may lie outside the model's embedding. Here the columns are checked before anything loads,
and :func:`prepare_counted` runs TRL's own preparation, then counts and reports what it cut.
"""

from __future__ import annotations

import copy
import warnings

import pyarrow.compute as pc
from datasets import Dataset

from ..models.vocabulary import check_tokenizer_fits_model, vocabulary_size

# Columns of TRL's SFT formats (https://huggingface.co/docs/trl/dataset_formats).
CONVERSATIONAL_COLUMNS = ("messages", "conversations")


def _columns(dataset) -> list[str] | None:
    names = getattr(dataset, "column_names", None)
    if names is None:  # an IterableDataset of unknown features: TRL reads the first example too
        try:
            names = list(next(iter(dataset)).keys())
        except (StopIteration, TypeError):
            return None
    return list(names)


def _named_datasets(train_dataset, eval_dataset):
    if train_dataset is not None:
        yield "train_dataset", train_dataset
    if isinstance(eval_dataset, dict):
        yield from ((f"eval_dataset[{key!r}]", value) for key, value in eval_dataset.items())
    elif eval_dataset is not None:
        yield "eval_dataset", eval_dataset


def check_dataset_columns(train_dataset, eval_dataset, args, formatting_func=None) -> None:
    """Refuse a data set that has none of TRL's SFT formats, before the model is loaded.

    Accepted: a text column (``args.dataset_text_field``, default ``"text"``), ``"messages"`` /
    ``"conversations"``, ``"prompt"`` and ``"completion"``, or a tokenized ``"input_ids"``. Nothing is
    checked with a ``formatting_func`` or ``dataset_kwargs={"skip_prepare_dataset": True}``.

    Raises:
        ValueError: naming the data set, its columns and the renaming that fixes it.
    """
    if formatting_func is not None or (args.dataset_kwargs or {}).get("skip_prepare_dataset"):
        return
    text_field = args.dataset_text_field
    for name, dataset in _named_datasets(train_dataset, eval_dataset):
        columns = _columns(dataset)
        if columns is None or "input_ids" in columns:
            continue
        if any(c in columns for c in (text_field, *CONVERSATIONAL_COLUMNS)):
            continue
        has_prompt, has_completion = "prompt" in columns, "completion" in columns
        if has_prompt and has_completion:
            continue
        if has_prompt or has_completion:
            present, absent = ("prompt", "completion") if has_prompt else ("completion", "prompt")
            raise ValueError(
                f"{name} has a {present!r} column but no {absent!r} column (columns: {columns}): TRL's "
                f"prompt-completion format needs both. Add or rename the {absent} column."
            )
        others = [c for c in columns if c not in ("image", "images")]
        example = (f" e.g. dataset.rename_columns({{{others[0]!r}: 'prompt', {others[1]!r}: 'completion'}})"
                   if len(others) >= 2 else "")
        raise ValueError(
            f"{name} has the columns {columns}, none of which is one of TRL's SFT formats: a {text_field!r} column "
            "(language modelling; another column can be named with dataset_text_field=...), a 'messages' column "
            "(conversational), or 'prompt' and 'completion' columns (prompt-completion). Rename yours,"
            f"{example}, or pass formatting_func=... to build the text."
        )


def _lengths_report(dataset: Dataset) -> dict:
    """Row count, per-row lengths and rows with an answer token of a tokenized, labelled data set (arrow only)."""
    arrow = dataset.with_format("arrow")
    lengths = pc.list_value_length(arrow["input_ids"])
    answered = 0
    for chunk in arrow["labels"].chunks:  # a row never spans chunks
        supervised = pc.not_equal(pc.list_flatten(chunk), -100)
        answered += pc.count_distinct(pc.filter(pc.list_parent_indices(chunk), supervised)).as_py()
    ids = pc.list_flatten(arrow["input_ids"])
    low_high = pc.min_max(ids).as_py() if len(ids) else {"min": None, "max": None}
    return {"rows": len(dataset), "lengths": lengths, "answered": answered, "ids": ids, **low_high}


def check_ids(report: dict, dataset_name: str, vocab: int | None, mask_token_id: int) -> None:
    """Refuse tokenized examples with ids outside the vocabulary, or holding the mask token."""
    if report["min"] is None:
        return
    if vocab is not None and (report["min"] < 0 or report["max"] >= vocab):
        bad = report["min"] if report["min"] < 0 else report["max"]
        raise ValueError(
            f"The {dataset_name} data set holds the token id {bad}, outside the model's vocabulary (embedding size "
            f"{vocab}): it was tokenized with another tokenizer. Tokenize it with the model's own tokenizer "
            "(trl_lift.load_diffusion_tokenizer), or grow the embedding: model.resize_token_embeddings(...)."
        )
    holding = pc.sum(pc.equal(report["ids"], mask_token_id)).as_py() or 0
    if holding:
        raise ValueError(
            f"The {dataset_name} data set holds the mask token id {mask_token_id} {holding} times (the text contains "
            "the mask token literally): the model would read those clean tokens as noise. Remove the mask token from "
            "the text before training."
        )


def _report_truncation(before: dict, after_rows: int, args, dataset_name: str) -> None:
    """Warn about truncated and dropped examples; refuse a data set left empty."""
    max_length = args.max_length
    lengths = before["lengths"]
    long = pc.greater(lengths, max_length)
    truncated = pc.sum(long).as_py() or 0
    cut = pc.sum(pc.subtract(pc.filter(lengths, long), max_length)).as_py() or 0
    longest = pc.max(lengths).as_py() or 0
    lost = before["answered"] - after_rows  # rows with an answer before truncation and none after
    empty = before["rows"] - before["answered"]  # rows that never had an answer token
    fix = (f"Raise max_length (the longest example has {longest} tokens), shorten or filter the long examples, or set "
           "truncation_mode='keep_end' to cut the start of the prompt instead of the answer.")
    if after_rows == 0 and before["rows"] > 0:
        raise ValueError(
            f"No {dataset_name} example is left after truncation to max_length={max_length}: {lost} of "
            f"{before['rows']} lost every answer token (their prompts fill max_length)"
            + (f" and {empty} have no answer token at all" if empty else "") + f". {fix}"
        )
    if truncated:
        message = (f"{truncated} of {before['rows']} {dataset_name} examples are longer than max_length={max_length} "
                   f"and were truncated (truncation_mode={args.truncation_mode!r}), {cut} tokens in all")
        message += (f"; {lost} of them lost every answer token and were dropped, {after_rows} examples remain. "
                    if lost else ". ")
        warnings.warn(message + fix, UserWarning, stacklevel=4)
    if empty:
        warnings.warn(
            f"{empty} of {before['rows']} {dataset_name} examples have no answer token (nothing in the loss) and "
            "were dropped: check that their completion or assistant turn is not empty.", UserWarning, stacklevel=4,
        )


def prepare_counted(prepare, model, mask_token_id: int, dataset, processing_class, args, packing: bool,
                    formatting_func, dataset_name: str):
    """TRL's ``_prepare_dataset`` (``prepare``), with the tokenizer, the ids and the truncation checked.

    The tokenizer is checked against the model first. For an in-memory or on-disk ``Dataset``
    without packing, TRL prepares it untruncated, the lengths are counted, and TRL prepares the
    result again, which only truncates to ``max_length`` and drops the examples left without an
    answer token: so TRL's own truncation is what runs, and this reports how many examples it cut
    (a warning) or that it left none (an error). Packed and iterable data sets are prepared as TRL
    does, uncounted.

    Raises:
        ValueError: for a tokenizer or ids that do not fit the model, or a data set left empty.
    """
    check_tokenizer_fits_model(processing_class, model, mask_token_id)
    if packing or not isinstance(dataset, Dataset):
        return prepare(dataset, processing_class, args, packing, formatting_func, dataset_name)
    whole_args = copy.copy(args)  # a shallow copy: no __post_init__ re-run
    whole_args.max_length, whole_args.shuffle_dataset = None, False
    whole = prepare(dataset, processing_class, whole_args, packing, formatting_func, dataset_name)
    if "labels" not in whole.column_names or "input_ids" not in whole.column_names:
        return prepare(whole, processing_class, args, packing, None, dataset_name)
    before = _lengths_report(whole)
    check_ids(before, dataset_name, vocabulary_size(model), mask_token_id)
    if args.max_length is None:
        prepared = prepare(whole, processing_class, args, packing, None, dataset_name)  # shuffles when asked
        if before["rows"] > before["answered"]:
            warnings.warn(
                f"{before['rows'] - before['answered']} of {before['rows']} {dataset_name} examples have no answer "
                "token and train nothing: check that their completion or assistant turn is not empty.",
                UserWarning, stacklevel=3,
            )
        return prepared
    prepared = prepare(whole, processing_class, args, packing, None, dataset_name)
    _report_truncation(before, len(prepared), args, dataset_name)
    return prepared
