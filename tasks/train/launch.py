"""Pretraining over several processes: start `torchrun`, relay its progress, collect its result.

The Prefect task stays in the calling process and only supervises: torchrun owns
the N training processes (one per GPU, or gloo processes on CPU), so a crashed
rank takes the whole group down cleanly and the task reports the worker's error.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llmforge.config import PretrainConfig
from model.train import StepLog
from tasks.train.worker import LOG_PREFIX, done_marker

log = logging.getLogger(__name__)

# Lines of launcher output, and of each rank's own stderr, kept to explain a failure.
_TAIL_LINES = 40
_RANK_TAIL_LINES = 20


class DistributedTrainingError(RuntimeError):
    """A training process failed; the message carries its exception type and text."""


def torchrun_command(nproc: int, spec_path: Path, log_dir: Path) -> list[str]:
    """The launcher for one machine; `--standalone` picks a free rendezvous port by itself.

    Each rank's stderr is also kept in `log_dir` (`--tee 2`): when a rank dies of a
    signal, torchrun's own report scrolls its last words out of the shared output.
    """
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        f"--log-dir={log_dir}", "--tee=2",
        "-m", "tasks.train.worker", str(spec_path),
    ]


def pretrain_distributed(
    tokens_dir: Path,
    tokenizer_path: Path,
    checkpoint_dir: Path,
    config: PretrainConfig,
    on_log: Callable[[StepLog], None] | None = None,
    resume: bool = False,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run `pretrain_stage.pretrain` in `config.nproc` processes and return rank 0's result."""
    with tempfile.TemporaryDirectory(prefix="llmforge-torchrun-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({
            "tokens_dir": str(Path(tokens_dir).resolve()),
            "tokenizer_path": str(Path(tokenizer_path).resolve()),
            "checkpoint_dir": str(Path(checkpoint_dir).resolve()),
            "config": config.model_dump(mode="json"),
            "resume": resume,
            "result_path": str(result_path),
        }), encoding="utf-8")
        env = dict(os.environ)
        # Each CPU process gets an equal share of the cores instead of all of them each.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // config.nproc)))
        with subprocess.Popen(
            torchrun_command(config.nproc, spec_path, Path(tmp) / "logs"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        ) as proc:
            assert proc.stdout is not None
            tail = relay_worker_output(proc.stdout, on_log, echo)
            returncode = proc.wait()
        if returncode != 0 and result_path.is_file() and all_ranks_done(result_path, config.nproc):
            return completed_despite_teardown(result_path, returncode, Path(tmp), echo)
        if returncode != 0 or not result_path.is_file():
            raise training_failure(Path(tmp), config.nproc, returncode, tail)
        return json.loads(result_path.read_text(encoding="utf-8"))


def all_ranks_done(result_path: Path, nproc: int) -> bool:
    return all(done_marker(result_path, rank).is_file() for rank in range(nproc))


def completed_despite_teardown(
    result_path: Path, returncode: int, run_dir: Path, echo: Callable[[str], None] | None
) -> dict[str, Any]:
    """The result of a run whose every rank finished, then one aborted closing the process group.

    Seen with gloo on a loaded CPU machine: a rank that is done aborts in the C++ teardown
    ("terminate called without an active exception") after the final barrier. The weights
    and the result were written before that barrier, so the run is kept, and the abort is
    reported on the console and in the metrics rather than discarding the training.
    """
    ranks = [rank for rank, lines in rank_stderr_tails(run_dir / "logs").items() if lines]
    note = (f"a training process exited with code {returncode} while closing the process group, after every "
            f"rank had finished (stderr from ranks {ranks}); the result is complete")
    log.warning("pretrain: %s", note)
    if echo is not None:
        echo(f"warning: {note}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["metrics"]["teardown_error"] = note
    return result


def relay_worker_output(
    lines: Iterable[str], on_log: Callable[[StepLog], None] | None, echo: Callable[[str], None] | None
) -> list[str]:
    """Turn rank 0's step lines back into StepLogs for `on_log`, echo the rest; returns the last lines of the rest."""
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith(LOG_PREFIX):
            if on_log is not None:
                on_log(StepLog(**json.loads(line[len(LOG_PREFIX):])))
            continue
        tail.append(line)
        if echo is not None:
            echo(line)
    return list(tail)


def training_failure(run_dir: Path, nproc: int, returncode: int, tail: list[str]) -> DistributedTrainingError:
    """The error to raise: the first failing rank's own exception where one left it, else the exit
    code, each rank's last stderr lines (a rank killed by a signal leaves only those) and the launcher's output."""
    errors = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(run_dir.glob("error-rank*.json"))]
    if errors:
        first = errors[0]
        return DistributedTrainingError(
            f"distributed pretraining failed on rank {first['rank']}: {first['type']}: {first['message']}"
        )
    ranks = "".join(
        f"\n--- rank {rank} stderr (last lines) ---\n" + "\n".join(lines)
        for rank, lines in rank_stderr_tails(run_dir / "logs").items() if lines
    )
    return DistributedTrainingError(
        f"distributed pretraining ({nproc} processes) failed with exit code {returncode}{ranks}\n"
        "--- launcher output (last lines) ---\n" + "\n".join(tail)
    )


def rank_stderr_tails(log_dir: Path) -> dict[int, list[str]]:
    """The last stderr lines of each local rank, from torchrun's `<log_dir>/<run>/attempt_<n>/<rank>/stderr.log`."""
    tails: dict[int, list[str]] = {}
    for path in sorted(log_dir.glob("*/attempt_*/*/stderr.log")):
        if not path.parent.name.isdigit():
            continue
        with path.open(encoding="utf-8", errors="replace") as f:
            tails[int(path.parent.name)] = [line.rstrip("\n") for line in collections.deque(f, maxlen=_RANK_TAIL_LINES)]
    return tails
