"""A learnable testbed on a CPU: a tiny diffusion LM pretrained on a puzzle domain, then fine-tuned."""
