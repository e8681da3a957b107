"""Checkpoints as a directory: model.safetensors (weights) + state.json (config and run state).

A training state (`save_training_state`) adds optimizer.pt and rng.pt so a run
can continue bitwise-exactly.

safetensors rather than torch.save: loading it cannot execute code, and other
tools can read the weights without this project's classes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.gpt import GPT, config_from_dict, config_to_dict

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.pt"
BEST_FILE = "best.safetensors"  # a training state's best weights by validation, when the run keeps them


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def give_default_permissions(path: Path) -> None:
    """mkstemp/mkdtemp create private files and folders; what we publish is as readable as any user file."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)


def _read_state_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt {what} {path}: {exc}") from exc


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


def _swap_in(directory: Path, write: Callable[[Path], None]) -> None:
    """Have `write` fill a fresh temp directory beside `directory`, then rename it into place.

    POSIX cannot rename onto a non-empty directory, so an existing one is first
    renamed aside and deleted only afterwards; a crash in between leaves it as
    `.<name>.old-*` next to the target, not lost.
    """
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
    give_default_permissions(tmp)
    old: Path | None = None
    try:
        write(tmp)
        for path in tmp.iterdir():
            give_default_permissions(path)
            _fsync_file(path)
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


def recover_interrupted_save(directory: Path) -> list[str]:
    """Tidy what a kill in the middle of `_swap_in` left beside `directory`; returns what was done.

    A kill between renaming the previous directory aside and renaming the new one into
    place leaves no `directory`, only `.<name>.old-*/<name>`: that previous, complete
    directory is put back (the unpublished new one may be unfinished, so it is not
    trusted). Temp directories of interrupted writes are removed. Only for a directory
    that no other process is writing at the same time.
    """
    directory = Path(directory)
    parent, name = directory.parent, directory.name
    if not parent.is_dir():
        return []
    done: list[str] = []
    olds = sorted((p for p in parent.glob(f".{name}.old-*") if (p / name / STATE_FILE).is_file()),
                  key=lambda p: (p / name / STATE_FILE).stat().st_mtime)
    if olds and not directory.exists():
        os.replace(olds[-1] / name, directory)
        _fsync_dir(parent)
        done.append(f"put back {directory} from {olds[-1].name}, left by a save that was interrupted")
    for leftover in sorted([*parent.glob(f".{name}.old-*"), *parent.glob(f".{name}.tmp-*")]):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name}, left by a save that was interrupted")
    return done


def _write_weights(path: Path, model: GPT) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def save_checkpoint(directory: Path, model: GPT, state: dict[str, Any]) -> None:
    """Write the checkpoint so that `directory` is either the old or the new one, never half-written."""
    directory = Path(directory)
    full_state = {**state, "model_config": config_to_dict(model.config)}
    # Serialise before touching the disk so a non-JSON state fails with nothing written.
    state_text = json.dumps(full_state, indent=2, sort_keys=True)

    def write(tmp: Path) -> None:
        _write_weights(tmp / WEIGHTS_FILE, model)
        (tmp / STATE_FILE).write_text(state_text, encoding="utf-8")

    _swap_in(directory, write)


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU, and every CUDA device once CUDA is in use).

    Training itself draws no random numbers today, but saving them means a future
    dropout or sampling step still resumes exactly.
    """
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(
    directory: Path, model: GPT, optimizer: torch.optim.Optimizer, state: dict[str, Any],
    best_weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Everything needed to continue a run exactly, swapped in as one directory.

    model.safetensors + state.json as in `save_checkpoint` (so `load_checkpoint`
    can read it too), plus optimizer.pt (AdamW moments) and rng.pt. The .pt files
    hold only tensors and plain containers, so they load with weights_only=True.
    `best_weights` (CPU tensors), when the run keeps its best weights by validation,
    go to best.safetensors (`load_best_weights`).
    """
    directory = Path(directory)
    full_state = {**state, "model_config": config_to_dict(model.config)}
    state_text = json.dumps(full_state, indent=2, sort_keys=True)
    # Copy to CPU before writing: the file must not depend on the training device.
    optim_state = _to_cpu(optimizer.state_dict())
    rng = rng_state()

    def write(tmp: Path) -> None:
        _write_weights(tmp / WEIGHTS_FILE, model)
        torch.save(optim_state, tmp / OPTIMIZER_FILE)
        torch.save(rng, tmp / RNG_FILE)
        if best_weights is not None:
            save_file(best_weights, str(tmp / BEST_FILE), metadata={"format": "pt"})
        # state.json last: its presence marks a complete state even to a reader of the temp dir.
        (tmp / STATE_FILE).write_text(state_text, encoding="utf-8")

    _swap_in(directory, write)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj


def read_training_state(directory: Path) -> dict[str, Any]:
    """Only state.json of a training state, so a caller can check it before loading any tensors."""
    directory = Path(directory)
    state_path = directory / STATE_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"no saved training state to resume from: {directory} does not exist")
    for name in (WEIGHTS_FILE, OPTIMIZER_FILE, RNG_FILE, STATE_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"training state {directory} is incomplete: missing {directory / name}")
    state = _read_state_json(state_path, "training state")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"training state {state_path} has no integer 'step'")
    return state


def load_best_weights(directory: Path) -> dict[str, torch.Tensor] | None:
    """The best weights a training state kept (CPU tensors); None when it kept none."""
    path = Path(directory) / BEST_FILE
    if not path.is_file():
        return None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise ValueError(f"corrupt best weights {path}: {exc}") from exc


def load_training_state(
    directory: Path, model: GPT, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Load weights, optimizer moments and RNG states in place; returns state.json's contents."""
    directory = Path(directory)
    state = read_training_state(directory)
    weights_path = directory / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise ValueError(f"corrupt training weights {weights_path}: {exc}") from exc
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"weights in {weights_path} do not match the model: {exc}") from exc
    loaded: dict[str, Any] = {}
    for name in (OPTIMIZER_FILE, RNG_FILE):
        path = directory / name
        try:
            loaded[name] = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, pickle refused by weights_only, ...
            raise ValueError(f"corrupt training state file {path}: {exc}") from exc
    try:
        # load_state_dict moves the moments onto each parameter's device.
        optimizer.load_state_dict(loaded[OPTIMIZER_FILE])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"optimizer state {directory / OPTIMIZER_FILE} does not match the model: {exc}") from exc
    try:
        set_rng_state(loaded[RNG_FILE])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"corrupt RNG state {directory / RNG_FILE}: {exc}") from exc
    return state


def load_checkpoint(directory: Path, device: str | torch.device = "cpu") -> tuple[GPT, dict[str, Any]]:
    """Rebuild the model from a checkpoint directory; returns (model in eval mode, state dict)."""
    directory = Path(directory)
    weights_path, state_path = directory / WEIGHTS_FILE, directory / STATE_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    for path in (weights_path, state_path):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint is missing {path}")

    state = _read_state_json(state_path, "checkpoint state")
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


def load_checkpoint_for(
    directory: Path, vocab_size: int, vocab_source: str, device: str | torch.device = "cpu"
) -> tuple[GPT, dict[str, Any]]:
    """load_checkpoint, refusing weights trained with another vocabulary than the tokenizer
    about to be used with them (``vocab_source`` names it in the error)."""
    model, state = load_checkpoint(directory, device)
    if model.config.vocab_size != vocab_size:
        raise ValueError(
            f"checkpoint {directory} was trained with a vocabulary of {model.config.vocab_size} tokens, "
            f"the tokenizer {vocab_source} has {vocab_size}"
        )
    return model, state
