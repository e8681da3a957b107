"""Prefect flows: orchestration only. Each stage's logic lives in `tasks/`."""
