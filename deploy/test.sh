#!/usr/bin/env bash
# Runs the whole test suite: makes a nats-server available (deploy/install-nats.sh)
# and the console's browser-test tools (deploy/install-console-tools.sh),
# builds the service binaries the end-to-end tests start as processes, then runs
# `cargo test --workspace`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NATS_SERVER_BIN="$(deploy/install-nats.sh)"
export NATS_SERVER_BIN
deploy/install-console-tools.sh
echo "using $("$NATS_SERVER_BIN" --version) at $NATS_SERVER_BIN" >&2
cargo build --workspace --bins
cargo test --workspace "$@"
