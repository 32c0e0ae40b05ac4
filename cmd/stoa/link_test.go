package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
)

// linkServe starts "stoa serve" with a links file and returns its base
// URL, the config file (for the CLI), the links file and the log.
func linkServe(t *testing.T) (base, cfgPath, linksPath string, log *syncBuffer) {
	t.Helper()
	linksPath = filepath.Join(t.TempDir(), "links.json")
	cfgPath = writeFile(t, "stoa.yaml", `
port: 0
bind_addresses: [127.0.0.1]
rtc:
  udp_port: 0
  tcp_port: -1
  bind_address: 127.0.0.1
keys:
  k: `+longSecret+`
links:
  path: `+linksPath+`
`)
	addrs, log := startServe(t, nil, "--config", cfgPath)
	return "http://" + addrs[0].String(), cfgPath, linksPath, log
}

// runLink runs "stoa link args" and returns its standard output and error.
func runLink(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"link"}, args...),
		system{stdout: &out, stderr: &errOut, getenv: envMap(nil)})
	return out.String(), errOut.String(), err
}

// mustLink runs "stoa link args", which must succeed, and returns its
// standard output, trimmed.
func mustLink(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runLink(t, args...)
	if err != nil {
		t.Fatalf("stoa link %q: %v\nstderr: %s", args, err, errOut)
	}
	return strings.TrimSpace(out)
}

// guestJoin is the answer to a join, or to a refused one.
type guestJoin struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	Identity string `json:"identity"`
	Name     string `json:"name"`
	Room     string `json:"room"`
	ViewOnly bool   `json:"view_only"`
	E2EE     bool   `json:"e2ee"`
	Error    string `json:"error"`
	Message  string `json:"message"`
}

// joinLink asks the server for a guest token, as the page does, and returns
// the status and the answer.
func joinLink(t *testing.T, client *http.Client, base, slug, name string) (int, guestJoin) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name})
	resp, err := client.Post(base+"/api/links/"+slug+"/join", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j guestJoin
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		t.Fatalf("join answer %s: %v", resp.Status, err)
	}
	if j.Error != "" && j.Message == "" {
		t.Errorf("error %q without a message", j.Error)
	}
	return resp.StatusCode, j
}

func TestLinkCLI(t *testing.T) {
	checkGoroutines(t)
	base, cfgPath, linksPath, log := linkServe(t)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	link := func(args ...string) string {
		t.Helper()
		return mustLink(t, append(args, "--server", base, "--config", cfgPath)...)
	}
	slugOf := func(u string) string {
		t.Helper()
		if !strings.HasPrefix(u, base+"/j/") {
			t.Fatalf("link %q does not start with %s/j/", u, base)
		}
		s, _, _ := strings.Cut(strings.TrimPrefix(u, base+"/j/"), "#")
		return s
	}

	// A link for publishing guests.
	u := link("create", "--room", "standup")
	if strings.Contains(u, "\n") || strings.Contains(u, "#") {
		t.Fatalf("create printed %q, want the URL alone", u)
	}
	slug := slugOf(u)
	status, j := joinLink(t, client, base, slug, " Alice ")
	if status != http.StatusOK {
		t.Fatalf("join: %d %+v", status, j)
	}
	wsURL := "ws://" + strings.TrimPrefix(base, "http://")
	if j.URL != wsURL || j.Room != "standup" || j.Name != "Alice" || j.ViewOnly || j.E2EE {
		t.Errorf("join = %+v", j)
	}
	g := verify(t, j.Token, "k", longSecret)
	if g.Identity != j.Identity || !strings.HasPrefix(g.Identity, "guest-") || g.Name != "Alice" ||
		g.Video == nil || g.Video.Room != "standup" || !g.Video.RoomJoin || !g.Video.GetCanPublish() || g.Video.RoomAdmin {
		t.Errorf("guest claims %+v, video %+v", g, g.Video)
	}

	// View-only: the token itself denies publishing; data (chat) stays.
	vo := slugOf(link("create", "--room", "town-hall", "--view-only", "--ttl", "2h"))
	status, j = joinLink(t, client, base, vo, "Bob")
	if status != http.StatusOK || !j.ViewOnly {
		t.Fatalf("view-only join: %d %+v", status, j)
	}
	v := verify(t, j.Token, "k", longSecret).Video
	if v.CanPublish == nil || *v.CanPublish || v.GetCanPublish() || !v.GetCanPublishData() || !v.GetCanSubscribe() {
		t.Errorf("view-only grant %+v: want no publish, but data and subscribe", v)
	}

	// E2EE: the key is only in the printed fragment.
	eu := link("create", "--room", "secret-room", "--e2ee")
	before, frag, ok := strings.Cut(eu, "#key=")
	if !ok {
		t.Fatalf("e2ee link %q has no #key=", eu)
	}
	if key, err := base64.RawURLEncoding.DecodeString(frag); err != nil || len(key) != 32 {
		t.Errorf("e2ee key %q: %d bytes, %v; want 32 bytes of base64url", frag, len(key), err)
	}
	es := slugOf(before)
	status, j = joinLink(t, client, base, es, "Carol")
	if status != http.StatusOK || !j.E2EE {
		t.Errorf("e2ee join: %d %+v", status, j)
	}

	// Expiry.
	short := slugOf(link("create", "--room", "standup", "--ttl", "1s"))
	if status, j := joinLink(t, client, base, short, "Dan"); status != http.StatusOK {
		t.Errorf("join before expiry: %d %+v", status, j)
	}
	time.Sleep(1100 * time.Millisecond)
	if status, j := joinLink(t, client, base, short, "Dan"); status != http.StatusGone || j.Error != "link_expired" {
		t.Errorf("join after expiry: %d %+v, want 410 link_expired", status, j)
	}

	// Revocation, by URL (with a fragment) and by slug.
	if out := link("revoke", u+"#key=whatever"); !strings.Contains(out, slug) {
		t.Errorf("revoke printed %q", out)
	}
	link("revoke", vo)
	for _, s := range []string{slug, vo} {
		if status, j := joinLink(t, client, base, s, "Eve"); status != http.StatusGone || j.Error != "link_revoked" {
			t.Errorf("join through a revoked link: %d %+v, want 410 link_revoked", status, j)
		}
	}

	// Tampered and unknown slugs.
	tampered := []byte(es)
	tampered[10] ^= 0x01
	for _, s := range []string{string(tampered), es[:20], "nope"} {
		if status, j := joinLink(t, client, base, s, "Mallory"); status != http.StatusNotFound || j.Error != "link_not_found" {
			t.Errorf("join through %q: %d %+v, want 404 link_not_found", s, status, j)
		}
	}
	if _, _, err := runLink(t, "revoke", string(tampered), "--server", base, "--config", cfgPath); err == nil ||
		!strings.Contains(err.Error(), "link_not_found") {
		t.Errorf("revoke of a tampered slug: %v", err)
	}

	// List, all and by room.
	list := link("list")
	for _, want := range []string{
		slug + "  standup", vo + "  town-hall", es + "  secret-room", short + "  standup",
		"revoked", "expired", "active", "view-only", "e2ee",
	} {
		if !strings.Contains(squeeze(list), want) {
			t.Errorf("list does not show %q:\n%s", want, list)
		}
	}
	if rows := strings.Split(link("list", "--room", "standup"), "\n"); len(rows) != 3 {
		t.Errorf("list --room standup:\n%s", strings.Join(rows, "\n"))
	}

	// The links file: private, and without the E2EE key.
	fi, err := os.Stat(linksPath)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("links file mode %v, want 0600", m)
	}
	data, _ := os.ReadFile(linksPath)
	for _, s := range []string{slug, vo, es, short} {
		if !bytes.Contains(data, []byte(s)) {
			t.Errorf("links file lacks %s", s)
		}
	}
	if bytes.Contains(data, []byte(frag)) || strings.Contains(list, frag) {
		t.Error("the E2EE key reached the server")
	}
	// Slugs are credentials: the log shows only their start.
	if l := log.String(); strings.Contains(l, slug) || strings.Contains(l, longSecret) {
		t.Errorf("log reveals a slug or the secret:\n%s", l)
	}
}

// squeeze collapses runs of spaces (tabwriter padding) to two.
func squeeze(s string) string {
	for strings.Contains(s, "   ") {
		s = strings.ReplaceAll(s, "   ", "  ")
	}
	return s
}

// TestLinkPersistsAcrossRestart: a link made before a restart still works
// after it, and a revoked one stays revoked.
func TestLinkPersistsAcrossRestart(t *testing.T) {
	checkGoroutines(t)
	linksPath := filepath.Join(t.TempDir(), "links.json")
	cfg := writeFile(t, "stoa.yaml", `
port: 0
bind_addresses: [127.0.0.1]
rtc: {udp_port: 0, tcp_port: -1, bind_address: 127.0.0.1}
keys: {k: `+longSecret+`}
links: {path: `+linksPath+`, public_url: "wss://meet.example.org/stoa"}
`)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	var live, gone string
	t.Run("first", func(t *testing.T) {
		addrs, _ := startServe(t, nil, "--config", cfg)
		base := "http://" + addrs[0].String()
		u := mustLink(t, "create", "--room", "r", "--server", base, "--config", cfg)
		// links.public_url decides both the link and the URL guests get.
		live = strings.TrimPrefix(u, "https://meet.example.org/stoa/j/")
		if live == u {
			t.Fatalf("link %q is not under links.public_url", u)
		}
		gone = strings.TrimPrefix(mustLink(t, "create", "--room", "r", "--server", base, "--config", cfg), "https://meet.example.org/stoa/j/")
		mustLink(t, "revoke", gone, "--server", base, "--config", cfg)
		if _, j := joinLink(t, client, base, live, "A"); j.URL != "wss://meet.example.org/stoa" {
			t.Errorf("join url %q", j.URL)
		}
	})
	addrs, _ := startServe(t, nil, "--config", cfg)
	base := "http://" + addrs[0].String()
	if status, j := joinLink(t, client, base, live, "A"); status != http.StatusOK {
		t.Errorf("join after restart: %d %+v", status, j)
	}
	if status, j := joinLink(t, client, base, gone, "A"); status != http.StatusGone || j.Error != "link_revoked" {
		t.Errorf("revoked link after restart: %d %+v", status, j)
	}
}

// TestLinkViewOnlyGuestCannotPublish connects a view-only guest with the
// LiveKit Go SDK: the server tells it it may not publish, and refuses the
// track it tries to publish anyway.
func TestLinkViewOnlyGuestCannotPublish(t *testing.T) {
	base, cfgPath, _, _ := linkServe(t)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	slug := strings.TrimPrefix(mustLink(t, "create", "--room", "webinar", "--view-only", "--server", base, "--config", cfgPath), base+"/j/")
	status, j := joinLink(t, client, base, slug, "Viewer")
	if status != http.StatusOK {
		t.Fatalf("join: %d %+v", status, j)
	}
	room, err := lksdk.ConnectToRoomWithToken(j.URL, j.Token, &lksdk.RoomCallback{}, lksdk.WithAutoSubscribe(false))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(room.Disconnect)
	if p := room.LocalParticipant.Permissions(); p == nil || p.CanPublish || !p.CanSubscribe || !p.CanPublishData {
		t.Errorf("server-side permission %+v: want subscribe and data, no publish", p)
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
		Name: "microphone", Source: livekit.TrackSource_MICROPHONE,
	}); err == nil {
		t.Error("a view-only guest published a track")
	}
}

func TestLinkCreateKeepsE2EEKeyLocal(t *testing.T) {
	var got struct {
		method, path, query, auth string
		header                    http.Header
		body                      []byte
	}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.query = r.Method, r.URL.Path, r.URL.RawQuery
		got.auth, got.header = r.Header.Get("Authorization"), r.Header.Clone()
		got.body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"slug":"S","url":"https://meet.example.org/j/S","room":"r","expires_at":"2030-01-01T00:00:00Z","view_only":false,"e2ee":true,"state":"active"}`)
	}))
	t.Cleanup(fake.Close)

	out := mustLink(t, "create", "--dev", "--room", "r", "--e2ee", "--ttl", "90m", "--server", fake.URL)
	key, ok := strings.CutPrefix(out, "https://meet.example.org/j/S#key=")
	if !ok || len(key) != 43 {
		t.Fatalf("create printed %q, want the server's URL and #key= with 43 characters", out)
	}
	if got.method != http.MethodPost || got.path != "/api/links" || got.query != "" {
		t.Errorf("request %s %s?%s", got.method, got.path, got.query)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	if body["room"] != "r" || body["e2ee"] != true || body["view_only"] != false || body["ttl"] != "1h30m0s" || len(body) != 4 {
		t.Errorf("body %s", got.body)
	}
	if bytes.Contains(got.body, []byte(key)) || strings.Contains(fmt.Sprint(got.header), key) {
		t.Error("the E2EE key was sent to the server")
	}
	g := verify(t, strings.TrimPrefix(got.auth, "Bearer "), devKey, devSecret)
	if g.Video == nil || !g.Video.RoomCreate || !g.Video.RoomList || g.Video.RoomJoin {
		t.Errorf("admin token grant %+v", g.Video)
	}
	if exp := verifyExpiry(t, strings.TrimPrefix(got.auth, "Bearer ")); time.Until(exp) > linkAdminTokenTTL {
		t.Errorf("admin token valid until %v", exp)
	}

	// Two links, two keys.
	out2 := mustLink(t, "create", "--dev", "--room", "r", "--e2ee", "--server", fake.URL)
	if out2 == out {
		t.Error("two E2EE links share a key")
	}
	// Without --e2ee, no fragment.
	if out := mustLink(t, "create", "--dev", "--room", "r", "--server", fake.URL); out != "https://meet.example.org/j/S" {
		t.Errorf("create printed %q", out)
	}
}

func verifyExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	reg, _, err := v.Verify(devSecret)
	if err != nil {
		t.Fatal(err)
	}
	return reg.ExpiresAt.Time
}

func TestLinkRevokeArguments(t *testing.T) {
	var paths []string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.EscapedPath())
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(fake.Close)
	for _, arg := range []string{"AbC_12", "https://meet.example.org/j/AbC_12", "http://x/j/AbC_12#key=k", "http://x/j/AbC_12/?q"} {
		paths = nil
		// Flags may follow the link.
		mustLink(t, "revoke", arg, "--dev", "--server", fake.URL)
		if len(paths) != 1 || paths[0] != "DELETE /api/links/AbC_12" {
			t.Errorf("revoke %q sent %q", arg, paths)
		}
	}
	mustLink(t, "revoke", "--dev", "--server", fake.URL, "--", "AbC_12")
}

func TestLinkServerErrors(t *testing.T) {
	// Nobody listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	_, _, err = runLink(t, "create", "--dev", "--room", "r", "--server", dead)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Stoa at "+dead) || !strings.Contains(err.Error(), "stoa serve") {
		t.Errorf("unreachable server: %v", err)
	}

	// Something else answers.
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	_, _, err = runLink(t, "list", "--dev", "--server", other.URL)
	if err == nil || !strings.Contains(err.Error(), "no meeting-link API") {
		t.Errorf("not Stoa: %v", err)
	}

	// Stoa refuses: the API's message is shown.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"unauthorized","message":"the access token's API key is not configured on this server"}`)
	}))
	t.Cleanup(refusing.Close)
	_, _, err = runLink(t, "create", "--dev", "--room", "r", "--server", refusing.URL)
	if err == nil || !strings.Contains(err.Error(), "API key is not configured") || !strings.Contains(err.Error(), "401") {
		t.Errorf("refused: %v", err)
	}
}

func TestLinkUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"create", "--dev"},
		{"create", "--dev", "--room", " "},
		{"create", "--dev", "--room", "r", "--ttl", "0s"},
		{"create", "--dev", "--room", "r", "extra"},
		{"create", "--dev", "--room", "r", "--server", "ftp://x"},
		{"create", "--room", "r", "--config", writeFile(t, "zero.yaml", "port: 0\nkeys: {k: "+longSecret+"}\n")},
		{"list", "--dev", "positional"},
		{"revoke", "--dev"},
		{"revoke", "--dev", "a", "b"},
		{"revoke", "--dev", "https://x/j/"},
		{"revoke", "--nope", "a"},
	} {
		_, _, err := runLink(t, args...)
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("stoa link %q: exit code %d (%v), want 2", args, code, err)
		}
	}
	if out, _, err := runLink(t, "help"); err != nil || !strings.Contains(out, "stoa link create") {
		t.Errorf("link help: %q, %v", out, err)
	}
	if _, _, err := runLink(t, "create", "--room", "r", "--dev", "--key", "other"); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("unknown --key: %v", err)
	}
}

func TestLinkSlug(t *testing.T) {
	for in, want := range map[string]string{
		"abc":                              "abc",
		" abc\n":                           "abc",
		"https://m.example.org/j/abc":      "abc",
		"https://m.example.org/x/j/abc#k":  "abc",
		"http://127.0.0.1:7880/j/abc?x=1":  "abc",
		"https://m.example.org/j/abc/":     "abc",
		"https://m.example.org/j/#key=abc": "",
	} {
		if got := linkSlug(in); got != want {
			t.Errorf("linkSlug(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"127.0.0.1:7880":           "http://127.0.0.1:7880",
		"http://127.0.0.1:7880/":   "http://127.0.0.1:7880",
		"wss://meet.example.org":   "https://meet.example.org",
		"ws://h:1":                 "http://h:1",
		"https://e.org/stoa/?x#y":  "https://e.org/stoa",
		"ftp://e.org":              "",
		"http://":                  "",
		"https://meet.example.org": "https://meet.example.org",
	} {
		got, err := serverURL(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestLinksConfig(t *testing.T) {
	keyEnv := envMap(map[string]string{"STOA_KEYS": "k: " + longSecret})
	for file, want := range map[string]string{
		"links: {public_url: https://meet.example.org}\n": "links.public_url",
		"links: {public_url: meet.example.org}\n":         "links.public_url",
		"links: {pubic_url: wss://meet.example.org}\n":    `unknown key "links.pubic_url"`,
	} {
		_, err := loadConfig(loadOptions{path: writeFile(t, "stoa.yaml", file), getenv: keyEnv})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want one containing %q", file, err, want)
		}
	}

	// The URL guests get: links.public_url, else matrix.public_url, else
	// the listener's address.
	addr := &net.TCPAddr{IP: net.IPv4zero, Port: 7999}
	for file, want := range map[string]string{
		"":                                    "ws://127.0.0.1:7999",
		"bind_addresses: [10.1.2.3]\n":        "ws://127.0.0.1:7999", // addr, not the config, is what was bound
		"matrix: {public_url: wss://m.org}\n": "wss://m.org",
		"matrix: {public_url: wss://m.org}\nlinks: {public_url: wss://l.org}\n": "wss://l.org",
	} {
		opts := loadOptions{getenv: keyEnv}
		if file != "" {
			opts.path = writeFile(t, "stoa.yaml", file)
		}
		c, err := loadConfig(opts)
		if err != nil {
			t.Fatalf("%q: %v", file, err)
		}
		if got := c.linksAPI(nil, addr, discardLogger()).PublicURL; got != want {
			t.Errorf("%q: public URL %q, want %q", file, got, want)
		}
	}

	// Secrets in sorted key order, for a signer that agrees with the API.
	c, err := loadConfig(loadOptions{getenv: envMap(map[string]string{"STOA_KEYS": "b: bbb, a: aaa"})})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.linksStore().Secrets; len(s) != 2 || s[0] != "aaa" || s[1] != "bbb" {
		t.Errorf("secrets %q", s)
	}
}

func TestServeRefusesBadLinksFile(t *testing.T) {
	bad := writeFile(t, "links.json", "{not json")
	cfg := writeFile(t, "stoa.yaml", "port: 0\nrtc: {udp_port: 0, tcp_port: -1, bind_address: 127.0.0.1}\nbind_addresses: [127.0.0.1]\nlinks: {path: "+bad+"}\n")
	var out syncBuffer
	err := run(context.Background(), []string{"serve", "--dev", "--config", cfg}, system{stdout: &out, stderr: &out, getenv: envMap(nil)})
	if err == nil || !strings.Contains(err.Error(), "meeting links") || !strings.Contains(err.Error(), bad) {
		t.Errorf("serve with a corrupt links file: %v", err)
	}
}
