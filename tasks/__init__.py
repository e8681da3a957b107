"""Stage logic as plain functions; flows/ wraps them in Prefect tasks."""
