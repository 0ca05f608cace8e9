# FluxForge: a PWA for finetuning FLUX Pro models on BFL's API, plus the proxy that keeps the key.
# `make run` serves the product on http://localhost:8080; `make test` runs every test.

GO       ?= go
SITE     := build/site
BIN      := build/bin
WASM_EXEC_DIR := $(shell $(GO) env GOROOT)/lib/wasm
FUZZTIME ?= 10s
LOAD_DURATION ?= 60s

.PHONY: all build wasm site static proxy run test test-unit test-wasm test-e2e screenshots vet bench load fuzz fuzz-long clean

all: build

build: site proxy

wasm:
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o web/app.wasm ./app/cmd/pwa

# The PWA as a static site (pre-rendered pages, worker, manifest, web/ assets and the
# wasm precompressed as .br and .gz). Any static host can serve it; so does the proxy.
site: wasm
	$(GO) run ./build/sitegen -out $(SITE)

static: site

proxy:
	$(GO) build -trimpath -o $(BIN)/fluxforge ./proxy/cmd/fluxforge
	$(GO) build -trimpath -o $(BIN)/bflsim ./proxy/cmd/bflsim

run: build
	SITE_DIR=$(SITE) $(BIN)/fluxforge

vet:
	$(GO) vet ./...
# app/e2e drives Chromium through chromedp, which does not build for js/wasm.
	GOOS=js GOARCH=wasm $(GO) vet $$(GOOS=js GOARCH=wasm $(GO) list ./app/... | grep -v /app/e2e)
	@test -z "$$(gofmt -l app proxy build)" || { gofmt -l app proxy build; echo "gofmt needed"; exit 1; }

test-unit:
	$(GO) test -count=1 ./...

# Pure-Go browser code also runs under Node as real js/wasm.
test-wasm:
	PATH="$(WASM_EXEC_DIR):$$PATH" GOOS=js GOARCH=wasm $(GO) test -count=1 ./app/bfl/... ./app/core/... ./app/service/...

# Headless Chromium against the built site served by the proxy in simulated mode.
test-e2e: site
	E2E_SITE=$(CURDIR)/$(SITE) $(GO) test -count=1 -timeout 20m ./app/e2e/...

# The README's pictures of the three tabs, taken by the e2e suite in headless Chromium.
screenshots: site
	E2E_SITE=$(CURDIR)/$(SITE) SCREENSHOTS=$(CURDIR)/build/screenshots $(GO) test -count=1 -timeout 10m -run '^TestScreenshots$$' ./app/e2e/

fuzz:
	FUZZTIME=$(FUZZTIME) ./build/fuzz.sh

fuzz-long:
	FUZZTIME=5m ./build/fuzz.sh

test: vet test-unit test-wasm test-e2e fuzz

# The proxy against a direct connection and nginx, one run (the site is not needed).
bench: proxy
	./build/bench.sh

# 200 users for LOAD_DURATION against the proxy in simulated mode;
# LOAD_ARGS=-live-sim=build/bin/bflsim runs it live against the standalone simulator.
load: proxy
	$(GO) run ./build/loadgen -proxy-bin $(BIN)/fluxforge -duration $(LOAD_DURATION) $(LOAD_ARGS)

clean:
	rm -rf $(SITE) $(BIN) web/app.wasm web/app.wasm.br web/app.wasm.gz
