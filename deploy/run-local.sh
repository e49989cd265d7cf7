#!/usr/bin/env bash
# Starts the whole system locally (see `coordctl up --help`): installs nats-server if
# needed, builds the binaries, then runs nats-server, the three command services, the
# projector, the auditor and the gateway as separate processes, with data in ./.data. Ctrl-C stops
# everything; a second start keeps the data. Extra arguments go to `coordctl up`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NATS_SERVER_BIN="$(deploy/install-nats.sh)"
export NATS_SERVER_BIN
cargo build --workspace --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/debug/coordctl" up "$@"
