"""Packed batches: several documents per row, seen by the methods as one document per row.

TRL's padding-free collator (``packing=True`` with the ``bfd`` strategy, or ``padding_free=True``)
concatenates documents into rows and restarts ``position_ids`` at each document. Masked diffusion
needs every document to attend only to itself, in both directions, and its noise, LIFT's superset
and K, the reveal and the loss normalisations to be those of the document alone. A
:class:`PackedLayout` maps a packed ``[R, N]`` tensor to per-document views ``[D, Lmax]`` (each
document from position 0, right-padded) and back: the token-weighting methods and the loss work on
the views exactly as on an unpacked batch of the same documents, and only the forward passes see
the packed rows, with attention confined to each document by the backend's own mechanism
(:meth:`PackedLayout.attention_kwargs`).
"""

from __future__ import annotations

import torch

from ..diffusion.scoring import GoldScores, gold_log_probs
from ..models.facts import get_diffusion_facts, unwrap_model

# Attention implementations and how they confine attention to a document.
DENSE_MASK = ("sdpa", "eager")  # a block-diagonal 4-D mask (the portable fallback, [R, 1, N, N])
BLOCK_MASK = ("flex_attention",)  # a flex-attention BlockMask (no dense mask)
VARLEN = ("flash_attention_2", "flash_attention_3")  # variable-length kernels from cu_seqlens, is_causal=False
SUPPORTED_ATTENTION = DENSE_MASK + BLOCK_MASK + VARLEN


def check_packing_attention(implementation: str | None) -> None:
    """Refuse an attention backend that cannot confine attention to each packed document."""
    name = implementation or "sdpa"
    if name.startswith("kernels-community/") and "flash" in name:
        return  # hub flash kernels take the same varlen path as flash_attention_2
    if name not in SUPPORTED_ATTENTION:
        raise ValueError(
            f"packing / padding_free need an attention backend that confines attention to each document; "
            f"attn_implementation={name!r} cannot. Load the model with attn_implementation one of "
            f"{SUPPORTED_ATTENTION}, or set packing=False and padding_free=False."
        )


class PackedLayout:
    """Where each document of a packed batch lies, from its ``position_ids`` (a restart = a new document).

    Args:
        position_ids: ``[R, N]`` positions restarting at every document (TRL's padding-free collator).
        valid: ``[R, N]`` bool, positions holding tokens (``None`` = all).
        row_length: longest row a dense mask is built for (``max_length``); TRL's padding-free collator
            puts a whole batch in one row, which :meth:`regrouped` cuts back at document boundaries.
    """

    def __init__(self, position_ids: torch.Tensor, valid: torch.Tensor | None = None, row_length: int | None = None):
        rows, width = position_ids.shape
        device = position_ids.device
        valid = torch.ones_like(position_ids, dtype=torch.bool) if valid is None else valid.bool()
        previous = torch.cat([position_ids.new_full((rows, 1), -2), position_ids[:, :-1]], 1)
        starts = (position_ids != previous + 1) & valid  # [R, N]
        # Document id of every position (-1 outside any document), numbered row by row.
        doc = torch.cumsum(starts.reshape(-1), 0).reshape(rows, width) - 1
        self.doc_ids = doc.masked_fill(~valid, -1)  # [R, N]
        self.num_documents = int(starts.sum())
        flat_doc = self.doc_ids.reshape(-1)
        lengths = torch.bincount(flat_doc[flat_doc >= 0], minlength=self.num_documents)  # [D]
        first = torch.nonzero(starts.reshape(-1)).squeeze(1)  # [D] flat index of each document's start
        self.lengths = lengths
        self.width = int(lengths.max()) if self.num_documents else 0
        offsets = torch.arange(self.width, device=device)
        self.valid = offsets[None, :] < lengths[:, None]  # [D, Lmax]
        self.index = (first[:, None] + offsets[None, :]).masked_fill(~self.valid, 0)  # [D, Lmax] flat indices
        self.shape = (rows, width)
        self.position_ids = position_ids
        self.starts = starts
        self.row_length = row_length
        self._regrouped = None

    def regrouped(self) -> "PackedLayout":
        """The same documents, in order, in rows of at most ``max(row_length, longest document)`` tokens.

        Documents attend only to themselves, so any grouping gives the same outputs; a dense mask
        costs ``rows x L^2`` instead of ``(rows x L)^2`` for one flattened row.
        """
        if self.row_length is None or self.shape[1] <= max(self.row_length, self.width):
            return self
        if self._regrouped is None:
            budget = max(self.row_length, self.width)
            groups, size = [[]], 0
            for n in self.lengths.tolist():
                if size + n > budget:
                    groups, size = groups + [[]], 0
                groups[-1].append(n)
                size += n
            positions = torch.zeros(len(groups), max(sum(g) for g in groups), dtype=torch.long)
            valid = torch.zeros_like(positions, dtype=torch.bool)
            for row, group in enumerate(groups):
                offset = 0
                for n in group:
                    positions[row, offset:offset + n] = torch.arange(n)
                    valid[row, offset:offset + n] = True
                    offset += n
            device = self.position_ids.device
            self._regrouped = PackedLayout(positions.to(device), valid.to(device))
        return self._regrouped

    # ---- views -------------------------------------------------------------------------------------------
    def to_documents(self, packed: torch.Tensor, fill) -> torch.Tensor:
        """``[R, N]`` -> ``[D, Lmax]``: one document per row from position 0, ``fill`` after its end."""
        flat = packed.reshape(-1)
        return flat[self.index].masked_fill(~self.valid, fill)

    def to_packed(self, documents: torch.Tensor, fill) -> torch.Tensor:
        """``[D, Lmax]`` -> ``[R, N]``, ``fill`` at positions outside every document (the inverse view)."""
        flat = documents.new_full((self.shape[0] * self.shape[1],), fill)
        flat = flat.index_put((self.index[self.valid],), documents[self.valid])
        return flat.reshape(self.shape)

    # ---- attention -----------------------------------------------------------------------------------------
    def attention_kwargs(self, implementation: str | None, dtype: torch.dtype) -> dict:
        """Forward kwargs that confine every document's attention to itself (bidirectionally).

        ``position_ids`` always (RoPE as unpacked); then a block-diagonal 4-D mask (SDPA, eager),
        a flex-attention ``BlockMask``, or FlashAttention's ``cu_seqlens`` with ``is_causal=False``.
        """
        name = implementation or "sdpa"
        check_packing_attention(name)
        kwargs = {"position_ids": self.position_ids}
        same = self.doc_ids[:, :, None] == self.doc_ids[:, None, :]  # [R, N, N]
        if name in DENSE_MASK:
            allowed = same & (self.doc_ids >= 0)[:, :, None]
            # Positions outside every document attend to themselves only (no row of -inf alone).
            allowed = (allowed | torch.eye(self.shape[1], dtype=torch.bool, device=allowed.device))[:, None]
            if name == "sdpa":  # boolean: True attends (any query dtype)
                kwargs["attention_mask"] = allowed
            else:  # eager adds the mask to the scores
                mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
                kwargs["attention_mask"] = mask.masked_fill(~allowed, torch.finfo(dtype).min)
        elif name in BLOCK_MASK:
            from torch.nn.attention.flex_attention import create_block_mask

            doc_ids = self.doc_ids

            def same_document(b, h, q, kv):
                return doc_ids[b, q] == doc_ids[b, kv]

            kwargs["attention_mask"] = create_block_mask(same_document, self.shape[0], None, self.shape[1],
                                                         self.shape[1], device=doc_ids.device)
        else:  # varlen kernels: one row of documents back to back
            if self.shape[0] != 1:
                raise ValueError("FlashAttention's packed path takes one packed row; TRL's padding-free "
                                 "collator makes one (per_device_train_batch_size counts documents).")
            lengths = self.lengths.to(torch.int32)
            cu = torch.cat([lengths.new_zeros(1), torch.cumsum(lengths, 0, dtype=torch.int32)])
            kwargs.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=self.width, max_length_k=self.width,
                          is_causal=False)
        return kwargs


# ---- the trainer's two uses ------------------------------------------------------------------------------
def document_inputs(inputs: dict, row_length: int | None = None) -> tuple[PackedLayout, dict]:
    """A packed collator output -> its layout and per-document ``input_ids`` / ``labels`` / ``attention_mask``.

    The views are what TRL's padded collator would give for the same documents (right padding, the
    attention mask 0 after each document's end).
    """
    layout = PackedLayout(inputs["position_ids"], inputs.get("attention_mask"), row_length)
    return layout, {
        "input_ids": layout.to_documents(inputs["input_ids"], 0),
        "labels": layout.to_documents(inputs["labels"], -100),
        "attention_mask": layout.valid.long(),
    }


def packed_gold_log_probs(model, layout: PackedLayout, input_ids: torch.Tensor, targets: torch.Tensor) -> GoldScores:
    """:func:`~trl_lift.diffusion.scoring.gold_log_probs` of per-document views, run on the packed rows.

    Under a logit shift (Dream) a document's first position is never predicted, as position 0 of an
    unpacked row: the previous document's last logits do not leak into it.
    """
    base = unwrap_model(model)
    if (base.config._attn_implementation or "sdpa") in DENSE_MASK:
        layout = layout.regrouped()  # dense masks: rows of max_length, not one flattened batch
    packed_targets = layout.to_packed(targets, -100)
    shift = get_diffusion_facts(model).logit_shift
    if shift:
        packed_targets = packed_targets.masked_fill(layout.starts, -100)
    kwargs = layout.attention_kwargs(base.config._attn_implementation, base.dtype)
    scores = gold_log_probs(model, layout.to_packed(input_ids, 0), packed_targets, **kwargs)
    fields = (scores.log_probs, scores.entropy, scores.is_top1)
    if shift:
        fields = tuple(x.masked_fill(layout.starts, 0) for x in fields)
    return GoldScores(*(layout.to_documents(x, 0) for x in fields))
