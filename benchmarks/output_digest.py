"""Digests of a work directory's outputs, to show that a change of code left them byte-identical.

Every Parquet file under ``data/`` and ``tokens/`` and the tokenizer are hashed byte for byte;
``data/stats.json`` is hashed with its timings left out (they differ on every run).

    python benchmarks/output_digest.py runs/default > before.json
    ... change the code, run the stages again ...
    python benchmarks/output_digest.py runs/default | diff before.json -
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

_TIMING_KEYS = {"filter_seconds", "seconds"}
_HASHED = ("data/documents", "data/removed", "data/errors", "tokens/train", "tokens/val")


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in _TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def output_digests(workdir: Path) -> dict[str, str]:
    digests: dict[str, str] = {}
    for folder in _HASHED:
        for path in sorted((workdir / folder).glob("*.parquet")):
            digests[str(path.relative_to(workdir))] = _sha256(path.read_bytes())
    tokenizer = workdir / "tokenizer" / "tokenizer.json"
    if tokenizer.is_file():
        digests["tokenizer/tokenizer.json"] = _sha256(tokenizer.read_bytes())
    stats = workdir / "data" / "stats.json"
    if stats.is_file():
        cleaned = _without_timings(json.loads(stats.read_text(encoding="utf-8")))
        digests["data/stats.json (no timings)"] = _sha256(json.dumps(cleaned, sort_keys=True).encode())
    return digests


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python benchmarks/output_digest.py WORKDIR", file=sys.stderr)
        return 2
    print(json.dumps(output_digests(Path(argv[0])), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
