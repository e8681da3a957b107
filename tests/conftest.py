"""Shared fixtures: the real third-party test data beside the project, and a private Prefect home."""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tests never touch the user's ~/.prefect; this must happen before prefect is imported.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="llmforge-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# ... nor the user's ~/.cache (compiled URL blocklists).
os.environ.setdefault("LLMFORGE_CACHE_DIR", tempfile.mkdtemp(prefix="llmforge-cache-"))
# ... nor ~/.llmforge. CLI runs go to a temporary Prefect server that ends with them, as
# before the persistent local server; the tests of that server turn this off.
os.environ.setdefault("LLMFORGE_HOME", tempfile.mkdtemp(prefix="llmforge-home-"))
os.environ.setdefault("LLMFORGE_EPHEMERAL", "1")


def _shared_data_dir() -> Path:
    configured = os.environ.get("LLMFORGE_SHARED_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real WARCs, HTML pages, books and models in ../shared/data (required in CI)."""
    path = _shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared test data not found at {path} (set LLMFORGE_SHARED_DATA)")
        pytest.skip(f"shared test data not found at {path}")
    return path


def require_module(name: str) -> ModuleType:
    """Import a test-only dependency (a library a differential test compares against): a
    failure in CI, where the test extras are installed, and a skip elsewhere."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"test dependency {name!r} is not installed: {exc}")
        pytest.skip(f"test dependency {name!r} is not installed")


@pytest.fixture(scope="session")
def lid_model_path(shared_data: Path) -> Path:
    return shared_data / "models" / "lid.176.ftz"


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def tiny_pipeline_config(**data_overrides):
    """A pipeline small enough for tests: a short sample, a small vocabulary, a few dozen steps."""
    from llmforge.config import PipelineConfig

    config = PipelineConfig()
    config.data.sample_pages = 120
    config.data.max_workers = 2
    for key, value in data_overrides.items():
        setattr(config.data, key, value)
    config.tokenize.vocab_size = 512
    config.pretrain.n_layer, config.pretrain.n_embd, config.pretrain.n_head = 2, 64, 4
    config.pretrain.seq_len, config.pretrain.batch_size = 64, 8
    config.pretrain.steps, config.pretrain.warmup_steps, config.pretrain.log_every = 40, 5, 10
    config.evaluate.max_val_tokens = 4000
    config.evaluate.max_new_tokens = 8
    config.evaluate.prompts = ["The"]
    config.evaluate.multiple_choice_path = str(REPO_ROOT / "tests" / "data" / "hellaswag_tiny.jsonl")
    config.sft.steps, config.sft.batch_size, config.sft.log_every = 30, 8, 10
    config.sft.generated_conversations, config.sft.eval_problems, config.sft.eval_max_new_tokens = 200, 8, 24
    config.rl.steps, config.rl.prompts_per_step, config.rl.samples_per_prompt = 2, 2, 2
    config.rl.eval_problems, config.rl.eval_samples, config.rl.max_new_tokens = 6, 2, 24
    return config
