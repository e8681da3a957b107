"""Content fingerprints of files, configs, code and libraries, so stages can tell what changed.

Code is what a stage's flow imports (found statically, see `imported_modules`); a library is
the installed distribution that owns the module file actually loaded (`module_owner`), not the
one whose name looks right: two distributions can install the same module.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
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


# ---------------------------------------------------------------- code: what a stage imports

# Where the project's packages live (llmforge, flows, tasks and model are siblings, editable
# install or not).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Stage code whose source changes a stage's results. llmforge/ (configs, fingerprinted on their
# own) and flows/ (orchestration) are left out.
STAGE_CODE_PACKAGES = ("tasks", "model")
# Packages whose imports are followed to find that code.
FOLLOWED_PACKAGES = ("flows", *STAGE_CODE_PACKAGES)


def module_file(name: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The source file of module `name` under `root` (a package's __init__.py); None if none."""
    base = root.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.parent / f"{base.name}.py"):
        if candidate.is_file():
            return candidate
    return None


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included (function and class bodies, branches, handlers),
    without walking into expressions, where no import statement can be."""
    for node in body:
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, name, None)
            if isinstance(children, list):
                for child in children:
                    if isinstance(child, ast.stmt):
                        yield from _statements([child])
                    elif isinstance(child, (ast.excepthandler, ast.match_case)):
                        yield from _statements(child.body)


def _imported_names(path: Path, module: str) -> frozenset[str]:
    """Every module name an `import` or `from ... import` anywhere in the file may load: the
    top level, function bodies, conditional branches alike. `from a import b` yields both
    "a" and "a.b" (b may be a submodule); names that are not modules are dropped later."""
    stat = path.stat()
    return _parse_imports(path, module, stat.st_size, stat.st_mtime_ns)


_PARSE_ATTEMPTS = 3


def _parse(path: Path) -> ast.Module:
    """ast.parse, tried again on CPython 3.11's spurious "AST constructor recursion depth
    mismatch" SystemError: the ast module keeps its depth counter per interpreter, so another
    thread building an AST at the same moment can trip the check (python/cpython#106905)."""
    source = path.read_bytes()
    for attempt in range(_PARSE_ATTEMPTS):
        try:
            return ast.parse(source, filename=str(path))
        except SystemError:
            if attempt == _PARSE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@lru_cache(maxsize=4096)
def _parse_imports(path: Path, module: str, size: int, mtime_ns: int) -> frozenset[str]:
    # size and mtime_ns are part of the key: an edited file is parsed again.
    tree = _parse(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(names)


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py too."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(
    roots: Iterable[str],
    root: Path = PROJECT_ROOT,
    collect: tuple[str, ...] = STAGE_CODE_PACKAGES,
    follow: tuple[str, ...] = FOLLOWED_PACKAGES,
) -> tuple[str, ...]:
    """The modules of the `collect` packages that `roots` import, directly or not, found from
    the source (nothing is imported). Imports are followed through the `follow` packages only.
    Imports made from strings at run time (importlib) are not seen."""
    seen: set[str] = set()
    pending = [name for root_name in roots for name in _with_parents(root_name)]
    while pending:
        name = pending.pop()
        if name in seen or name.split(".")[0] not in follow:
            continue
        path = module_file(name, root)
        if path is None:
            continue  # a function or class imported from a module, or a namespace package
        seen.add(name)
        for imported in _imported_names(path, name):
            pending.extend(_with_parents(imported))
    return tuple(sorted(name for name in seen if name.split(".")[0] in collect))


def source_digest(modules: Iterable[str], root: Path = PROJECT_ROOT) -> str:
    """Hash of the source files of the given modules (a package stands for its __init__.py)."""
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        path = module_file(name, root)
        if path is None:
            raise ModuleNotFoundError(f"no source file for module {name} under {root}")
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- libraries: who owns a module


@dataclass(frozen=True)
class Owner:
    """The installed distribution a module's file came from."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def _record_hash(path: Path) -> str:
    """A file's hash as RECORD files write it: sha256, urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()


def _listed_hash(record: str, relative: str) -> str | None:
    """The hash a RECORD's text lists for `relative` ("" when listed without one); None when it
    does not list that file. A text search, not a CSV parse: torch's RECORD has 20k lines."""
    text = "\n" + record
    start = text.find("\n" + relative + ",")
    if start < 0:
        return None
    end = text.find("\n", start + 1)
    hash_field = text[start + 1 : end if end >= 0 else None].rsplit(",", 2)[1]
    return hash_field.partition("=")[2] if hash_field.startswith("sha256=") else ""


def _claims(origins: Iterable[Path]) -> dict[Path, dict[str, tuple[str, str]]]:
    """{file: {distribution name: (version, hash its RECORD lists)}} for every installed
    distribution that lists the file; each RECORD is read once."""
    wanted = set(origins)
    found: dict[Path, dict[str, tuple[str, str]]] = {origin: {} for origin in wanted}
    for dist in importlib.metadata.distributions():
        base = Path(dist.locate_file("")).resolve()
        inside = [origin for origin in wanted if origin.is_relative_to(base)]
        record = dist.read_text("RECORD") if inside else None
        for origin in inside if record else ():
            listed = _listed_hash(record, origin.relative_to(base).as_posix())
            if listed is not None:
                found[origin].setdefault(dist.metadata["Name"], (dist.version, listed))
    return found


def _module_origin(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin).resolve()


def _owner(origin: Path, claims: dict[str, tuple[str, str]]) -> Owner | None:
    if len(claims) > 1:
        on_disk = _record_hash(origin)
        claims = {name: claim for name, claim in claims.items() if claim[1] == on_disk}
    if len(claims) != 1:
        return None
    (name, (version, _)), = claims.items()
    return Owner(name, version)


def module_owners(import_names: Iterable[str]) -> dict[str, Owner | None]:
    """For each module, the distribution that installed the file it is (or would be) loaded
    from. When several claim that file (fasttext-numpy2 and fasttext-predict both install
    fasttext/__init__.py; the last install wins), the one whose RECORD hash matches the file
    on disk. None when the module is missing or not from exactly one installed distribution."""
    origins = {name: _module_origin(name) for name in import_names}
    claims = _claims(origin for origin in origins.values() if origin is not None)
    return {name: _owner(origin, claims[origin]) if origin else None for name, origin in origins.items()}


def module_owner(import_name: str) -> Owner | None:
    return module_owners([import_name])[import_name]


def library_versions(import_names: Iterable[str]) -> dict[str, str]:
    """{import name: "distribution==version"} of the module each name actually loads."""
    versions = {}
    for name, owner in module_owners(import_names).items():
        if owner is not None:
            versions[name] = str(owner)
        elif importlib.util.find_spec(name) is None:
            versions[name] = "not installed"
        else:
            versions[name] = "not from one installed distribution"
    return versions


def altered_files(distribution: str) -> list[str]:
    """The files of an installed distribution that no longer match its RECORD (overwritten by
    another distribution's install, or deleted by its uninstall)."""
    dist = importlib.metadata.distribution(distribution)
    altered = []
    for entry in dist.files or ():
        if entry.hash is None or entry.hash.mode != "sha256":
            continue
        path = Path(dist.locate_file(entry))
        if not path.is_file() or _record_hash(path) != entry.hash.value:
            altered.append(str(entry))
    return altered
