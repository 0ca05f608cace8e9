// Package core holds what every part of the browser app stands on: the
// configuration with its feature flags, the client that talks to the proxy,
// the browser storage, request validation against the BFL catalog, and the
// typed errors they report.
//
// Browser-only code (IndexedDB, XMLHttpRequest) lives in *_js.go files; each
// has a native counterpart so the package is tested with plain go test.
package core
