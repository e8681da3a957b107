"""Stage manifests: what went in, what came out, and whether a stage is up to date.

A stage is up to date when its manifest exists, its recorded outputs are still
on disk unchanged, and what it would consume now (config, the code its flow
imports, the distributions of the library modules it loads, the content of the
assets it reads, upstream runs and their outputs, extra inputs such as source
files) fingerprints the same as what it consumed last time. Each run gets a fresh
`run_id`; downstream stages record the run they consumed, so a forced upstream
re-run makes its dependents stale even when its output came out byte-identical.

A stage run holds its stage's lock on the work directory from start to end
(`llmforge.workdir_lock`), and removes what interrupted runs left beside and inside
its outputs before it looks at them.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Self

from llmforge import __version__, atomic
from llmforge.config import Section
from llmforge.fingerprint import content_digest, fingerprint_files, library_versions, sha256_json, source_digest
from llmforge.stages import STAGES, StageSpec
from llmforge.workdir_lock import StageLock

MANIFEST_VERSION = 1

log = logging.getLogger(__name__)


class IncompleteStage(RuntimeError):
    """A stage published what it could but part of its work failed; no manifest marks it up to date,
    so the next run does it again (reusing the parts that succeeded). The message is one line."""


def read_manifest(workdir: Path, stage: str) -> dict[str, Any] | None:
    path = Path(workdir) / STAGES[stage].manifest
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a corrupt manifest means "never ran", which forces a clean re-run


def _output_patterns(spec: StageSpec, workdir: Path) -> list[str]:
    patterns = []
    for rel in spec.outputs.values():
        path = workdir / rel
        patterns.append(f"{rel}/**/*" if path.is_dir() or not Path(rel).suffix else rel)
    return patterns


def fingerprint_outputs(
    spec: StageSpec, workdir: Path, known: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    records = fingerprint_files(workdir, _output_patterns(spec, workdir), known)
    records.pop(spec.manifest, None)
    return records


def _call_ref(spec: StageSpec, key: str, *args: Any) -> Any:
    """Call the stage's "module:function" named by extra[key]; None when it names none."""
    ref = spec.extra.get(key)
    if not ref:
        return None
    module_name, function = ref.split(":")
    return getattr(importlib.import_module(module_name), function)(*args)


def _extra_inputs(spec: StageSpec, workdir: Path, config: Section, previous: dict[str, Any] | None) -> Any:
    known = (previous or {}).get("inputs", {}).get("extra")
    return _call_ref(spec, "inputs_ref", workdir, config, known)


def _assets(spec: StageSpec, config: Section, previous: dict[str, Any] | None) -> dict[str, Any]:
    known = (previous or {}).get("inputs", {}).get("assets")
    return _call_ref(spec, "assets_ref", config, known) or {}


def expected_inputs(spec: StageSpec, workdir: Path, config: Section, previous: dict[str, Any] | None) -> dict:
    """Everything a run would consume now, fingerprinted."""
    upstream = {}
    for name in spec.upstream:
        manifest = read_manifest(workdir, name)
        upstream[name] = {
            "run_id": manifest.get("run_id") if manifest else None,
            "outputs": content_digest(fingerprint_outputs(STAGES[name], workdir, (manifest or {}).get("outputs")))
            if manifest
            else None,
        }
    return {
        "config_sha256": sha256_json(config.fingerprint_view()),
        "code": {"llmforge": __version__, "source_sha256": source_digest(spec.code_modules)},
        "libraries": library_versions(spec.libraries),
        "assets": _assets(spec, config, previous),
        "upstream": upstream,
        "extra": _extra_inputs(spec, workdir, config, previous),
    }


def _content_only(obj: Any) -> Any:
    """Drop modification times: touching a file without changing it is not a change."""
    if isinstance(obj, dict):
        return {k: _content_only(v) for k, v in obj.items() if k != "mtime_ns"}
    return obj


@dataclass
class Freshness:
    state: str  # "up to date" | "stale" | "missing"
    reasons: list[str] = field(default_factory=list)


def _diff_reasons(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    reasons = []
    if old.get("config_sha256") != new["config_sha256"]:
        reasons.append("config changed")
    if old.get("code") != new["code"]:
        reasons.append("code changed")
    for lib, version in new["libraries"].items():
        before = old.get("libraries", {}).get(lib)
        if before != version:
            reasons.append(f"library {lib} changed: {before or 'not recorded'} -> {version}")
    for name, now in new["assets"].items():
        before = old.get("assets", {}).get(name, {})
        if before.get("sha256") != now.get("sha256") or "missing" in now:
            reasons.append(f"asset {name} changed" if "missing" not in now else now["missing"])
    for name in sorted(set(old.get("assets", {})) - set(new["assets"])):
        reasons.append(f"asset {name} no longer read")
    for name, now in new["upstream"].items():
        before = old.get("upstream", {}).get(name, {})
        if now["run_id"] is None:
            reasons.append(f"upstream {name} has not run")
        elif before.get("run_id") != now["run_id"]:
            reasons.append(f"upstream {name} re-ran")
        elif before.get("outputs") != now["outputs"]:
            reasons.append(f"upstream {name} outputs changed")
    if sha256_json(_content_only(old.get("extra"))) != sha256_json(_content_only(new["extra"])):
        reasons.append("inputs changed")
    return reasons


def check_freshness(spec: StageSpec, workdir: Path, config: Section) -> tuple[Freshness, dict, dict | None]:
    """(freshness, the inputs a run would consume now, the previous manifest)."""
    previous = read_manifest(workdir, spec.name)
    inputs = expected_inputs(spec, workdir, config, previous)
    if previous is None or previous.get("manifest_version") != MANIFEST_VERSION:
        return Freshness("missing", ["never ran here"]), inputs, previous
    reasons = _diff_reasons(previous.get("inputs", {}), inputs)
    recorded = previous.get("outputs", {})
    current = fingerprint_outputs(spec, workdir, recorded)
    missing = sorted(set(recorded) - set(current))
    changed = sorted(p for p in recorded if p in current and current[p]["sha256"] != recorded[p]["sha256"])
    added = sorted(set(current) - set(recorded))
    if missing:
        reasons.append(f"{len(missing)} output file(s) missing, e.g. {missing[0]}")
    if changed:
        reasons.append(f"{len(changed)} output file(s) modified, e.g. {changed[0]}")
    if added:
        reasons.append(f"{len(added)} unexpected output file(s), e.g. {added[0]}")
    return Freshness("stale" if reasons else "up to date", reasons), inputs, previous


def outcome(spec: StageSpec, workdir: Path, status: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The result object a stage returns (and `--json` prints)."""
    return {
        "stage": spec.name,
        "status": status,
        "outputs": {name: str(workdir / rel) for name, rel in spec.outputs.items()},
        "metrics": manifest.get("metrics", {}),
        "seconds": (manifest.get("timings") or {}).get("total_s"),
    }


def stage_leftovers(spec: StageSpec, workdir: Path) -> list[Path]:
    """Temporary files and folders that interrupted writes of the stage's outputs left behind, and
    what the stage's own `leftovers_ref` names (e.g. the files of a dataset version never committed)."""
    found: list[Path] = list(_call_ref(spec, "leftovers_ref", workdir) or [])
    for rel in (*spec.outputs.values(), spec.manifest):
        path = workdir / rel
        found += atomic.leftovers_beside(path)
        if path.is_dir():
            found += atomic.leftovers_within(path)
    return found


class StageRun:
    """One invocation of a stage: takes the stage's lock on the work directory, decides whether
    to skip, and records the manifest when done. The lock is released by `finish`, `skipped`,
    `release` or the end of a `with` block, and by the kernel when the process ends."""

    def __init__(self, name: str, workdir: str | Path, config: Section, force: bool = False):
        self.spec = STAGES[name]
        self.workdir = Path(workdir)
        self.config = config
        self.lock = StageLock.acquire(self.workdir, name)
        try:
            self.started = time.perf_counter()
            self.started_at = datetime.now(timezone.utc).isoformat()
            self._remove_leftovers()
            self.freshness, self.inputs, self.previous = check_freshness(self.spec, self.workdir, config)
        except BaseException:
            self.lock.release()
            raise
        self.force = force
        self.timings: dict[str, float] = {}

    def _remove_leftovers(self) -> None:
        # Under the lock, so they are an interrupted run's, never a live one's.
        leftovers = stage_leftovers(self.spec, self.workdir)
        if leftovers:
            names = ", ".join(str(p.relative_to(self.workdir)) for p in leftovers[:3])
            more = f" and {len(leftovers) - 3} more" if len(leftovers) > 3 else ""
            log.warning("%s: removing what an interrupted run left behind: %s%s", self.spec.name, names, more)
            atomic.remove_paths(leftovers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        self.lock.release()

    def invalidate(self) -> None:
        """Remove the previous manifest: the outputs are about to change, and it describes the old ones."""
        (self.workdir / self.spec.manifest).unlink(missing_ok=True)

    @property
    def up_to_date(self) -> bool:
        return not self.force and self.freshness.state == "up to date"

    def path(self, output: str) -> Path:
        return self.workdir / self.spec.outputs[output]

    def skipped(self) -> dict[str, Any]:
        self.release()
        return outcome(self.spec, self.workdir, "skipped", self.previous or {})

    def time(self, step: str) -> "_Timer":
        return _Timer(self.timings, step)

    def finish(
        self, counts: dict[str, Any], metrics: dict[str, Any], execution: dict[str, Any] | None = None,
        new_outputs: bool = True,
    ) -> dict[str, Any]:
        """Write the manifest. ``execution``: how the stage ran where that leaves the outputs as
        they are (e.g. whether an output-identical accelerator was used); recorded, never compared.
        ``new_outputs=False``: the run only found that its outputs already cover its inputs (a data
        run with no new files); the previous run id stays, so nothing downstream goes stale, and
        the outcome says "skipped"."""
        known = (self.previous or {}).get("outputs")
        keep_id = not new_outputs and self.previous is not None and self.previous.get("run_id")
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "stage": self.spec.name,
            "run_id": self.previous["run_id"] if keep_id else uuid.uuid4().hex,
            "started_at": self.started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "forced": self.force,
            "reasons": self.freshness.reasons,
            "config": self.config.model_dump(mode="json"),
            "inputs": self.inputs,
            "outputs": fingerprint_outputs(self.spec, self.workdir, known),
            "counts": counts,
            "metrics": metrics,
            "execution": execution or {},
            "timings": {**self.timings, "total_s": round(time.perf_counter() - self.started, 3)},
            "host": {"python": platform.python_version(), "machine": platform.machine()},
        }
        atomic.write_json(self.workdir / self.spec.manifest, manifest)
        self.release()
        return outcome(self.spec, self.workdir, "ran" if new_outputs else "skipped", manifest)


class _Timer:
    def __init__(self, sink: dict[str, float], step: str):
        self.sink, self.step = sink, step

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.sink[f"{self.step}_s"] = round(self.sink.get(f"{self.step}_s", 0.0) + time.perf_counter() - self.start, 3)
