#!/usr/bin/env bash
# Installs what the chat page's browser test (tests/test_serve_browser.py) needs: Debian's
# `chromium` and `chromium-driver`. A no-op when both are already on PATH.
# Runs apt-get as root (directly, or through sudo when available), non-interactively and quietly.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if (have chromium || have chromium-browser) && have chromedriver; then
    exit 0
fi

if ! have apt-get; then
    echo "install_browser.sh: apt-get not found; install chromium and chromedriver by hand" >&2
    exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then
        as_root=(sudo -n)
    else
        echo "install_browser.sh: must run as root (or with passwordless sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_browser.sh: installing chromium and chromium-driver with apt-get"
"${as_root[@]}" apt-get update -qq
# Without recommends (printing, udev, mesa, ...: none needed headless), but with one font so
# pages lay out text as they would for a person.
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null

if ! { (have chromium || have chromium-browser) && have chromedriver; }; then
    echo "install_browser.sh: chromium or chromedriver still missing after apt-get install" >&2
    exit 1
fi
