"""Content fingerprints of files, configs and code, so stages can tell what changed."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def file_record(path: Path, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Size, mtime and sha256 of a file; re-hashes only when size or mtime moved since `known`."""
    stat = path.stat()
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": known["sha256"]}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def list_files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """Files under `root` matching the glob patterns, sorted, hidden temporaries left out."""
    found: set[Path] = set()
    for pattern in patterns:
        found.update(p for p in root.glob(pattern) if p.is_file() and not p.name.startswith("."))
    return sorted(found)


def fingerprint_files(
    root: Path, patterns: Iterable[str], known: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """{relative path: file_record} for every file matching the patterns under root."""
    known = known or {}
    return {
        str(path.relative_to(root)): file_record(path, known.get(str(path.relative_to(root))))
        for path in list_files(root, patterns)
    }


def content_digest(records: Mapping[str, Mapping[str, Any]]) -> str:
    """One hash over the contents (not the timestamps) of a set of files."""
    return sha256_json({name: rec["sha256"] for name, rec in sorted(records.items())})


def source_digest(modules: Iterable[str]) -> str:
    """Hash of the source files of the given modules (packages: every .py file inside)."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        module = importlib.import_module(name)
        origin = Path(module.__file__ or "")
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(str(path.relative_to(origin.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def package_versions(names: Iterable[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
