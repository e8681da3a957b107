"""Pretraining (one process or torchrun) and evaluation."""
