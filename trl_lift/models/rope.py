"""Float32 rotary embeddings for one loaded Llama-architecture model (LLaDA's ``rope_full_precision``).

LLaDA rotates queries and keys in float32 and casts them back; a stock Llama rotates in the
activation dtype, so in bf16 its logits differ from LLaDA's by up to 0.16 (../shared/docs/models.md).
:func:`enable_fp32_rope` changes only the model it is given: its rotary modules return float32
tables, and its attention modules run transformers' own ``forward`` code with the name
``apply_rotary_pos_emb`` bound to a float32-aware rotation. Nothing of transformers is replaced, so
every other model in the process keeps its behaviour.
"""

from __future__ import annotations

import types

import torch
from transformers.models.llama import modeling_llama

_ROTATION = "apply_rotary_pos_emb"
# The stock rotation, bound once: ``torch.compile`` traces the rebound attention forward with the
# rebound globals, under which ``modeling_llama.apply_rotary_pos_emb`` would name rotate_fp32 itself.
_stock_rotation = modeling_llama.apply_rotary_pos_emb


def rotate_fp32(q, k, cos, sin, unsqueeze_dim=1):
    """Llama's rotation, in float32 when handed float32 tables with lower-precision ``q`` / ``k``.

    Returns ``q`` and ``k`` in their own dtype; with tables in the activation dtype it is the
    stock rotation unchanged.
    """
    if cos.dtype == torch.float32 and q.dtype != torch.float32:
        q_rot, k_rot = _stock_rotation(q.float(), k.float(), cos, sin, unsqueeze_dim)
        return q_rot.to(q.dtype), k_rot.to(k.dtype)
    return _stock_rotation(q, k, cos, sin, unsqueeze_dim)


def _rebound(function, name: str, value):
    """A copy of ``function`` (and of the decorators wrapped around it) reading global ``name`` as ``value``."""
    inner = getattr(function, "__wrapped__", None)
    if inner is None:
        if name not in function.__code__.co_names:
            raise RuntimeError(
                f"{function.__qualname__} of this transformers version does not call {name}: fp32 RoPE cannot be "
                "applied. Load the model with rope_fp32=False (bf16 logits then differ slightly from LLaDA's)."
            )
        # Without "__name__", Dynamo reads these globals as the dict they are; with it, it would look every
        # name up in the real module (torch._dynamo's get_globals_source_and_value) and trace the stock rotation.
        scope = {key: item for key, item in function.__globals__.items() if key != "__name__"}
        copy = types.FunctionType(function.__code__, {**scope, name: value}, function.__name__,
                                  function.__defaults__, function.__closure__)
        copy.__module__ = function.__module__
    else:
        new_inner = _rebound(inner, name, value)
        cells = tuple(types.CellType(new_inner) if cell.cell_contents is inner else cell
                      for cell in function.__closure__ or ())
        copy = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                                  function.__defaults__, cells)
        copy.__wrapped__ = new_inner
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__dict__.update({k: v for k, v in function.__dict__.items() if k != "__wrapped__"})
    return copy


def _fp32_tables(self, x, position_ids):
    """A rotary module's forward returning float32 tables (it reads only the device and dtype of ``x``)."""
    return type(self).forward(self, torch.empty(0, device=x.device, dtype=torch.float32), position_ids)


def enable_fp32_rope(model) -> None:
    """Make a loaded Llama-architecture model rotate queries and keys in float32 (as LLaDA does)."""
    forwards = {}  # one rebound forward per attention class
    for module in model.modules():
        if getattr(module, "_trl_lift_fp32_rope", False):
            continue
        if isinstance(module, modeling_llama.LlamaRotaryEmbedding):
            module.forward = types.MethodType(_fp32_tables, module)
        elif isinstance(module, modeling_llama.LlamaAttention):
            cls = type(module)
            forwards.setdefault(cls, _rebound(cls.forward, _ROTATION, rotate_fp32))
            module.forward = types.MethodType(forwards[cls], module)
        else:
            continue
        module._trl_lift_fp32_rope = True
