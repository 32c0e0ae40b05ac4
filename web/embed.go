// Package web is Stoa's browser side: the meeting page that guests open
// through a meeting link (https://<stoa>/j/<slug>), the links store and API
// that mint their access tokens, and the http.Handler that serves the page.
//
// The page is TypeScript on livekit-client (app/src/), bundled by esbuild
// (app/build.mjs, run by `make -C web`) into dist/, which is embedded into
// the binary. A fresh clone has only a placeholder there: the binary still
// builds, and the page then says how to build the bundle.
//
// The browser tests live here too: e2e/ drives livekit-client in Chromium
// against an in-process Stoa (browser_test.go), app/test/ drives the meeting
// page against a real `stoa serve` (meeting_test.go).
package web

import "embed"

// dist is the bundle built by app/build.mjs: index.html and content-hashed
// assets, or only README.txt before the first build. Read-only.
//
//go:embed dist
var dist embed.FS
