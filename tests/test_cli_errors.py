"""The CLI's failures: one line on stderr naming the input and the rule, the right exit code, no traceback,
and a bad configuration rejected before anything (Prefect, the stage process) is started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmforge import cli, interrupt, prefect_env
from llmforge.config import load_pipeline_config
from http_fault_server import serve

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def nothing_may_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the CLI gets as far as starting the stage process or Prefect."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a rejected configuration must not start anything")

    monkeypatch.setattr(interrupt, "run_supervised", forbidden)
    monkeypatch.setattr(prefect_env, "configure_prefect", forbidden)


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("command", "settings", "rule"),
    [
        ("data", "data:\n  dedup:\n    buckets: 0\n", "data.dedup.buckets: must be >= 1 (got 0)"),
        ("tokenize", "tokenize:\n  val_fraction: 2.0\n", "tokenize.val_fraction: must be < 1 (got 2)"),
        ("data", "data:\n  records_per_shard: -3\n", "data.records_per_shard: must be >= 0 (got -3)"),
        ("run", "data:\n  max_workers: 0\n", "data.max_workers: must be >= 1 (got 0)"),
        ("data", "data:\n  dedupe: {buckets: 4}\n", "data.dedupe: unknown setting (did you mean data.dedup?)"),
        ("pretrain", "pretrain: {n_embd: 128, n_head: 3}\n", "pretrain.n_head: must divide n_embd (128 is not a multiple of 3)"),
    ],
)
def test_a_bad_config_file_is_one_line_and_exit_2_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None, command: str, settings: str, rule: str
) -> None:
    path = write(tmp_path, settings)
    assert cli.main([command, "--config", str(path), "--workdir", str(tmp_path / "w")]) == cli.EXIT_USAGE
    assert stderr_lines(capsys) == [f"llmforge {command}: error: {path}: {rule}"]
    assert not (tmp_path / "w").exists()


def test_a_bad_command_line_override_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None
) -> None:
    assert cli.main(["pretrain", "--nproc", "0", "--workdir", str(tmp_path)]) == cli.EXIT_USAGE
    assert stderr_lines(capsys) == ["llmforge pretrain: error: command line: pretrain.nproc: must be >= 1 (got 0)"]


def test_a_yaml_syntax_error_names_the_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None
) -> None:
    path = write(tmp_path, "data:\n  source: sample\n    records_per_shard: 10\n")
    assert cli.main(["data", "--config", str(path), "--workdir", str(tmp_path)]) == cli.EXIT_USAGE
    (line,) = stderr_lines(capsys)
    assert line.startswith(f"llmforge data: error: {path}: line 3, column 22: invalid YAML: ")
    assert "<unicode string>" not in line


def test_status_chat_and_serve_share_the_config_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None
) -> None:
    path = write(tmp_path, "chat: {top_k: 0}\n")
    for command in ("status", "chat", "serve"):
        assert cli.main([command, "--config", str(path), "--workdir", str(tmp_path)]) == cli.EXIT_USAGE
        assert stderr_lines(capsys) == [f"llmforge {command}: error: {path}: chat.top_k: must be >= 1 (got 0)"]


def test_a_missing_source_is_one_line_and_a_run_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None
) -> None:
    missing = tmp_path / "nowhere.warc.gz"
    assert cli.main(["data", "--source", str(missing), "--workdir", str(tmp_path)]) == cli.EXIT_FAILED
    assert stderr_lines(capsys) == [f"llmforge data: error: source not found: {missing}"]


def test_verbose_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None) -> None:
    missing = tmp_path / "nowhere.warc.gz"
    assert cli.main(["data", "--verbose", "--source", str(missing), "--workdir", str(tmp_path)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "SourceError" in err
    assert err.splitlines()[-1] == f"llmforge data: error: source not found: {missing}"


def test_config_check_prints_the_merged_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "data: {source: /x/*.warc.gz, dedup: {buckets: 20}}\ntokenize: {vocab_size: 4096}\n")
    assert cli.main(["config", "check", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_pipeline_config(path).model_dump(mode="json")
    assert printed["data"]["dedup"] == {**printed["data"]["dedup"], "buckets": 20, "hashes_per_bucket": 8}


def test_config_check_rejects_with_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "tokenize: {val_fraction: 2.0}\n")
    assert cli.main(["config", "check", str(path)]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"llmforge config: error: {path}: tokenize.val_fraction: must be < 1 (got 2)"]
    assert cli.main(["config", "check", str(tmp_path / "absent.yaml")]) == cli.EXIT_USAGE


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "llmforge.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO_ROOT)


def test_the_installed_entry_point_rejects_a_bad_file_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  dedup:\n    buckets: 0\n")
    proc = run_cli("data", "--config", str(path), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"llmforge data: error: {path}: data.dedup.buckets: must be >= 1 (got 0)"]
    assert proc.stdout == "" and not (tmp_path / "w").exists()


@pytest.mark.slow
def test_an_unknown_crawl_is_one_line_naming_the_url_and_no_prefect_traceback(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()  # a Common Crawl server that has no crawls at all
    with serve(tmp_path / "served") as server:
        path = write(tmp_path, f"data:\n  cc_base_url: {server.base_url}\n  cc_max_retries: 1\n")
        proc = run_cli("data", "--source", "cc:CC-MAIN-9999-99", "--config", str(path), "--workdir", str(tmp_path / "w"))
    listing = f"{server.base_url}/crawl-data/CC-MAIN-9999-99/warc.paths.gz"
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "expected CC-MAIN-YYYY-WW" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("llmforge data: error: Common Crawl at ")
    assert f"crawl CC-MAIN-9999-99 not found on the server: {listing} answered HTTP 404" in line


def test_a_stage_already_running_on_the_workdir_is_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_may_start: None
) -> None:
    """The second `llmforge tokenize` (or a `run`, which covers every stage) on a work directory where
    tokenize is running is refused at once, naming the holder, without starting Prefect."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from llmforge.workdir_lock import StageLock;"
         "lock = StageLock.acquire(Path(sys.argv[1]), 'tokenize'); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "w")],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for command in ("tokenize", "run"):
            assert cli.main([command, "--workdir", str(tmp_path / "w")]) == cli.EXIT_FAILED
            [line] = stderr_lines(capsys)
            assert line.startswith(f"llmforge {command}: error: the tokenize stage is already running on work directory")
            assert f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
