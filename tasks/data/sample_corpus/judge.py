"""The data stage's own text filters, run as its steps, deciding which texts the sample may use.

A page's label is the first step that must remove it, so the generator asks the real
steps (``tasks.data.recipe.text_filter_steps`` through ``tasks.data.steps``) with the
recipe's thresholds (``DataConfig()``). Text meant to pass must pass with a margin:
the generator judges the page's prose, while the stage judges what extraction makes of
the page (the title may be dropped, paragraphs joined differently), so good prose has
to pass the same filters with every limit tightened (``margin_configs``).
"""

from __future__ import annotations

from functools import cache

from llmforge.config import (
    C4QualityConfig,
    DataConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from tasks.data.filters import build_text_filters
from tasks.data.recipe import text_filter_steps
from tasks.data.steps import Step, run_text

# Upper limits on ratios are scaled by this for text that must pass with a margin.
MARGIN = 0.7
# ... and the lower limits raised to these.
MIN_PAGE_WORDS = 150
_MIN_AVERAGE_WORD_LENGTH, _MAX_AVERAGE_WORD_LENGTH = 3.5, 9.0
_MIN_ALPHA_WORDS_RATIO = 0.84
_MIN_STOP_WORDS = 4
_MIN_C4_SENTENCES = 8
_MIN_LINES_WITH_END_PUNCTUATION = 0.3


def _tight_repetition(cfg: GopherRepetitionConfig) -> GopherRepetitionConfig:
    fractions = ("dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac")
    return cfg.model_copy(update={
        **{name: getattr(cfg, name) * MARGIN for name in fractions},
        "top_n_grams": [(n, limit * MARGIN) for n, limit in cfg.top_n_grams],
        "dup_n_grams": [(n, limit * MARGIN) for n, limit in cfg.dup_n_grams],
    })


def _tight_quality(cfg: GopherQualityConfig) -> GopherQualityConfig:
    ratios = ("max_symbol_word_ratio", "max_bullet_lines_ratio", "max_ellipsis_lines_ratio")
    return cfg.model_copy(update={
        **{name: getattr(cfg, name) * MARGIN for name in ratios},
        "min_doc_words": MIN_PAGE_WORDS,
        "min_avg_word_length": _MIN_AVERAGE_WORD_LENGTH,
        "max_avg_word_length": _MAX_AVERAGE_WORD_LENGTH,
        "max_non_alpha_words_ratio": _MIN_ALPHA_WORDS_RATIO,
        "min_stop_words": _MIN_STOP_WORDS,
    })


def _tight_fineweb(cfg: FineWebQualityConfig) -> FineWebQualityConfig:
    ratios = ("short_line_thr", "char_duplicates_ratio", "new_line_ratio")
    return cfg.model_copy(update={
        **{name: getattr(cfg, name) * MARGIN for name in ratios},
        "line_punct_thr": _MIN_LINES_WITH_END_PUNCTUATION,
    })


def margin_configs(
    config: DataConfig,
) -> tuple[GopherRepetitionConfig, GopherQualityConfig, C4QualityConfig, FineWebQualityConfig]:
    """The text filters' settings with every limit tightened, for text that must pass clearly."""
    return (
        _tight_repetition(config.gopher_repetition),
        _tight_quality(config.gopher_quality),
        config.c4_quality.model_copy(update={"min_num_sentences": _MIN_C4_SENTENCES}),
        _tight_fineweb(config.fineweb_quality),
    )


@cache
def _steps(with_margin: bool) -> tuple[Step, ...]:
    config = DataConfig()
    configs = margin_configs(config) if with_margin else (
        config.gopher_repetition, config.gopher_quality, config.c4_quality, config.fineweb_quality
    )
    return tuple(text_filter_steps(build_text_filters(*configs)))


def first_removal(text: str) -> str | None:
    """The text filter step that removes `text` in the data stage, None if every one keeps it."""
    return run_text(_steps(False), text).step


def passes_with_margin(text: str) -> bool:
    """Does `text` pass every text filter even with tightened limits?"""
    return run_text(_steps(True), text).kept


def fails_first(text: str, step: str) -> bool:
    """Is `step` the first text filter that removes `text`, and does the text clear the Gopher
    repetition filter before it with a margin? (Short texts trip the top-n-gram limits
    easily: a 3-gram said twice is enough.)"""
    if first_removal(text) != step:
        return False
    repetition = [s for s in _steps(True) if s.name == "gopher_repetition"]
    return step == "gopher_repetition" or run_text(repetition, text).kept
