// Package web serves Stoa's browser client: a page built with TypeScript and
// livekit-client, bundled and embedded into the binary, plus the http.Handler
// that serves it.
//
// The client is not written yet; for now the package holds only the browser
// test harness (e2e/, driven by browser_test.go), which runs the real
// livekit-client SDK in Chromium against an in-process Stoa server.
package web
