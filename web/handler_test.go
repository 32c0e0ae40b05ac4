package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

const testIndex = `<!doctype html><html><head>
<meta name="stoa-e2ee-worker" content="../app/e2ee-worker-ABCD2345.js">
<link rel="stylesheet" href="../app/meeting-WXYZ6789.css">
<script type="module" src="../app/meeting-QRST2345.js"></script>
</head><body><main id="app"></main></body></html>`

func testBundle() fstest.MapFS {
	js := strings.Repeat("console.log('stoa meeting page');\n", 200)
	return fstest.MapFS{
		"dist/README.txt":              {Data: []byte("placeholder")},
		"dist/index.html":              {Data: []byte(testIndex)},
		"dist/meeting-QRST2345.js":     {Data: []byte(js)},
		"dist/meeting-WXYZ6789.css":    {Data: []byte("body{margin:0}")},
		"dist/e2ee-worker-ABCD2345.js": {Data: []byte("self.onmessage=()=>{};")},
		"dist/notes.txt":               {Data: []byte("not hashed")},
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerPage(t *testing.T) {
	h := newHandler(testBundle(), "dist")
	for _, target := range []string{"/j/AbCdEf123-_x", "/j/AbCdEf123-_x/", "/j/"} {
		resp := get(t, h, http.MethodGet, "http://stoa.example.org"+target, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, want 200", target, resp.StatusCode)
		}
		if got := body(t, resp); got != testIndex {
			t.Errorf("GET %s: body is not index.html: %.80q", target, got)
		}
		want := map[string]string{
			"Content-Type":           "text/html; charset=utf-8",
			"Cache-Control":          "no-cache",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", target, k, got, v)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, d := range []string{
			"default-src 'none'",
			"script-src 'self'",
			"connect-src 'self' ws://stoa.example.org wss://stoa.example.org",
			"worker-src 'self' blob:",
			"media-src 'self' blob: mediastream:",
			"frame-ancestors 'none'",
		} {
			if !strings.Contains(csp, d) {
				t.Errorf("GET %s: CSP %q lacks %q", target, csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline or eval", target, csp)
		}
		if pp := resp.Header.Get("Permissions-Policy"); !strings.Contains(pp, "camera=(self)") {
			t.Errorf("GET %s: Permissions-Policy %q does not grant the camera", target, pp)
		}
	}
}

func TestHandlerCSPHost(t *testing.T) {
	h := newHandler(testBundle(), "dist")
	tests := []struct {
		host string
		want string // the connect-src directive
	}{
		{"127.0.0.1:7880", "connect-src 'self' ws://127.0.0.1:7880 wss://127.0.0.1:7880;"},
		{"[::1]:7880", "connect-src 'self' ws://[::1]:7880 wss://[::1]:7880;"},
		{"stoa.example.org", "connect-src 'self' ws://stoa.example.org wss://stoa.example.org;"},
		// Anything that could end the directive is left out.
		{"evil.example; script-src *", "connect-src 'self';"},
		{"a b", "connect-src 'self';"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, "/j/slug", nil)
		req.Host = tt.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, tt.want) {
			t.Errorf("Host %q: CSP %q, want it to contain %q", tt.host, csp, tt.want)
		}
	}
}

func TestHandlerAssets(t *testing.T) {
	bundle := testBundle()
	h := newHandler(bundle, "dist")
	tests := []struct {
		path, ctype, cache string
	}{
		{"/app/meeting-QRST2345.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/app/meeting-WXYZ6789.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/app/e2ee-worker-ABCD2345.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/app/notes.txt", "text/plain; charset=utf-8", "no-cache"},
	}
	for _, tt := range tests {
		resp := get(t, h, http.MethodGet, tt.path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", tt.path, resp.StatusCode)
		}
		if got, want := body(t, resp), string(bundle["dist/"+strings.TrimPrefix(tt.path, "/app/")].Data); got != want {
			t.Errorf("GET %s: wrong body", tt.path)
		}
		if got := resp.Header.Get("Content-Type"); got != tt.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != tt.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tt.path, got, tt.cache)
		}
		if resp.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", tt.path)
		}
		if resp.Header.Get("Content-Security-Policy") != "" {
			t.Errorf("GET %s: an asset has a CSP; only the page needs one", tt.path)
		}
	}
	for _, p := range []string{"/app/README.txt", "/app/index.html", "/app/missing.js", "/app/", "/app/../dist/index.html", "/elsewhere", "/j/a/b"} {
		if resp := get(t, h, http.MethodGet, p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestHandlerGzip(t *testing.T) {
	bundle := testBundle()
	h := newHandler(bundle, "dist")
	const p = "/app/meeting-QRST2345.js"
	plain := get(t, h, http.MethodGet, p, nil)
	zipped := get(t, h, http.MethodGet, p, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if zipped.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip for Accept-Encoding br, gzip;q=0.8: %v", zipped.Header)
	}
	if !strings.Contains(zipped.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %q, want Accept-Encoding", zipped.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bundle["dist/meeting-QRST2345.js"].Data) {
		t.Error("the gzipped body does not decompress to the asset")
	}
	if plain.Header.Get("ETag") == zipped.Header.Get("ETag") {
		t.Error("the plain and gzipped representations share an ETag")
	}
	refused := get(t, h, http.MethodGet, p, map[string]string{"Accept-Encoding": "gzip;q=0, identity"})
	if refused.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent although the client refused it with q=0")
	}
	// Tiny files are not worth compressing.
	small := get(t, h, http.MethodGet, "/app/meeting-WXYZ6789.css", map[string]string{"Accept-Encoding": "gzip"})
	if small.Header.Get("Content-Encoding") != "" {
		t.Error("a 14-byte file was gzipped")
	}
}

func TestHandlerConditional(t *testing.T) {
	h := newHandler(testBundle(), "dist")
	for _, p := range []string{"/j/slug", "/app/meeting-QRST2345.js"} {
		first := get(t, h, http.MethodGet, p, nil)
		etag := first.Header.Get("ETag")
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			resp := get(t, h, http.MethodGet, p, map[string]string{"If-None-Match": inm})
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("GET %s If-None-Match %s: %d, want 304", p, inm, resp.StatusCode)
			}
			if b := body(t, resp); b != "" {
				t.Errorf("GET %s: 304 with a body", p)
			}
		}
		if resp := get(t, h, http.MethodGet, p, map[string]string{"If-None-Match": `"stale"`}); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with a stale ETag: %d, want 200", p, resp.StatusCode)
		}
	}
}

func TestHandlerMethods(t *testing.T) {
	h := newHandler(testBundle(), "dist")
	head := get(t, h, http.MethodHead, "/app/meeting-QRST2345.js", nil)
	if head.StatusCode != http.StatusOK || body(t, head) != "" || head.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, Content-Length %q", head.StatusCode, head.Header.Get("Content-Length"))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp := get(t, h, m, "/j/slug", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /j/slug: %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

func TestHandlerNotBuilt(t *testing.T) {
	for name, fsys := range map[string]fs.FS{
		"placeholder only": fstest.MapFS{"dist/README.txt": {Data: []byte("placeholder")}},
		"no directory":     fstest.MapFS{},
	} {
		h := newHandler(fsys, "dist")
		resp := get(t, h, http.MethodGet, "/j/slug", nil)
		b := body(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: %d, want 503", name, resp.StatusCode)
		}
		if !strings.Contains(b, "make -C web") {
			t.Errorf("%s: the page does not say how to build the bundle: %q", name, b)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != notBuiltCSP {
			t.Errorf("%s: CSP %q", name, csp)
		}
		if resp := get(t, h, http.MethodGet, "/app/README.txt", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: GET /app/README.txt: %d, want 404", name, resp.StatusCode)
		}
	}
}

// TestEmbeddedBundle checks the bundle compiled into this package: built,
// every asset index.html names is served; not built, the page says how to
// build it.
func TestEmbeddedBundle(t *testing.T) {
	h := Handler()
	resp := get(t, h, http.MethodGet, "/j/slug", nil)
	page := body(t, resp)
	if _, err := fs.Stat(dist, "dist/index.html"); err != nil {
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "make -C web") {
			t.Fatalf("without a bundle: %d %q", resp.StatusCode, page)
		}
		t.Log("the bundle is not built (make -C web); checked the page that says so")
		return
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /j/slug: %d", resp.StatusCode)
	}
	refs := regexp.MustCompile(`"\.\./app/([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d assets, want the script, the styles and the E2EE worker", len(refs))
	}
	if strings.Contains(page, "{{") {
		t.Error("index.html has an unfilled placeholder")
	}
	for _, ref := range refs {
		resp := get(t, h, http.MethodGet, "/app/"+ref[1], nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("index.html names %s, which is not served: %d", ref[1], resp.StatusCode)
		}
		if resp.Header.Get("Cache-Control") != cacheImmutable {
			t.Errorf("%s is not cached as immutable: %q", ref[1], resp.Header.Get("Cache-Control"))
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := map[string]bool{
		"":                       false,
		"gzip":                   true,
		"GZIP":                   true,
		"br, gzip, deflate":      true,
		"gzip;q=0":               false,
		"gzip; q=0.000":          false,
		"gzip;q=0.5":             true,
		"deflate":                false,
		"x-gzip":                 false,
		"identity;q=1, *;q=0":    false,
		"compress, gzip ;q=0.1 ": true,
	}
	for hdr, want := range tests {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Accept-Encoding", hdr)
		if got := acceptsGzip(req); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", hdr, got, want)
		}
	}
}
