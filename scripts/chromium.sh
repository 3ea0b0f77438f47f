#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/test_web_browser.py) and print its path.
# Playwright drives it through executable_path; nothing is downloaded by Playwright itself.
set -euo pipefail
CHROMIUM=${ZOO_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Chromium is not installed and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  echo "installing Chromium from Debian's packages..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >&2
fi
echo "$CHROMIUM"
