#!/usr/bin/env bash
# Builds the PWA as a static site and packs it for any static host, then
# prints how to upload it and connect it to a FluxForge proxy elsewhere.
#
#   build/deploy-static.sh SITE_ORIGIN PROXY_URL
#   build/deploy-static.sh https://studio.example.com https://proxy.example.com
#
# The proxy's origin is written into the site's Content-Security-Policy
# (connect-src), without which the browser refuses to call it; so the site
# is built for one proxy. SKIP_BUILD=1 packs an existing build/site as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
	echo "usage: $0 SITE_ORIGIN PROXY_URL   e.g. $0 https://studio.example.com https://proxy.example.com" >&2
	exit 2
fi
site_origin="${1%/}"
proxy_url="${2%/}"
for v in "$site_origin" "$proxy_url"; do
	if [[ ! "$v" =~ ^https?://[^/?#@]+$ ]]; then
		echo "deploy-static: '$v' must be an origin like https://host.example.com (scheme and host, no path)" >&2
		exit 2
	fi
done
GO="${GO:-go}"
out=build/out
# Apart from build/site, which `make run` serves with the proxy's own origin.
site="$out/static-site"
archive="$out/fluxforge-site.tar.gz"

if [ "${SKIP_BUILD:-}" != 1 ]; then
	make wasm
	rm -rf "$site"
	CONNECT_SRC="$proxy_url" $GO run ./build/sitegen -out "$site"
fi
for f in index.html app.js app-worker.js manifest.webmanifest wasm_exec.js web/app.wasm; do
	if [ ! -f "$site/$f" ]; then
		echo "deploy-static: $site/$f is missing; run without SKIP_BUILD=1" >&2
		exit 1
	fi
done
mkdir -p "$out"
tar -czf "$archive" -C "$site" .
size=$(du -sh "$site" | cut -f1)

cat <<EOF

Static site ready: $site ($size), packed as $archive.

1. Upload the contents of $site to the root of your static host, e.g.
     rsync -a --delete $site/ user@host:/var/www/fluxforge/
     aws s3 sync $site/ s3://bucket/ --delete      (or any bucket or Pages host)
   The host must:
   - serve a page path like /finetune from finetune.html (most hosts do, e.g.
     GitHub Pages, Netlify, nginx with 'try_files \$uri \$uri.html /index.html');
   - serve web/app.wasm as application/wasm. The build also holds
     web/app.wasm.br and web/app.wasm.gz: if the host can serve a precompressed
     file with Content-Encoding (nginx gzip_static/brotli_static, most CDNs),
     let it, since the raw wasm is about five times larger; otherwise turn on the
     host's own compression for application/wasm;
   - send app.js, app-worker.js and the .html pages with 'Cache-Control: no-cache'
     so an update reaches users on their next visit.

2. Run the proxy where it can keep the BFL key, behind HTTPS, and let the
   site's origin call it (exact origin: scheme, host and port, no path):
     BFL_API_KEY=<your key> \\
     CORS_ORIGINS=$site_origin \\
     PROXY_TOKEN=\$(openssl rand -hex 24) \\
     ./fluxforge
   PROXY_TOKEN matters here: a proxy reachable from the internet spends your
   credits for anyone who finds it. Give the token only to your own people.

3. Open $site_origin/settings in the browser and set
     Proxy URL:          $proxy_url
     Proxy access token: the PROXY_TOKEN above
   The badge in the header then shows 'live' and the credit balance. The BFL key
   never reaches the browser: the proxy adds it to each request.

The site's own Content-Security-Policy (a meta tag in each page) lets it call
$proxy_url; if the host adds a CSP header of its own, its connect-src must list
that origin too. To point the site at another proxy, build it again.
EOF
