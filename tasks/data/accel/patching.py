"""Small helpers shared by the parts that stand in for stock code: source hashes and rebinding."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def source_sha256(function: Any) -> str | None:
    """sha256 of a function's source text, None when the source cannot be read."""
    try:
        return sha256(inspect.getsource(function))
    except (OSError, TypeError):
        return None


def rebind(module_names: tuple[str, ...], attribute: str, current: Any, replacement: Any) -> None:
    """Point ``attribute`` at ``replacement`` in each named module where it is ``current``:
    trafilatura's modules import these functions by name and call their own binding."""
    for name in module_names:
        module = importlib.import_module(name)
        if getattr(module, attribute, None) is current:
            setattr(module, attribute, replacement)
