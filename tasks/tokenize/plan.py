"""What a tokenize run does: the tokenizer is trained once and then frozen, and each run encodes
only the document shards it has not encoded yet (a new dataset version's), beside the token
shards it already wrote.

The tokenizer is trained again only when asked (`--force`, `tokenize.retrain: true`), when its
own settings change (vocabulary size, training caps), when its file is missing or was changed by
hand, or when no previous run is recorded. Every token id changes then, so every shard is encoded
again. Shards are also all encoded again when the encoding settings (validation fraction, row
groups) or the code and libraries that encode change. Otherwise a document shard is encoded when
no token shard of its name records its current content, and the token shards of document shards
that are gone (a rebuilt dataset) are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmforge.config import TokenizeConfig
from llmforge.fingerprint import sha256_file, sha256_json

_TRAINING_SETTINGS = ("vocab_size", "max_chars_per_doc", "max_train_chars")
_ENCODING_SETTINGS = ("val_fraction", "split", "row_group_size")


def training_settings(config: TokenizeConfig) -> str:
    """What the frozen tokenizer depends on. The tail split cuts every document's training text, so it
    counts there; with the default split the digest stays what it was before splits had a setting,
    so work directories made then keep their tokenizer (and their models' token ids)."""
    keys = _TRAINING_SETTINGS + (("val_fraction", "split") if config.split == "tail" else ())
    return sha256_json({key: getattr(config, key) for key in keys})


def encoding_settings(config: TokenizeConfig, inputs: dict[str, Any]) -> str:
    """The encoding settings with the code and library versions that encode."""
    return sha256_json({**{key: getattr(config, key) for key in _ENCODING_SETTINGS},
                        "code": inputs.get("code"), "libraries": inputs.get("libraries")})


@dataclass
class TokenizePlan:
    train: bool
    reasons: list[str]  # why the tokenizer is trained, or why every shard is encoded again
    encode: list[Path]  # document shards to encode
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)  # shard name -> its recorded entry
    dropped: list[str] = field(default_factory=list)  # token shards whose document shard is gone

    def describe(self) -> str:
        """One line for the log: what this run does and why."""
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        tokenizer = "training the tokenizer" if self.train else "tokenizer frozen"
        dropped = f", {len(self.dropped)} removed (their documents are gone)" if self.dropped else ""
        return (f"tokenize: {tokenizer}{why}; encoding {len(self.encode)} document shard(s), "
                f"{len(self.kept)} already encoded{dropped}")

    @property
    def everything(self) -> bool:
        """Every token shard is (re)written: the splits are replaced as a whole."""
        return not self.kept


def _retrain_reasons(
    config: TokenizeConfig, previous: dict[str, Any] | None, tokenizer_path: Path, force: bool
) -> list[str]:
    recorded = (previous or {}).get("counts", {}).get("tokenizer", {})
    if force:
        return ["--force"]
    if config.retrain:
        return ["tokenize.retrain is on"]
    if not tokenizer_path.is_file():
        return ["no tokenizer yet"]
    if not recorded:
        return ["no earlier tokenize run recorded"]
    if recorded.get("settings") != training_settings(config):
        return ["the tokenizer's training settings changed"]
    if recorded.get("sha256") != sha256_file(tokenizer_path):
        return [f"{tokenizer_path.name} differs from the tokenizer that encoded the shards"]
    return []


def plan_tokenize(
    document_shards: dict[str, Path],
    digests: dict[str, str],
    config: TokenizeConfig,
    inputs: dict[str, Any],
    previous: dict[str, Any] | None,
    tokenizer_path: Path,
    force: bool,
) -> TokenizePlan:
    """`document_shards`: {name: path} of the document shards now; `digests`: {name: sha256} of them;
    `previous`: the last tokenize manifest; `inputs`: what this run consumes (StageRun.inputs)."""
    reasons = _retrain_reasons(config, previous, tokenizer_path, force)
    if reasons:
        return TokenizePlan(True, reasons, list(document_shards.values()))
    counts = (previous or {}).get("counts", {})
    if counts.get("encoding") != encoding_settings(config, inputs):
        return TokenizePlan(False, ["the encoding settings, code or libraries changed"], list(document_shards.values()))
    encoded: dict[str, dict[str, Any]] = counts.get("encoded", {})
    kept = {name: entry for name, entry in encoded.items()
            if name in document_shards and entry.get("sha256") == digests[name]}
    encode = [path for name, path in document_shards.items() if name not in kept]
    dropped = sorted(set(encoded) - set(kept) - set(document_shards))
    return TokenizePlan(False, [], encode, kept, dropped)
