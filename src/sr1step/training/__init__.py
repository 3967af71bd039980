"""Training: run configs, the trainer, checkpoints."""
