"""The pipeline's stages, declared in one place.

A stage is named here with its upstream stages, the outputs it owns in the work
directory, the libraries whose versions change its results, and the Prefect flow
that runs it. Its code is not listed: it is every tasks/ and model/ module the
flow imports, found from the source (`StageSpec.code_modules`). Everything else
(status, skipping, forcing dependents, the CLI, the whole-pipeline flow) is
derived from this table, so a new stage plugs in by adding one entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from llmforge import config as cfg
from llmforge.fingerprint import imported_modules


@dataclass(frozen=True)
class StageSpec:
    name: str
    help: str
    config_class: type[BaseModel]
    # "module:function" of the Prefect flow; imported lazily so the CLI starts fast.
    flow_ref: str
    upstream: tuple[str, ...]
    # Named outputs, relative to the work directory (a directory stands for every file inside it).
    outputs: dict[str, str]
    manifest: str
    # Import names of the libraries whose versions change the stage's results; the manifest
    # records the distribution that owns each module actually loaded (two can ship the same one).
    libraries: tuple[str, ...] = ()
    # inputs_ref: "module:function" fingerprinting extra inputs (source files, ...);
    # assets_ref: "module:function" describing the data files the stage reads, by content digest;
    # leftovers_ref: "module:function" listing what interrupted runs left besides temporary files.
    extra: dict[str, Any] = field(default_factory=dict)

    def load_flow(self) -> Callable[..., Any]:
        module_name, function = self.flow_ref.split(":")
        return getattr(importlib.import_module(module_name), function)

    @property
    def code_modules(self) -> tuple[str, ...]:
        """The tasks/ and model/ modules the stage's flow (and its inputs_ref/assets_ref
        functions) import, directly or not, at module level or inside functions. Read from
        the source on every call, so an edit that adds an import counts at once."""
        refs = (self.flow_ref, *(self.extra[key] for key in ("inputs_ref", "assets_ref", "leftovers_ref") if key in self.extra))
        return imported_modules(ref.split(":")[0] for ref in refs)


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            name="data",
            help="WARC records → extracted, filtered, deduplicated documents",
            config_class=cfg.DataConfig,
            flow_ref="flows.data:data_flow",
            upstream=(),
            outputs={
                "documents": "data/documents",
                "removed": "data/removed",
                "errors": "data/errors",
                "dedup_index": "data/dedup_index",
                "versions": "data/versions",
                "stats": "data/stats.json",
            },
            manifest="data/manifest.json",
            # Extraction (trafilatura and what it parses and cleans with), WARC reading, MIME and charset
            # sniffing, language ID, dedup shingles, Parquet output. The URL lists, public-suffix list and
            # language-ID model are assets, recorded by content (tasks/data/assets.py).
            libraries=("trafilatura", "justext", "htmldate", "courlan", "lxml", "lxml_html_clean", "warcio", "magic",
                       "cchardet", "fasttext", "regex", "pyarrow"),
            extra={"inputs_ref": "tasks.data.sources:describe_source_inputs",
                   "assets_ref": "tasks.data.assets:describe_data_assets",
                   "leftovers_ref": "tasks.data.versions:uncommitted_files"},
        ),
        StageSpec(
            name="tokenize",
            help="documents → byte-level BPE tokenizer → train/val token shards",
            config_class=cfg.TokenizeConfig,
            flow_ref="flows.tokenization:tokenize_flow",
            upstream=("data",),
            outputs={"tokenizer": "tokenizer/tokenizer.json", "train": "tokens/train", "val": "tokens/val",
                     "report": "reports/tokenizer.md"},
            manifest="tokens/manifest.json",
            libraries=("tokenizers", "tiktoken", "pyarrow"),
        ),
        StageSpec(
            name="pretrain",
            help="token shards → base GPT checkpoint",
            config_class=cfg.PretrainConfig,
            flow_ref="flows.pretrain:pretrain_flow",
            upstream=("tokenize",),
            outputs={"checkpoint": "checkpoints/base", "report": "reports/training.md",
                     "loss_curve": "reports/loss_curve.png"},
            manifest="checkpoints/base/manifest.json",
            libraries=("torch",),
        ),
        StageSpec(
            name="evaluate",
            help="base checkpoint → validation loss, bits per byte, samples",
            config_class=cfg.EvaluateConfig,
            flow_ref="flows.evaluate:evaluate_flow",
            upstream=("pretrain", "tokenize"),
            outputs={"report": "reports/evaluation/report.md", "metrics": "reports/evaluation/metrics.json"},
            manifest="reports/evaluation/manifest.json",
            libraries=("torch",),
            extra={"inputs_ref": "tasks.train.evaluate:describe_evaluate_inputs"},
        ),
        StageSpec(
            name="sft",
            help="base checkpoint → chat model (supervised fine-tuning on conversations)",
            config_class=cfg.SftConfig,
            flow_ref="flows.sft:sft_flow",
            upstream=("pretrain", "tokenize"),
            outputs={"checkpoint": "checkpoints/sft", "report": "reports/sft.md"},
            manifest="checkpoints/sft/manifest.json",
            libraries=("torch", "datasets"),
            extra={"inputs_ref": "tasks.posttrain.sft:describe_sft_inputs"},
        ),
        StageSpec(
            name="rl",
            help="chat model → better problem solver (GRPO on problems with checkable answers)",
            config_class=cfg.RlConfig,
            flow_ref="flows.rl:rl_flow",
            upstream=("sft", "tokenize"),
            outputs={"checkpoint": "checkpoints/rl", "report": "reports/rl.md"},
            manifest="checkpoints/rl/manifest.json",
            libraries=("torch",),
        ),
    )
}

STAGE_ORDER: tuple[str, ...] = tuple(STAGES)


def downstream_of(name: str) -> list[str]:
    """Stages that depend on `name`, directly or not, in pipeline order."""
    affected = {name}
    for stage in STAGE_ORDER:
        if any(up in affected for up in STAGES[stage].upstream):
            affected.add(stage)
    return [s for s in STAGE_ORDER if s in affected and s != name]
