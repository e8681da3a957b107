"""Post-training: SFT data and training, RL on problems with checkable answers, pass@k."""
