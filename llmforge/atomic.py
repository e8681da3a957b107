"""Atomic writes: a crash never leaves a half-written file that looks complete.

Everything is written to a temporary name in the destination's own directory
(same filesystem, so the final `os.replace` is atomic) and renamed last. A process
killed mid-write leaves its temporary names behind: `leftovers_beside` and
`leftovers_within` find them, for the next run of the stage that owns them to remove.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files and folders are created private (0600/0700); what we publish gets the
# permissions any other file the user writes would get.
_UMASK = _read_umask()


def give_default_permissions(path: Path) -> None:
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)


def temp_dir_beside(destination: Path) -> Path:
    """An empty folder next to `destination`, to be filled and then swapped in."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{destination.name}.new-", dir=destination.parent))
    give_default_permissions(path)
    return path


@contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; rename it into place only if the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        give_default_permissions(tmp)
        os.replace(tmp, destination)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(destination: str | Path, data: bytes) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)


def write_text(destination: str | Path, text: str) -> None:
    write_bytes(destination, text.encode("utf-8"))


def write_json(destination: str | Path, obj: Any) -> None:
    write_text(destination, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_parquet(destination: str | Path, table: pa.Table, row_group_size: int | None = None) -> None:
    with atomic_path(destination) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size, compression="zstd")


def write_with(destination: str | Path, writer: Callable[[Path], None]) -> None:
    """Let `writer` produce the file at a temporary path, then move it into place."""
    with atomic_path(destination) as tmp:
        writer(tmp)


def replace_directory(source: Path, destination: Path) -> None:
    """Swap a fully written directory into place (the old one is removed only after the new one is complete)."""
    destination = Path(destination)
    if destination.exists():
        trash = destination.with_name(f".{destination.name}.old-{os.getpid()}")
        os.replace(destination, trash)
        os.replace(source, destination)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)


# The temporary names of an interrupted write, after ".<destination name>.": "new-*" (temp_dir_beside),
# "old-*" (replace_directory's trash), "tmp-*" (model checkpoints' folders), "<random>.tmp" (atomic_path).
_LEFTOVER_REST = re.compile(r"(?:new-|old-|tmp-)[^./]*|[^./]+\.tmp")
_LEFTOVER_NAME = re.compile(r"\..+\.(?:" + _LEFTOVER_REST.pattern + ")")


def leftovers_beside(destination: Path) -> list[Path]:
    """Temporary files and folders of interrupted writes of `destination`, beside it."""
    destination = Path(destination)
    prefix = f".{destination.name}."
    if not destination.parent.is_dir():
        return []
    return sorted(
        path for path in destination.parent.iterdir()
        if path.name.startswith(prefix) and _LEFTOVER_REST.fullmatch(path.name[len(prefix):])
    )


def leftovers_within(directory: Path) -> list[Path]:
    """Temporary files and folders of interrupted writes anywhere under `directory`."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            if _LEFTOVER_NAME.fullmatch(name):
                found.append(Path(root) / name)
        dirs[:] = [name for name in dirs if not _LEFTOVER_NAME.fullmatch(name)]  # removed whole
    return sorted(found)


def remove_paths(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
