"""Checkpoints as a directory: model.safetensors (weights) + state.json (config and run state).

safetensors rather than torch.save: loading it cannot execute code, and other
tools can read the weights without this project's classes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.gpt import GPT, config_from_dict, config_to_dict

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.json"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes the renames themselves durable; not possible on every OS/filesystem.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(directory: Path, model: GPT, state: dict[str, Any]) -> None:
    """Write the checkpoint so that `directory` is either the old or the new one, never half-written.

    Both files go into a fresh temp directory beside `directory`, which is then
    renamed into place. POSIX cannot rename onto a non-empty directory, so an
    existing checkpoint is first renamed aside and deleted only afterwards; a
    crash in between leaves it as `.<name>.old-*` next to the target, not lost.
    """
    directory = Path(directory)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    full_state = {**state, "model_config": config_to_dict(model.config)}
    # Serialise before touching the disk so a non-JSON state fails with nothing written.
    state_text = json.dumps(full_state, indent=2, sort_keys=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
    old: Path | None = None
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / STATE_FILE).write_text(state_text, encoding="utf-8")
        _fsync_file(tmp / WEIGHTS_FILE)
        _fsync_file(tmp / STATE_FILE)
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=parent))
            os.replace(directory, old / directory.name)
        os.replace(tmp, directory)
        _fsync_dir(parent)
    except BaseException:
        if old is not None and not directory.exists():
            os.replace(old / directory.name, directory)  # put the previous checkpoint back
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path, device: str | torch.device = "cpu") -> tuple[GPT, dict[str, Any]]:
    """Rebuild the model from a checkpoint directory; returns (model in eval mode, state dict)."""
    directory = Path(directory)
    weights_path, state_path = directory / WEIGHTS_FILE, directory / STATE_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    for path in (weights_path, state_path):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint is missing {path}")

    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt checkpoint state {state_path}: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("model_config"), dict):
        raise ValueError(f"checkpoint state {state_path} has no 'model_config' object")
    try:
        config = config_from_dict(state["model_config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid model_config in {state_path}: {exc}") from exc

    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise ValueError(f"corrupt checkpoint weights {weights_path}: {exc}") from exc
    model = GPT(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"weights in {weights_path} do not match its model_config: {exc}") from exc
    model.to(device)
    model.eval()
    return model, state
