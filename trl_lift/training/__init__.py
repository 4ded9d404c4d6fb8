"""Training: ``DiffusionSFTConfig`` and the thin ``DiffusionSFTTrainer`` over TRL's ``SFTTrainer``."""
