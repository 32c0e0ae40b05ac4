package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

// roundTripFunc is an http.RoundTripper of a func.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// wellKnownAnswers answers .well-known requests from a map of host to
// body; a host not in it gets 404.
func wellKnownAnswers(t *testing.T, answers map[string]string) *http.Client {
	t.Helper()
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Scheme != "https" || r.URL.Path != "/.well-known/matrix/server" {
			t.Errorf("unexpected request %s", r.URL)
		}
		body, ok := answers[r.URL.Host]
		status := http.StatusOK
		if !ok {
			status = http.StatusNotFound
		}
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}}, nil
	})}
}

// srvRecords answers SRV lookups from a map of "service name" to
// "target:port"; others are not found.
func srvRecords(records map[string]string) func(context.Context, string, string, string) (string, []*net.SRV, error) {
	return func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
		hp, ok := records[service+" "+name]
		if !ok || proto != "tcp" {
			return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		host, port, _ := net.SplitHostPort(hp)
		p, _ := strconv.Atoi(port)
		return "", []*net.SRV{{Target: host + ".", Port: uint16(p)}}, nil
	}
}

// TestResolve follows the spec's server discovery steps.
func TestResolve(t *testing.T) {
	tests := []struct {
		name, server string
		wellKnown    map[string]string
		srv          map[string]string
		host, addr   string
	}{
		{name: "IPv4 literal", server: "1.2.3.4", host: "1.2.3.4", addr: "1.2.3.4:8448"},
		{name: "IPv4 with port", server: "1.2.3.4:443", host: "1.2.3.4:443", addr: "1.2.3.4:443"},
		{name: "IPv6 literal", server: "[2001:db8::1]", host: "[2001:db8::1]", addr: "[2001:db8::1]:8448"},
		{name: "IPv6 with port", server: "[::1]:8008", host: "[::1]:8008", addr: "[::1]:8008"},
		{name: "name with port", server: "localhost:18448", wellKnown: map[string]string{"localhost:18448": `{"m.server":"x:1"}`},
			host: "localhost:18448", addr: "localhost:18448"},
		{name: "well-known to name with port", server: "example.org", wellKnown: map[string]string{"example.org": `{"m.server":"matrix.example.org:443"}`},
			host: "matrix.example.org:443", addr: "matrix.example.org:443"},
		{name: "well-known to IP", server: "example.org", wellKnown: map[string]string{"example.org": `{"m.server":"10.0.0.1"}`},
			host: "10.0.0.1", addr: "10.0.0.1:8448"},
		{name: "well-known to name, SRV", server: "example.org", wellKnown: map[string]string{"example.org": `{"m.server":"matrix.example.org"}`},
			srv:  map[string]string{"matrix-fed matrix.example.org": "fed.example.net:8449", "matrix-fed example.org": "wrong:1"},
			host: "matrix.example.org", addr: "fed.example.net:8449"},
		{name: "well-known to name, old SRV", server: "example.org", wellKnown: map[string]string{"example.org": `{"m.server":"matrix.example.org"}`},
			srv:  map[string]string{"matrix matrix.example.org": "old.example.net:8450"},
			host: "matrix.example.org", addr: "old.example.net:8450"},
		{name: "well-known to name, no SRV", server: "example.org", wellKnown: map[string]string{"example.org": `{"m.server":"matrix.example.org"}`},
			host: "matrix.example.org", addr: "matrix.example.org:8448"},
		{name: "bad well-known, SRV", server: "example.org", wellKnown: map[string]string{"example.org": `{"m.server":"bad/name"}`},
			srv: map[string]string{"matrix-fed example.org": "fed.example.net:8449"}, host: "example.org", addr: "fed.example.net:8449"},
		{name: "no well-known, no SRV", server: "example.org", host: "example.org", addr: "example.org:8448"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &serverResolver{
				wellKnown: wellKnownAnswers(t, tt.wellKnown),
				lookupSRV: srvRecords(tt.srv),
				now:       time.Now,
				cache:     map[string]resolvedServer{},
			}
			got, err := r.resolve(t.Context(), tt.server)
			if err != nil {
				t.Fatal(err)
			}
			if got.host != tt.host || got.addr != tt.addr {
				t.Errorf("resolve(%s) = host %s addr %s, want %s %s", tt.server, got.host, got.addr, tt.host, tt.addr)
			}
		})
	}
	r := &serverResolver{now: time.Now, cache: map[string]resolvedServer{}}
	for _, bad := range []string{"", "a/b", "example.org:99999", "example.org:0", "user@example.org"} {
		if _, err := r.resolve(t.Context(), bad); err == nil {
			t.Errorf("resolve(%q) succeeded", bad)
		}
	}
}

// TestResolveCache: a resolution is kept resolutionTTL, one made without
// .well-known resolutionErrorTTL.
func TestResolveCache(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	wk := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if r.URL.Host == "down.example" {
			return nil, errors.New("connection refused")
		}
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"m.server":"hs.example:443"}`)), Header: http.Header{}}, nil
	})}
	now := time.Unix(1e9, 0)
	r := &serverResolver{wellKnown: wk, lookupSRV: srvRecords(nil), now: func() time.Time { return now }, cache: map[string]resolvedServer{}}
	count := func() int { mu.Lock(); defer mu.Unlock(); return asked }
	resolve := func(server string) {
		t.Helper()
		if _, err := r.resolve(t.Context(), server); err != nil {
			t.Fatal(err)
		}
	}
	resolve("up.example")
	resolve("down.example")
	resolve("up.example")
	resolve("down.example")
	if n := count(); n != 2 {
		t.Fatalf("%d .well-known requests, want 2", n)
	}
	now = now.Add(resolutionErrorTTL)
	resolve("up.example")
	resolve("down.example")
	if n := count(); n != 3 {
		t.Fatalf("%d .well-known requests after %v, want 3", n, resolutionErrorTTL)
	}
	now = now.Add(resolutionTTL)
	resolve("up.example")
	if n := count(); n != 4 {
		t.Fatalf("%d .well-known requests after %v, want 4", n, resolutionTTL)
	}
}

// TestVerifyFederation verifies a token over HTTPS found by discovery:
// .well-known fails, the SRV record points at the test server, and the
// certificate is checked against the server name (httptest's certificate
// is for example.com).
func TestVerifyFederation(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		switch r.URL.Query().Get("access_token") {
		case "good":
			_, _ = io.WriteString(w, `{"sub":"@alice:example.com"}`)
		case "other":
			_, _ = io.WriteString(w, `{"sub":"@alice:example.org"}`)
		case "garbage":
			_, _ = io.WriteString(w, `<html>`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN"}`)
		}
	}))
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	port := ts.Listener.Addr().(*net.TCPAddr).Port

	v := newOpenIDVerifier(nil, &tls.Config{RootCAs: pool})
	v.resolver.wellKnown = wellKnownAnswers(t, nil)
	v.resolver.lookupSRV = srvRecords(map[string]string{"matrix-fed example.com": "127.0.0.1:" + strconv.Itoa(port)})

	user, err := v.verify(t.Context(), "example.com", "good")
	if err != nil || user != "@alice:example.com" {
		t.Fatalf("verify = %s, %v", user, err)
	}
	mu.Lock()
	if len(hosts) != 1 || hosts[0] != "example.com" {
		t.Errorf("Host headers %q, want [example.com]", hosts)
	}
	mu.Unlock()
	for _, token := range []string{"bad", "other", "garbage"} {
		if _, err := v.verify(t.Context(), "example.com", token); !errors.Is(err, errUnauthorized) {
			t.Errorf("verify(%s) error %v, want errUnauthorized", token, err)
		}
	}

	// The certificate is not valid for another name.
	v.resolver.lookupSRV = srvRecords(map[string]string{"matrix-fed example.net": "127.0.0.1:" + strconv.Itoa(port)})
	if _, err := v.verify(t.Context(), "example.net", "good"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("verify against the wrong name: %v, want a certificate error", err)
	}
	// Nor is plain HTTP accepted without an override.
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	if _, err := v.verify(t.Context(), plain.Listener.Addr().String(), "good"); !errors.Is(err, errUnauthorized) {
		t.Errorf("verify over plain HTTP: %v", err)
	}
}

// TestVerifyCacheExpiry: a verified token is trusted openIDCacheTTL.
func TestVerifyCacheExpiry(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken("tok", "@alice:example.org")
	v := newOpenIDVerifier(map[string]string{testServer: hs.srv.URL + "/"}, nil)
	now := time.Unix(1e9, 0)
	v.now = func() time.Time { return now }
	verify := func() {
		t.Helper()
		if u, err := v.verify(t.Context(), testServer, "tok"); err != nil || u != alice {
			t.Fatalf("verify = %s, %v", u, err)
		}
	}
	verify()
	now = now.Add(openIDCacheTTL - time.Second)
	verify()
	if n := hs.requests(); n != 1 {
		t.Fatalf("%d requests within the TTL, want 1", n)
	}
	now = now.Add(time.Second)
	verify()
	if n := hs.requests(); n != 2 {
		t.Fatalf("%d requests after the TTL, want 2", n)
	}
	// Another server's token of the same text is another entry.
	if _, err := v.verify(t.Context(), "example.net", "tok"); err == nil {
		t.Error("a token verified for example.org was taken for example.net")
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	v := newOpenIDVerifier(nil, nil)
	now := time.Unix(1e9, 0)
	v.now = func() time.Time { return now }
	for i := range openIDCacheSize + 10 {
		v.store([32]byte{byte(i), byte(i >> 8)}, alice)
	}
	if n := len(v.cache); n != openIDCacheSize {
		t.Errorf("%d entries, want %d", n, openIDCacheSize)
	}
	now = now.Add(openIDCacheTTL)
	v.store([32]byte{0xff, 0xff}, alice)
	if n := len(v.cache); n != 1 {
		t.Errorf("%d entries after expiry, want 1", n)
	}
}

func TestCheckUser(t *testing.T) {
	tests := []struct {
		user   id.UserID
		server string
		ok     bool
	}{
		{"@alice:example.org", "example.org", true},
		{"@alice:localhost:8448", "localhost:8448", true},
		{"@Historical_User!:example.org", "example.org", true},
		{"@alice:example.org", "Example.org", false},
		{"@alice:example.org:8448", "example.org", false},
		{"@alice:sub.example.org", "example.org", false},
		{"alice:example.org", "example.org", false},
		{"@:example.org", "example.org", false},
		{"@al ice:example.org", "example.org", false},
		{"@alicé:example.org", "example.org", false},
		{"@alice:exa mple.org", "exa mple.org", false},
		{"@alice", "example.org", false},
	}
	for _, tt := range tests {
		if err := checkUser(tt.user, tt.server); (err == nil) != tt.ok {
			t.Errorf("checkUser(%s, %s) = %v, want ok %v", tt.user, tt.server, err, tt.ok)
		}
	}
}
