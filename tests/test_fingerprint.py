"""Stage fingerprints from what is imported: the code a flow reaches, the distribution a module came from."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from llmforge.fingerprint import altered_files, imported_modules, library_versions, module_owner, source_digest
from llmforge.stages import STAGES


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project: a flow, stage code reached at module level, inside a function, relatively."""
    _write(tmp_path, {
        "flows/__init__.py": "",
        "flows/common.py": "from tasks.progress import bar\n",
        "flows/stage.py": "from flows.common import helper\nfrom llmforge.config import X\nfrom tasks.toy import run\n",
        "llmforge/__init__.py": "",
        "llmforge/config.py": "from tasks.unrelated import y\n",
        "tasks/__init__.py": "",
        "tasks/progress.py": "",
        "tasks/unrelated.py": "",
        "tasks/toy/__init__.py": "",
        "tasks/toy/run.py": "",
        "tasks/toy/helpers.py": (
            "import json\n\n"
            "def later():\n"
            "    from .deep import only_here  # reached only through this function-local import\n"
            "    return only_here\n"
        ),
        "tasks/toy/deep.py": "only_here = 1\n",
        "tasks/toy/never.py": "",
        "model/__init__.py": "from model.gpt import GPT\n",
        "model/gpt.py": "class GPT: ...\n",
    })
    (tmp_path / "tasks/toy/__init__.py").write_text("from tasks.toy import helpers\nimport model\n", encoding="utf-8")
    return tmp_path


def test_the_closure_follows_flows_and_every_kind_of_import_but_keeps_only_stage_code(project: Path) -> None:
    modules = imported_modules(["flows.stage"], root=project)
    assert modules == (
        "model", "model.gpt", "tasks", "tasks.progress", "tasks.toy", "tasks.toy.deep", "tasks.toy.helpers",
        "tasks.toy.run",
    )
    # Not followed into llmforge/ (configs are fingerprinted on their own), not reached: not in.
    assert "tasks.unrelated" not in modules and "tasks.toy.never" not in modules


def test_editing_a_module_reached_only_through_a_function_local_import_changes_the_digest(project: Path) -> None:
    before = source_digest(imported_modules(["flows.stage"], root=project), root=project)
    (project / "tasks/toy/never.py").write_text("changed = True\n", encoding="utf-8")
    assert source_digest(imported_modules(["flows.stage"], root=project), root=project) == before
    (project / "tasks/toy/deep.py").write_text("only_here = 2\n", encoding="utf-8")
    assert source_digest(imported_modules(["flows.stage"], root=project), root=project) != before


def test_a_new_import_is_seen_at_once(project: Path) -> None:
    (project / "tasks/toy/run.py").write_text("def go():\n    import tasks.toy.never\n", encoding="utf-8")
    assert "tasks.toy.never" in imported_modules(["flows.stage"], root=project)


def test_the_data_stage_hashes_what_its_flow_imports_and_no_config() -> None:
    modules = STAGES["data"].code_modules
    # The trafilatura stand-ins, imported by the accelerator, were missing from the hand-kept list.
    assert "tasks.data.accel.stand_ins" in modules
    # Reached only through imports inside functions (the per-shard pipeline builds them lazily).
    assert {"tasks.data.filters.url", "tasks.data.langid", "tasks.data.assets"} <= set(modules)
    assert not any(m.startswith(("llmforge", "flows")) for m in modules)
    assert "llmforge.config" not in modules
    assert not any(m.startswith(("tasks.train", "tasks.tokenize", "tasks.posttrain", "tasks.chat")) for m in modules)


def test_every_stage_reaches_its_own_code() -> None:
    expected = {
        "tokenize": "tasks.tokenize.stage",
        "pretrain": "tasks.train.worker",  # the torchrun worker, imported by the launcher
        "evaluate": "tasks.train.evaluate",
        "sft": "tasks.posttrain.sft",
        "rl": "tasks.posttrain.rl",
    }
    for stage, module in expected.items():
        modules = STAGES[stage].code_modules
        assert module in modules and "model.tokenizer" in modules, stage
        assert ("model.gpt" in modules) == (stage != "tokenize"), stage  # the tokenizer needs no model
        assert "llmforge.config" not in modules, stage


def test_fasttext_is_the_module_of_fasttext_numpy2_here() -> None:
    """Both fasttext-numpy2 and fasttext-predict claim fasttext/__init__.py; the RECORD hash decides."""
    claimants = {d.metadata["Name"] for d in importlib.metadata.distributions() if any(
        str(f) == "fasttext/__init__.py" for f in (d.files or ()))}
    owner = module_owner("fasttext")
    assert owner is not None and owner.name == "fasttext-numpy2", (owner, claimants)
    assert owner.version == importlib.metadata.version("fasttext-numpy2")
    assert altered_files("fasttext-numpy2") == []
    if "fasttext-predict" in claimants:  # overwritten by fasttext-numpy2's install, as setup.sh makes sure
        assert "fasttext/__init__.py" in altered_files("fasttext-predict")


def test_library_versions_name_the_owning_distribution() -> None:
    versions = library_versions(["magic", "cchardet", "trafilatura", "llmforge_no_such_module"])
    assert versions["magic"] == f"python-magic=={importlib.metadata.version('python-magic')}"
    assert versions["cchardet"] == f"faust-cchardet=={importlib.metadata.version('faust-cchardet')}"
    assert versions["trafilatura"].startswith("trafilatura==")
    assert versions["llmforge_no_such_module"] == "not installed"
    assert STAGES["data"].libraries and all("-" not in name for name in STAGES["data"].libraries)  # import names


def test_a_spurious_ast_system_error_is_tried_again(tmp_path, monkeypatch) -> None:
    """CPython 3.11's ast module can raise "AST constructor recursion depth mismatch" when another
    thread builds an AST at the same moment; one such failure must not fail a stage."""
    import ast

    from llmforge import fingerprint

    source = tmp_path / "mod.py"
    source.write_text("import os\n")
    real_parse, calls = ast.parse, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=78, after=77)")
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(fingerprint.ast, "parse", flaky)
    assert isinstance(fingerprint._parse(source), ast.Module)
    assert len(calls) == 2
