package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Where the meeting page lives on Stoa's port. Mount Handler at both.
const (
	// PagePath + slug is a meeting link; every slug gets the same page,
	// which reads the slug from its address.
	PagePath = "/j/"
	// AssetsPath holds the bundle's scripts, styles and the E2EE worker.
	AssetsPath = "/app/"
)

// Cache lifetimes. Hashed asset names change with their content, so a
// browser may keep them for good (RFC 8246 immutable). The page itself
// names the current assets and is revalidated on every load (its ETag makes
// that a 304).
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// hashedName matches the names app/build.mjs gives assets: name-HASH.ext,
// with esbuild's 8-character base32 content hash.
var hashedName = regexp.MustCompile(`-[A-Z0-9]{8}\.[a-z]+$`)

// contentSecurityPolicy lets the page load only its own scripts, styles
// and workers, and connect only back to its origin (fetch, and ws/wss for
// the LiveKit signal connection; wsOrigins adds them explicitly for
// browsers whose 'self' does not cover WebSockets). media-src allows the
// blob: and mediastream: sources of camera, microphone and remote tracks;
// worker-src blob: covers workers that livekit-client builds itself.
func contentSecurityPolicy(wsOrigins string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"media-src 'self' blob: mediastream:; connect-src 'self'" + wsOrigins + "; " +
		"worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// notBuiltCSP is the policy of the page served when the bundle is missing:
// no scripts, no styles, nothing to load.
const notBuiltCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// permissionsPolicy grants the page camera, microphone and screen capture
// for itself and nobody it might embed.
const permissionsPolicy = "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self)"

// validHost matches the Host values that may be copied into the CSP: a
// name or address and a port, nothing that could end a directive.
var validHost = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

const notBuiltPage = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Meeting page not built</title>
<h1>The meeting page is not built into this server</h1>
<p>This Stoa binary was built without its browser bundle. Build the bundle
with <code>make -C web</code> (it needs Node.js and npm), then build Stoa again
(<code>make build</code> does both), and restart the server.</p>
`

// asset is one file of the bundle, ready to serve.
type asset struct {
	body        []byte
	gzipped     []byte // nil when gzip would not make it smaller
	contentType string
	etag        string
	cache       string
}

// handler serves the meeting page and its assets; see Handler.
type handler struct {
	page   *asset            // nil when the bundle was not built
	assets map[string]*asset // by file name; read-only after newHandler
}

// Handler returns the handler of the meeting page, serving the bundle
// embedded in the binary. Mount it at PagePath and AssetsPath:
//
//	GET /j/{slug}      the page (the same for every slug)
//	GET /app/{file}    the bundle's assets
//
// The page connects back to the origin it was loaded from (the links API and
// the LiveKit signal connection), so serve it under the host name of the
// server's public URL. Handler reads and compresses the bundle once; the
// handler it returns is safe for concurrent use.
func Handler() http.Handler { return newHandler(dist, "dist") }

// newHandler serves the bundle in directory dir of fsys.
func newHandler(fsys fs.FS, dir string) *handler {
	h := &handler{assets: map[string]*asset{}}
	entries, _ := fs.ReadDir(fsys, dir) // a missing directory is an empty bundle
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "README.txt" {
			continue
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			continue
		}
		a := newAsset(name, body)
		if name == "index.html" {
			a.cache = cacheRevalidate
			h.page = a
			continue
		}
		h.assets[name] = a
	}
	return h
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	a := &asset{
		body:        body,
		contentType: contentType(name),
		etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		cache:       cacheRevalidate,
	}
	if hashedName.MatchString(name) {
		a.cache = cacheImmutable
	}
	if strings.HasPrefix(a.contentType, "text/") || strings.HasPrefix(a.contentType, "application/json") {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
		_, _ = zw.Write(body)                                    // writes to a bytes.Buffer do not fail
		if zw.Close() == nil && buf.Len() < len(body) {
			a.gzipped = buf.Bytes()
		}
	}
	return a
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".map", ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, PagePath):
		// /j/, /j/{slug} and /j/{slug}/; the page explains a missing slug.
		if slug := strings.TrimSuffix(strings.TrimPrefix(p, PagePath), "/"); strings.Contains(slug, "/") {
			http.NotFound(w, r)
			return
		}
		h.servePage(w, r)
	case strings.HasPrefix(p, AssetsPath):
		a, ok := h.assets[strings.TrimPrefix(p, AssetsPath)]
		if !ok {
			hdr.Set("Cache-Control", cacheRevalidate)
			http.NotFound(w, r)
			return
		}
		serveAsset(w, r, a)
	default:
		http.NotFound(w, r)
	}
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Permissions-Policy", permissionsPolicy)
	if h.page == nil {
		hdr.Set("Content-Security-Policy", notBuiltCSP)
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(notBuiltPage))
		}
		return
	}
	ws := ""
	if validHost.MatchString(r.Host) {
		ws = " ws://" + r.Host + " wss://" + r.Host
	}
	hdr.Set("Content-Security-Policy", contentSecurityPolicy(ws))
	serveAsset(w, r, h.page)
}

// serveAsset writes a, gzipped if the client takes it, or 304 when the
// client's copy is current. Ranges are not supported: the assets are small.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	hdr := w.Header()
	body, etag := a.body, a.etag
	if a.gzipped != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body = a.gzipped
			// Each representation has its own entity tag (RFC 9110 §8.8.3).
			etag = strings.TrimSuffix(a.etag, `"`) + `-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", a.cache)
	hdr.Set("ETag", etag)
	if matchesETag(r.Header.Get("If-None-Match"), etag) {
		hdr.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (a q=0 refuses it, RFC 9110 §12.5.3).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// matchesETag reports whether an If-None-Match header lists etag, or is "*".
// Comparison is weak (RFC 9110 §13.1.2): a W/ prefix is ignored.
func matchesETag(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
