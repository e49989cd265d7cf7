#!/usr/bin/env bash
# Installs what the console's browser tests need (tests/tests/console.rs), each from
# its registry, and does nothing for what is already there:
# - Debian's chromium-headless-shell (apt), the browser Playwright drives;
# - a project-local Python venv in .tools/venv (git-ignored) with Playwright,
#   openpyxl and openapi-spec-validator from PyPI (Playwright's own browser download
#   is not used: it cannot be reached here, and Debian's browser is the one tested);
# - axe-core from npm, pinned by tests/console/package-lock.json (npm ci);
# and, where missing, Debian's python3-venv and npm to install them with (apt-get: run
# as root, as CI does).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/venv"

apt_updated=""
apt_install() {
  echo "installing Debian's $*" >&2
  if [ -z "$apt_updated" ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

if [ ! -x /usr/bin/chromium-headless-shell ]; then
  apt_install chromium-headless-shell
fi
# A fresh Debian has neither the venv module's ensurepip nor npm.
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  apt_install python3-venv
fi
if ! command -v npm >/dev/null 2>&1; then
  apt_install npm
fi

if ! "$venv/bin/python" -c "import playwright, openpyxl, openapi_spec_validator" 2>/dev/null; then
  echo "installing Playwright, openpyxl and openapi-spec-validator into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "playwright==1.65.3" "openpyxl==3.1.5" "openapi-spec-validator==0.9.0" >&2
fi

if [ ! -f "$root/tests/console/node_modules/axe-core/axe.min.js" ]; then
  echo "installing axe-core from npm (tests/console/package-lock.json)" >&2
  (cd "$root/tests/console" && npm ci --no-audit --no-fund --silent) >&2
fi
