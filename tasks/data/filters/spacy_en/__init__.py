"""The English word tokenizer and sentencizer datatrove's quality filters use, without spaCy.

datatrove 0.10.1 splits English text into words with spaCy: ``load_word_tokenizer("en")``
resolves (via its ``tokenizer_assignment.csv``) to ``SpaCyTokenizer("en")``, a blank English
pipeline (rule-based tokenizer + sentencizer, no model), and keeps the stripped, non-empty token
texts. Gopher repetition, Gopher quality and FineWeb quality each ask for the words (datatrove
caches the last few texts, so Gopher quality reuses Gopher repetition's), and C4 runs the
pipeline once per kept line to count sentences. Here the text is tokenised once, per
whitespace-separated chunk with a memo of chunks already seen, and every filter shares the
result through ``TextView``. tests/test_differential_word_tokenizer.py compares the two on the
shared books and web articles: identical on English text. spaCy itself is the slower by far: on
those 7.2 M characters its tokenizer takes ~7 CPU s with a warm cache and ~14 s as datatrove
runs it (pipeline, memory zone), this 0.3 s with a warm memo and 1.2 s from an empty one.

The tokeniser follows spaCy's algorithm for one chunk (Tokenizer._split_affixes/_attach_tokens):

1. a chunk that is a special case (an exception such as "don't" -> "do" "n't", "Mr.", ":)")
   becomes its listed pieces;
2. otherwise prefixes (opening punctuation, quotes, currency, symbols) are split off the front and
   suffixes (closing punctuation, quotes, "'s", a period after a lower-case letter, digit or
   punctuation, units after a number, ...) off the back, one of each per round, until none is
   left or what is left is a special case;
3. what remains is one token if it is a special case or looks like a URL; else it is split at
   infixes (hyphens and "/" ":" "=" "<" ">" between letters, "," between letters, "." between a
   lower-case and an upper-case letter, "+-*^" between digits, ellipses, symbols);
4. special cases that step 2 or 3 cut apart ("z.B." -> "z" "." "B.") are joined again, as spaCy's
   second pass does, longest first.

The rule tables (which characters, which exceptions) are facts about spaCy 3.8's English
tokenizer, written out here. Where this differs from spaCy (all rare in English web text):

* letter classes come from Python's ``str.isalpha/islower/isupper`` and "other symbol" from
  ``unicodedata``; spaCy lists scripts by hand (its letters miss e.g. Armenian, Georgian and some
  Cyrillic/Greek extensions, and the ordinal indicators "ª" "º", so "1º." stays one token there;
  they include the CJK punctuation block U+3000-303F, so "。——" splits at the dashes there; its
  symbol list predates recent emoji);
* the URL test is a simplified version of spaCy's (scheme, optional credentials, a dotted host
  ending in a lower-case TLD or an IPv4 address, optional port and path; spaCy also refuses
  private-network IPv4 addresses, so "10.0.0.1/admin" splits at "/" there);
* step 4 runs per chunk; spaCy runs it over the whole text, where a match across one space
  joins nothing (its text holds the space) but still blocks overlapping ones: "a'' ''b" gives
  "a" "''" "'" "'" "b" there (4 times in the shared Don Quijote, never in the shared English).

The sentencizer (for C4's sentence count) is spaCy's: a sentence ends after a token that is one
of its sentence-final characters ("." "!" "?" and their counterparts in other scripts), and the
next one starts at the first following token that is neither such a character nor punctuation.
"""

from tasks.data.filters.spacy_en.sentences import SENTENCE_FINAL_CHARS, count_sentences, split_sentences
from tasks.data.filters.spacy_en.tokenizer import tokenize_chunk, word_tokenize

__all__ = ["SENTENCE_FINAL_CHARS", "count_sentences", "split_sentences", "tokenize_chunk", "word_tokenize"]
