"""Generation: the diffusion sampler, its settings, its pure schedule and its cached forward passes."""
