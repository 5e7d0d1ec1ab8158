#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed: the
# dashboard's browser test (tests/tests/dashboard.rs) drives them over
# WebDriver. Installs from the distribution's packages only (no browser
# downloads from anywhere else). Needs root or sudo when something is missing.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing chromium and chromium-driver (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
