"""llmforge: web crawl in, chat model out, every stage a Prefect flow."""

__version__ = "0.1.0"
