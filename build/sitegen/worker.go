package main

import (
	"fmt"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// workerPatches rewrite go-app's service worker:
//   - install runs inside event.waitUntil, so the worker counts as installed
//     only once everything is cached (a failed cache.addAll fails the install,
//     and the next visit retries, instead of an empty cache). Activation stays
//     as go-app wrote it: app.js tells a first install from an update by
//     whether the page is controlled when activation ends, and claiming the
//     page inside waitUntil would make every first visit look like an update;
//   - fetch leaves non-GET, cross-origin, /api/ and /healthz requests to the
//     browser: a worker in the path of an XMLHttpRequest upload hides its
//     progress events, and API answers must never come from a cache;
//   - a navigation the cache does not hold falls back to the cached "/",
//     which routes on the client, so any deep link opens offline.
func workerPatches() []struct{ from, to string } {
	return []struct{ from, to string }{
		{
			from: `self.addEventListener("install", async (event) => {
  try {
    console.log("installing app worker {{.Version}}");
    await installWorker();
    await self.skipWaiting();
  } catch (error) {
    console.error("error during installation:", error);
  }
});`,
			to: `self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    await installWorker();
    await self.skipWaiting();
  })());
});`,
		},
		{
			from: `self.addEventListener("fetch", (event) => {
  event.respondWith(fetchWithCache(event.request));
});`,
			to: `self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin ||
      url.pathname.startsWith("/api/") || url.pathname === "/healthz") {
    return;
  }
  if (request.mode === "navigate") {
    event.respondWith(navigate(request));
    return;
  }
  event.respondWith(fetchWithCache(request));
});

async function navigate(request) {
  const cached = await caches.match(request, { ignoreSearch: true });
  if (cached) {
    return cached;
  }
  try {
    return await fetch(request);
  } catch (error) {
    const shell = await caches.match("/");
    if (shell) {
      return shell;
    }
    throw error;
  }
}`,
		},
	}
}

// patchedWorker applies workerPatches, panicking if go-app's template no
// longer contains what a patch replaces: an upgrade must re-check them.
func patchedWorker() string {
	w := app.DefaultAppWorkerJS
	for _, p := range workerPatches() {
		if strings.Count(w, p.from) != 1 {
			panic(fmt.Sprintf("go-app's service worker template changed; re-check the patch starting %q", firstLine(p.from)))
		}
		w = strings.Replace(w, p.from, p.to, 1)
	}
	return w
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
