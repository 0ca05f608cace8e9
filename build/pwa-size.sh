#!/usr/bin/env bash
# Figures for the PWA, rerunnable: the wasm's raw, gzip and brotli sizes
# (budget: brotli at most 3 MB), and time to interactive for a first and a
# repeat visit in headless Chromium on loopback.
#   build/pwa-size.sh            # builds the site first (make site)
#   SKIP_BUILD=1 build/pwa-size.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${SKIP_BUILD:-}" = 1 ] || make site >/dev/null
web=build/site/web
raw=$(stat -c %s "$web/app.wasm")
gz=$(stat -c %s "$web/app.wasm.gz")
br=$(stat -c %s "$web/app.wasm.br")
budget=3000000
awk -v r="$raw" -v g="$gz" -v b="$br" -v l="$budget" 'BEGIN {
	printf "wasm: raw %d B (%.2f MB), gzip -9 %d B (%.2f MB), brotli %d B (%.2f MB), budget %.2f MB\n", r, r/1e6, g, g/1e6, b, b/1e6, l/1e6
}'

E2E_SITE="$PWD/build/site" E2E_BENCH=1 go test -count=1 -timeout 10m -run '^TestLoadTimes$' -v ./app/e2e/ |
	grep -E '^(first|repeat) visit|FAIL|ok ' || true

if [ "$br" -gt "$budget" ]; then
	echo "brotli wasm is over the 3 MB budget" >&2
	exit 1
fi
