#!/usr/bin/env bash
# The local dev cluster (README, Quickstart), built with the test command's profile (dev, with
# optimised dependencies) into the same cache. Arguments go to `meridian dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh
cargo build -p meridian
exec "$CARGO_TARGET_DIR/debug/meridian" dev "$@"
