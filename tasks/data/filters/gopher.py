"""Gopher's repetition and quality rules (Rae et al. 2021, table A1), as FineWeb applies them.

The definitions follow datatrove's GopherRepetitionFilter and GopherQualityFilter
exactly (which split, which denominator, strict or non-strict comparison, which rule
first); only the word tokens come from the shared ``TextView`` (spaCy's English
tokenisation, see ``text_view``) instead of a fresh tokeniser call per filter. A threshold of 0 (or an empty n-gram list) switches its rule
off, as ``None``/0 does in datatrove.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from itertools import filterfalse
from operator import itemgetter

import numpy as np

from llmforge.config import GopherQualityConfig, GopherRepetitionConfig
from tasks.data.filters.text_view import TextView, has_alpha

# ----------------------------------------------------------------- repetition


def find_duplicates(items: Iterable[str]) -> tuple[int, int]:
    """(number of items seen before, their total characters); first copies don't count."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _exact_top_ngram_chars(view: TextView, n: int) -> int:
    joined, starts = view.spaced_ngram_text
    counts = Counter([joined[starts[i] : starts[i + n] - 1] for i in range(len(view.words) - n + 1)])
    gram, count = max(counts.items(), key=itemgetter(1))  # max keeps the first of equals
    return len(gram) * count


def top_ngram_chars(view: TextView, n: int) -> int:
    """Characters covered by the most frequent space-joined word n-gram: len * count.

    Ties go to the n-gram seen first, as Counter.most_common(1) does in datatrove.
    Fast path: count n-gram hashes; equal strings share a hash, so if every hash group
    with the top count holds one single string, those counts are exact and the winner
    is the group seen first. Otherwise (a hash collision) count the strings exactly.
    """
    n_grams = len(view.words) - n + 1
    if n_grams <= 0:
        return 0
    hasher, starts = view.spaced_ngram_hashes
    begins, ends = starts[:n_grams], starts[n : n + n_grams] - 1
    hashes = hasher.hashes(begins, ends)
    values, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    best = int(counts.max())
    if best == 1:
        return int(ends[0] - begins[0])  # all distinct: the first n-gram wins the tie
    joined = view.spaced_ngram_text[0]
    winners = []
    for value, first_at in zip(values[counts == best], first[counts == best]):
        at = np.flatnonzero(hashes == value)
        if len({joined[begins[i] : ends[i]] for i in at}) != 1:
            return _exact_top_ngram_chars(view, n)
        winners.append(int(first_at))
    earliest = min(winners)
    return int(ends[earliest] - begins[earliest]) * best


def duplicated_ngram_chars(view: TextView, n: int) -> int:
    """Characters in repeated word n-grams, counting each stretch of repetition once.

    datatrove's ``find_all_duplicate``: n-grams are the words concatenated with NO
    separator; walking left to right, a repeat adds its length and jumps n words
    ahead (so overlaps are not double counted), anything else is remembered.

    Only n-grams whose hash occurs more than once can ever be a repeat (equal strings
    share a hash), so the walk visits just those, comparing real strings; the others
    would be remembered without ever matching, which changes nothing.
    """
    n_grams = len(view.words) - n + 1
    if n_grams <= 0:
        return 0
    hasher, offsets = view.packed_ngram_hashes
    hashes = hasher.hashes(offsets[:n_grams], offsets[n : n + n_grams])
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts[inverse] > 1).tolist()
    packed, starts = view.packed_ngram_text
    seen: set[str] = set()
    repeated = k = 0
    while k < len(candidates):
        i = candidates[k]
        gram = packed[starts[i] : starts[i + n]]
        if gram in seen:
            repeated += len(gram)
            k = bisect_left(candidates, i + n, lo=k)
        else:
            seen.add(gram)
            k += 1
    return repeated


def _repeated_blocks(view: TextView, cfg: GopherRepetitionConfig) -> str | None:
    n_chars = len(view.text)
    paragraphs = view.paragraphs
    dup_count, dup_chars = find_duplicates(paragraphs)
    if cfg.dup_para_frac and dup_count / len(paragraphs) > cfg.dup_para_frac:
        return "dup_para_frac"
    if cfg.dup_para_char_frac and dup_chars / n_chars > cfg.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = view.line_runs
    dup_count, dup_chars = find_duplicates(lines)
    if cfg.dup_line_frac and dup_count / len(lines) > cfg.dup_line_frac:
        return "dup_line_frac"
    if cfg.dup_line_char_frac and dup_chars / n_chars > cfg.dup_line_char_frac:
        return "dup_line_char_frac"
    return None


def _repeated_ngrams(view: TextView, cfg: GopherRepetitionConfig) -> str | None:
    n_chars = len(view.text)
    for n, max_frac in cfg.top_n_grams:
        if top_ngram_chars(view, n) / n_chars > max_frac:
            return f"top_{n}_gram"
    for n, max_frac in cfg.dup_n_grams:
        if duplicated_ngram_chars(view, n) / n_chars > max_frac:
            return f"duplicated_{n}_n_grams"
    return None


def _check_repetition(cfg: GopherRepetitionConfig, view: TextView) -> str | None:
    if not view.text:
        # datatrove divides by len(text) and would crash; extraction never yields "".
        return "empty_text"
    return _repeated_blocks(view, cfg) or _repeated_ngrams(view, cfg)


def gopher_repetition(cfg: GopherRepetitionConfig) -> Callable[[TextView], str | None]:
    # partial, not a closure: the bound filter pickles, so it can cross process boundaries
    return partial(_check_repetition, cfg)


# -------------------------------------------------------------------- quality


def _word_count_rules(view: TextView, cfg: GopherQualityConfig) -> str | None:
    words = view.non_symbol_words
    if cfg.min_doc_words and len(words) < cfg.min_doc_words:
        return "gopher_short_doc"
    if cfg.max_doc_words and len(words) > cfg.max_doc_words:
        return "gopher_long_doc"
    if not words:
        return None  # datatrove's mean of nothing is NaN, which fails no comparison
    mean_length = sum(map(len, words)) / len(words)
    if cfg.min_avg_word_length and mean_length < cfg.min_avg_word_length:
        return "gopher_below_avg_threshold"
    if cfg.max_avg_word_length and mean_length > cfg.max_avg_word_length:
        return "gopher_above_avg_threshold"
    return None


def _symbol_rules(view: TextView, cfg: GopherQualityConfig) -> str | None:
    # The denominator here is ALL tokens, punctuation included (unlike the word count).
    n_tokens = len(view.words)
    text = view.text
    if cfg.max_symbol_word_ratio and n_tokens:
        if text.count("#") / n_tokens > cfg.max_symbol_word_ratio:
            return "gopher_too_many_hashes"
        if (text.count("...") + text.count("…")) / n_tokens > cfg.max_symbol_word_ratio:
            return "gopher_too_many_ellipsis"
    return None


def _line_shape_rules(view: TextView, cfg: GopherQualityConfig) -> str | None:
    lines = view.lines
    if not lines:
        return None
    if cfg.max_bullet_lines_ratio:
        bullets = sum(1 for line in lines if line.lstrip().startswith(("•", "-")))
        if bullets / len(lines) > cfg.max_bullet_lines_ratio:
            return "gopher_too_many_bullets"
    if cfg.max_ellipsis_lines_ratio:
        trailing = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
        if trailing / len(lines) > cfg.max_ellipsis_lines_ratio:
            return "gopher_too_many_end_ellipsis"
    return None


def _vocabulary_rules(view: TextView, cfg: GopherQualityConfig, stop_words: frozenset[str]) -> str | None:
    words = view.words
    if cfg.max_non_alpha_words_ratio and words:
        # most words are all letters: count those in C, test only the rest char by char
        with_alpha = sum(map(str.isalpha, words)) + sum(map(has_alpha, filterfalse(str.isalpha, words)))
        if with_alpha / len(words) < cfg.max_non_alpha_words_ratio:
            return "gopher_below_alpha_threshold"
    # How many DIFFERENT stop words occur (datatrove intersects the stop-word set with the set
    # of words: "the the" is one stop word, not two). Case-sensitive: "The" is not "the".
    if cfg.min_stop_words and len(stop_words.intersection(words)) < cfg.min_stop_words:
        return "gopher_enough_stop_words"
    return None


def _check_quality(cfg: GopherQualityConfig, stop_words: frozenset[str], view: TextView) -> str | None:
    return (
        _word_count_rules(view, cfg)
        or _symbol_rules(view, cfg)
        or _line_shape_rules(view, cfg)
        or _vocabulary_rules(view, cfg, stop_words)
    )


def gopher_quality(cfg: GopherQualityConfig) -> Callable[[TextView], str | None]:
    return partial(_check_quality, cfg, frozenset(cfg.stop_words))
