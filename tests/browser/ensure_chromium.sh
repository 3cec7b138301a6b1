#!/bin/sh
# Chromium for the admin console's browser tests: Debian's `chromium` + `chromium-driver`
# (/usr/bin/chromium, /usr/bin/chromedriver). Installed with apt-get when missing and
# running as root; quiet and instant when already there. Under CI=true a browser that
# cannot be installed fails the run (the browser tests never skip there).
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium + chromium-driver (Debian packages) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  }
fi
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo "CI=true: Chromium (/usr/bin/chromium) is required for the browser tests and could not be installed" >&2
  exit 1
fi
echo "note: /usr/bin/chromium is missing (not root?); the browser tests will be skipped locally" >&2
