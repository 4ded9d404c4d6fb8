"""Diffusion LMs as native transformers models: the per-family facts, loading, and LLaDA's fp32 RoPE."""
