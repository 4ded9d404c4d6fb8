"""The masked-diffusion maths, as pure tensor functions shared by training, methods, sampling and evaluation."""
