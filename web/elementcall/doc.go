// Package elementcall holds the end-to-end test with Element Call itself:
// the widget build that Element Web embeds (npm
// @element-hq/element-call-embedded 0.26.1) runs for two users in headless
// Chromium, each inside a small widget host page (host.html, host.js, on
// npm matrix-widget-api) that forwards its widget API requests to a real
// Dendrite, and the two hold a video call through an in-process Stoa with
// its MatrixRTC authorisation service in bot mode.
//
// Element Call is AGPL-3.0: it is a test-only peer, installed into
// web/node_modules by npm ci and served from there to Chromium by run.mjs.
// Nothing here is built into Stoa; the package has no code besides its
// test.
//
// Run it alone with `make test-element-call` or
// `go test -count=1 -v ./web/elementcall/`; `make test` runs it too. It
// needs Chromium, node, web/node_modules and Dendrite (make test-deps and
// make -C web deps install them). With STOA_EC_REPORT set to a directory,
// the test also writes run.mjs's whole JSON report there
// (elementcall-report.json): every request Element Call and the host made,
// the token requests and the events sent.
package elementcall
