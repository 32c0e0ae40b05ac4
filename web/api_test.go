package web

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
)

const (
	apiTestKey  = "k1"
	apiTestWS   = "wss://stoa.example.org"
	apiTestPage = "https://stoa.example.org/j/"
)

type apiHarness struct {
	t     *testing.T
	api   *API
	links *Links
	clock *linkClock
}

func newAPIHarness(t *testing.T, cfg APIConfig) *apiHarness {
	t.Helper()
	clk := newLinkClock()
	links := newTestLinks(t, LinksConfig{Now: clk.Now})
	cfg.Links = links
	cfg.Keys = map[string]string{apiTestKey: linkTestSecret, "k2": linkTestSecret2}
	if cfg.PublicURL == "" {
		cfg.PublicURL = apiTestWS
	}
	cfg.Now = clk.Now
	cfg.Logger = slog.New(slog.DiscardHandler)
	a, err := NewAPI(cfg)
	if err != nil {
		t.Fatalf("NewAPI: %v", err)
	}
	return &apiHarness{t: t, api: a, links: links, clock: clk}
}

// adminToken returns a token signed with key k1, valid now on the real clock
// (the verifier reads it).
func adminToken(t *testing.T, g *auth.VideoGrant) string {
	t.Helper()
	return signedToken(t, apiTestKey, linkTestSecret, g, time.Minute)
}

// expiredToken returns an admin token that expired two minutes ago, past
// the verifier's leeway of one minute. auth.AccessToken cannot make one.
func expiredToken(t *testing.T) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss":   apiTestKey,
		"sub":   "admin",
		"nbf":   now.Add(-time.Hour).Unix(),
		"exp":   now.Add(-2 * time.Minute).Unix(),
		"video": map[string]any{"roomCreate": true},
	}).SignedString([]byte(linkTestSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func signedToken(t *testing.T, key, secret string, g *auth.VideoGrant, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.NewAccessToken(key, secret).SetIdentity("admin").SetValidFor(ttl).SetVideoGrant(g).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request to the API and decodes a JSON answer into out, if not
// nil. It returns the recorder.
func (h *apiHarness) do(method, path, token, body string, out any) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.api.ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); w.Code != http.StatusNoContent && ct != "application/json" {
		h.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if cc := w.Header().Get("Cache-Control"); w.Code != http.StatusNoContent && cc != "no-store" {
		h.t.Errorf("%s %s: Cache-Control %q", method, path, cc)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			h.t.Fatalf("%s %s: %d %q: %v", method, path, w.Code, w.Body, err)
		}
	}
	return w
}

// wantError checks an error answer.
func (h *apiHarness) wantError(w *httptest.ResponseRecorder, status int, code string) {
	h.t.Helper()
	var e struct{ Error, Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		h.t.Fatalf("error body %q: %v", w.Body, err)
	}
	if w.Code != status || e.Error != code || e.Message == "" {
		h.t.Errorf("answer %d %+v, want %d %q with a message", w.Code, e, status, code)
	}
}

func (h *apiHarness) create(token, body string) LinkInfo {
	h.t.Helper()
	var l LinkInfo
	if w := h.do("POST", "/api/links", token, body, &l); w.Code != http.StatusCreated {
		h.t.Fatalf("create %s: %d %s", body, w.Code, w.Body)
	}
	return l
}

func TestAPICreate(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	tok := adminToken(t, &auth.VideoGrant{RoomCreate: true})
	var l LinkInfo
	w := h.do("POST", "/api/links", tok, `{"room":"standup","ttl":"2h","view_only":true,"e2ee":true}`, &l)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	now := h.clock.Now()
	if l.Room != "standup" || !l.ViewOnly || !l.E2EE || l.RequireApproval || l.State != "active" ||
		!l.CreatedAt.Equal(now) || !l.ExpiresAt.Equal(now.Add(2*time.Hour)) || l.URL != apiTestPage+l.Slug {
		t.Errorf("created %+v", l)
	}
	if loc := w.Header().Get("Location"); loc != "/api/links/"+l.Slug {
		t.Errorf("Location %q", loc)
	}
	if got, err := h.links.Lookup(l.Slug); err != nil || got.Room != "standup" {
		t.Errorf("stored %+v, %v", got, err)
	}
	def := h.create(tok, `{"room":"r"}`)
	if d := def.ExpiresAt.Sub(def.CreatedAt); d != defaultLinkTTL {
		t.Errorf("default ttl %v", d)
	}
	if d := h.create(tok, `{"room":"r","ttl_seconds":90}`); d.ExpiresAt.Sub(d.CreatedAt) != 90*time.Second {
		t.Errorf("ttl_seconds 90 gave %v", d.ExpiresAt.Sub(d.CreatedAt))
	}

	for _, body := range []string{
		``, `[]`, `{"room":"r"} {}`, `{"room":"r","bogus":1}`, `{"room":""}`, `{"room":"a\u0000b"}`,
		`{"room":"r","ttl":"soon"}`, `{"room":"r","ttl":"0s"}`, `{"room":"r","ttl":"-1h"}`, `{"room":"r","ttl":"500ms"}`,
		`{"room":"r","ttl":"8784h1s"}`, `{"room":"r","ttl_seconds":0}`, `{"room":"r","ttl_seconds":-5}`,
		`{"room":"r","ttl_seconds":99999999999999}`, `{"room":"r","ttl":"1h","ttl_seconds":60}`,
		`{"room":"r","require_approval":true}`, `{"room":"` + strings.Repeat("x", 300) + `"}`,
		`{"room":"` + strings.Repeat("x", maxAPIBody) + `"}`,
	} {
		w := h.do("POST", "/api/links", tok, body, nil)
		h.wantError(w, http.StatusBadRequest, codeBadRequest)
	}
}

func TestAPIAdminAuth(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	body := `{"room":"standup"}`
	for name, c := range map[string]struct {
		header string
		status int
		code   string
	}{
		"none":          {"", http.StatusUnauthorized, codeUnauthorized},
		"basic":         {"Basic YWI6Y2Q=", http.StatusUnauthorized, codeUnauthorized},
		"empty bearer":  {"Bearer ", http.StatusUnauthorized, codeUnauthorized},
		"garbage":       {"Bearer not.a.jwt", http.StatusUnauthorized, codeUnauthorized},
		"wrong secret":  {"Bearer " + signedToken(t, apiTestKey, linkTestSecret2, &auth.VideoGrant{RoomCreate: true}, time.Minute), http.StatusUnauthorized, codeUnauthorized},
		"unknown key":   {"Bearer " + signedToken(t, "nokey", linkTestSecret, &auth.VideoGrant{RoomCreate: true}, time.Minute), http.StatusUnauthorized, codeUnauthorized},
		"expired":       {"Bearer " + expiredToken(t), http.StatusUnauthorized, codeUnauthorized},
		"participant":   {"Bearer " + adminToken(t, &auth.VideoGrant{RoomJoin: true, Room: "standup"}), http.StatusForbidden, codeForbidden},
		"list only":     {"Bearer " + adminToken(t, &auth.VideoGrant{RoomList: true}), http.StatusForbidden, codeForbidden},
		"other room":    {"Bearer " + adminToken(t, &auth.VideoGrant{RoomAdmin: true, Room: "other"}), http.StatusForbidden, codeForbidden},
		"room admin":    {"Bearer " + adminToken(t, &auth.VideoGrant{RoomAdmin: true, Room: "standup"}), http.StatusCreated, ""},
		"room create":   {"Bearer " + adminToken(t, &auth.VideoGrant{RoomCreate: true}), http.StatusCreated, ""},
		"second key":    {"Bearer " + signedToken(t, "k2", linkTestSecret2, &auth.VideoGrant{RoomCreate: true}, time.Minute), http.StatusCreated, ""},
		"bearer casing": {"bearer " + adminToken(t, &auth.VideoGrant{RoomCreate: true}), http.StatusCreated, ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := &apiHarness{t: t, api: h.api, links: h.links, clock: h.clock}
			r := httptest.NewRequest("POST", "/api/links", strings.NewReader(body))
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			w := httptest.NewRecorder()
			h.api.ServeHTTP(w, r)
			if c.code == "" {
				if w.Code != c.status {
					t.Errorf("%d %s, want %d", w.Code, w.Body, c.status)
				}
				return
			}
			h.wantError(w, c.status, c.code)
		})
	}
}

func TestAPIList(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	creator := adminToken(t, &auth.VideoGrant{RoomCreate: true})
	a := h.create(creator, `{"room":"alpha","ttl":"1h"}`)
	h.clock.Advance(time.Second)
	b := h.create(creator, `{"room":"beta","ttl":"2h"}`)
	h.clock.Advance(time.Second)
	c := h.create(creator, `{"room":"alpha","ttl":"3h"}`)
	if w := h.do("DELETE", "/api/links/"+c.Slug, creator, "", nil); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	h.clock.Advance(90 * time.Minute)

	slugs := func(token, query string) []string {
		t.Helper()
		var out listResponse
		if w := h.do("GET", "/api/links"+query, token, "", &out); w.Code != http.StatusOK {
			t.Fatalf("list%s: %d %s", query, w.Code, w.Body)
		}
		var s []string
		for _, l := range out.Links {
			s = append(s, l.Room+":"+l.State)
			if l.URL != apiTestPage+l.Slug {
				t.Errorf("url %q", l.URL)
			}
		}
		return s
	}
	lister := adminToken(t, &auth.VideoGrant{RoomList: true})
	if got := strings.Join(slugs(lister, ""), " "); got != "alpha:expired beta:active alpha:revoked" {
		t.Errorf("list = %s", got)
	}
	if got := strings.Join(slugs(lister, "?room=beta"), " "); got != "beta:active" {
		t.Errorf("list ?room=beta = %s", got)
	}
	if got := strings.Join(slugs(lister, "?room=none"), " "); got != "" {
		t.Errorf("list ?room=none = %s", got)
	}
	alphaAdmin := adminToken(t, &auth.VideoGrant{RoomAdmin: true, Room: "alpha"})
	for _, q := range []string{"", "?room=alpha"} {
		if got := strings.Join(slugs(alphaAdmin, q), " "); got != "alpha:expired alpha:revoked" {
			t.Errorf("room admin list%s = %s", q, got)
		}
	}
	h.wantError(h.do("GET", "/api/links?room=beta", alphaAdmin, "", nil), http.StatusForbidden, codeForbidden)
	h.wantError(h.do("GET", "/api/links", creator, "", nil), http.StatusForbidden, codeForbidden)
	h.wantError(h.do("GET", "/api/links", "", "", nil), http.StatusUnauthorized, codeUnauthorized)
	var empty map[string]any
	h.do("GET", "/api/links?room=none", lister, "", &empty)
	if l, ok := empty["links"].([]any); !ok || len(l) != 0 {
		t.Errorf("empty list = %v, want links: []", empty)
	}
	_, _ = a, b
}

func TestAPIRevoke(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	creator := adminToken(t, &auth.VideoGrant{RoomCreate: true})
	l := h.create(creator, `{"room":"alpha"}`)
	other := h.create(creator, `{"room":"alpha"}`)

	h.wantError(h.do("DELETE", "/api/links/"+l.Slug, "", "", nil), http.StatusUnauthorized, codeUnauthorized)
	h.wantError(h.do("DELETE", "/api/links/"+l.Slug, adminToken(t, &auth.VideoGrant{RoomAdmin: true, Room: "beta"}), "", nil),
		http.StatusForbidden, codeForbidden)
	h.wantError(h.do("DELETE", "/api/links/"+h.links.newSlug(), creator, "", nil), http.StatusNotFound, codeLinkNotFound)
	h.wantError(h.do("DELETE", "/api/links/nonsense", creator, "", nil), http.StatusNotFound, codeLinkNotFound)

	if w := h.do("DELETE", "/api/links/"+l.Slug, adminToken(t, &auth.VideoGrant{RoomAdmin: true, Room: "alpha"}), "", nil); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("revoke: %d %q", w.Code, w.Body)
	}
	// Idempotent.
	if w := h.do("DELETE", "/api/links/"+l.Slug, creator, "", nil); w.Code != http.StatusNoContent {
		t.Errorf("second revoke: %d %s", w.Code, w.Body)
	}
	h.wantError(h.do("POST", "/api/links/"+l.Slug+"/join", "", `{"name":"Ann"}`, nil), http.StatusGone, codeLinkRevoked)
	h.wantError(h.do("GET", "/api/links/"+l.Slug, "", "", nil), http.StatusGone, codeLinkRevoked)
	if w := h.do("POST", "/api/links/"+other.Slug+"/join", "", `{"name":"Ann"}`, nil); w.Code != http.StatusOK {
		t.Errorf("join through another link: %d %s", w.Code, w.Body)
	}
}

// guestClaims verifies a guest token as the signalling server does and
// returns its claims and expiry.
func guestClaims(t *testing.T, tok string) (*auth.ClaimGrants, time.Time) {
	t.Helper()
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if v.APIKey() != apiTestKey {
		t.Errorf("guest token signed with %q, want the first key %q", v.APIKey(), apiTestKey)
	}
	reg, c, err := v.Verify(linkTestSecret)
	if err != nil {
		t.Fatalf("guest token does not verify: %v", err)
	}
	return c, reg.ExpiresAt.Time
}

func TestAPIJoin(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	creator := adminToken(t, &auth.VideoGrant{RoomCreate: true})
	for _, viewOnly := range []bool{false, true} {
		body := `{"room":"standup","e2ee":true,"view_only":false}`
		if viewOnly {
			body = `{"room":"standup","view_only":true}`
		}
		l := h.create(creator, body)

		var info infoResponse
		if w := h.do("GET", "/api/links/"+l.Slug, "", "", &info); w.Code != http.StatusOK {
			t.Fatalf("info: %d %s", w.Code, w.Body)
		}
		if info.Room != "standup" || info.ViewOnly != viewOnly || info.E2EE == viewOnly || !info.ExpiresAt.Equal(l.ExpiresAt) {
			t.Errorf("info = %+v", info)
		}

		var j joinResponse
		if w := h.do("POST", "/api/links/"+l.Slug+"/join", "", `{"name":"  Zoë 👩‍💻 "}`, &j); w.Code != http.StatusOK {
			t.Fatalf("join: %d %s", w.Code, w.Body)
		}
		if j.URL != apiTestWS || j.Room != "standup" || j.Name != "Zoë 👩‍💻" || j.ViewOnly != viewOnly ||
			j.E2EE == viewOnly || !strings.HasPrefix(j.Identity, "guest-") || len(j.Identity) != len("guest-")+16 {
			t.Errorf("join = %+v", j)
		}
		start := time.Now()
		c, exp := guestClaims(t, j.Token)
		v := c.Video
		if c.Identity != j.Identity || c.Name != "Zoë 👩‍💻" || v == nil || !v.RoomJoin || v.Room != "standup" ||
			v.RoomAdmin || v.RoomCreate || v.RoomList || v.Hidden {
			t.Fatalf("claims = %+v, video %+v", c, v)
		}
		if v.CanPublish == nil || *v.CanPublish == viewOnly || v.GetCanPublish() == viewOnly {
			t.Errorf("canPublish = %v for view_only %v", v.CanPublish, viewOnly)
		}
		if !v.GetCanSubscribe() || v.CanPublishData == nil || !*v.CanPublishData || !v.GetCanUpdateOwnMetadata() {
			t.Errorf("grant %+v: want subscribe, publish data and update own metadata", v)
		}
		if d := exp.Sub(start); d > guestTokenTTL || d < guestTokenTTL-time.Minute {
			t.Errorf("guest token valid for %v, want about %v", d, guestTokenTTL)
		}
		var j2 joinResponse
		h.do("POST", "/api/links/"+l.Slug+"/join", "", `{"name":"Zoë"}`, &j2)
		if j2.Identity == j.Identity {
			t.Errorf("two guests got identity %q", j.Identity)
		}
	}

	// A link about to expire gives a token that lasts no longer than it,
	// with a floor that leaves time to connect.
	short := h.create(creator, `{"room":"r","ttl":"10m"}`)
	var j joinResponse
	h.do("POST", "/api/links/"+short.Slug+"/join", "", `{"name":"A"}`, &j)
	if _, exp := guestClaims(t, j.Token); exp.Sub(time.Now()) > 10*time.Minute+time.Second {
		t.Errorf("guest token of a 10m link valid until %v", exp)
	}
	h.clock.Advance(10*time.Minute - time.Second)
	h.do("POST", "/api/links/"+short.Slug+"/join", "", `{"name":"A"}`, &j)
	if _, exp := guestClaims(t, j.Token); exp.Sub(time.Now()) < minGuestTokenTTL-5*time.Second {
		t.Errorf("guest token of a link about to expire valid until %v", exp)
	}
	h.clock.Advance(time.Second)
	h.wantError(h.do("POST", "/api/links/"+short.Slug+"/join", "", `{"name":"A"}`, nil), http.StatusGone, codeLinkExpired)
	h.wantError(h.do("GET", "/api/links/"+short.Slug, "", "", nil), http.StatusGone, codeLinkExpired)
}

func TestAPIJoinRefusals(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	l := h.create(adminToken(t, &auth.VideoGrant{RoomCreate: true}), `{"room":"r"}`)
	join := "/api/links/" + l.Slug + "/join"
	for _, body := range []string{
		``, `{}`, `{"name":""}`, `{"name":"   "}`, `{"name":"a\u0007b"}`, `{"name":"a\nb"}`,
		`{"name":"evil\u202egnp.exe"}`, `{"name":"` + strings.Repeat("é", maxGuestNameLen+1) + `"}`,
		`{"name":"a","room":"other"}`, `{"name":1}`, `"a"`,
	} {
		h.wantError(h.do("POST", join, "", body, nil), http.StatusBadRequest, codeBadRequest)
	}
	if w := h.do("POST", join, "", `{"name":"`+strings.Repeat("é", maxGuestNameLen)+`"}`, nil); w.Code != http.StatusOK {
		t.Errorf("64-rune name: %d %s", w.Code, w.Body)
	}

	tampered := []byte(l.Slug)
	tampered[5] ^= 1
	for _, slug := range []string{string(tampered), l.Slug[:31], "x", h.links.newSlug(), l.Slug + "x"} {
		h.wantError(h.do("POST", "/api/links/"+slug+"/join", "", `{"name":"A"}`, nil), http.StatusNotFound, codeLinkNotFound)
		h.wantError(h.do("GET", "/api/links/"+slug, "", "", nil), http.StatusNotFound, codeLinkNotFound)
	}
	// A bad slug is refused before the body is read.
	h.wantError(h.do("POST", "/api/links/"+string(tampered)+"/join", "", `garbage`, nil), http.StatusNotFound, codeLinkNotFound)
}

func TestAPIJoinRateLimit(t *testing.T) {
	h := newAPIHarness(t, APIConfig{JoinBurst: 3, JoinInterval: 2 * time.Second})
	creator := adminToken(t, &auth.VideoGrant{RoomCreate: true})
	l := h.create(creator, `{"room":"r"}`)
	other := h.create(creator, `{"room":"r"}`)
	join := func(slug string) *httptest.ResponseRecorder {
		t.Helper()
		return h.do("POST", "/api/links/"+slug+"/join", "", `{"name":"A"}`, nil)
	}
	for i := range 3 {
		if w := join(l.Slug); w.Code != http.StatusOK {
			t.Fatalf("join %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := join(l.Slug)
	h.wantError(w, http.StatusTooManyRequests, codeRateLimited)
	if ra := w.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	// Bad requests do not use up the bucket, and other links have their own.
	h.do("POST", "/api/links/"+l.Slug+"/join", "", `{"name":""}`, nil)
	if w := join(other.Slug); w.Code != http.StatusOK {
		t.Errorf("another link: %d %s", w.Code, w.Body)
	}
	h.clock.Advance(time.Second)
	h.wantError(join(l.Slug), http.StatusTooManyRequests, codeRateLimited)
	h.clock.Advance(time.Second)
	if w := join(l.Slug); w.Code != http.StatusOK {
		t.Errorf("after refill: %d %s", w.Code, w.Body)
	}
	h.wantError(join(l.Slug), http.StatusTooManyRequests, codeRateLimited)
}

func TestJoinLimiterForgets(t *testing.T) {
	clk := newLinkClock()
	l := joinLimiter{burst: 2, interval: time.Second, buckets: map[string]*joinBucket{}}
	for i := range maxJoinBuckets {
		l.allow(string(rune(i)), clk.Now())
	}
	if _, ok := l.allow("busy", clk.Now()); !ok {
		t.Fatal("refused a first join")
	}
	clk.Advance(time.Second)
	l.allow("new", clk.Now())
	if n := len(l.buckets); n > 3 {
		t.Errorf("%d buckets kept, want the refilled ones forgotten", n)
	}
}

func TestAPIFallback(t *testing.T) {
	h := newAPIHarness(t, APIConfig{})
	slug := h.links.newSlug()
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"PUT", "/api/links", http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{"PATCH", "/api/links/" + slug, http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{"GET", "/api/links/" + slug + "/join", http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{"GET", "/api/links/", http.StatusNotFound, codeNotFound},
		{"GET", "/api/links/" + slug + "/other", http.StatusNotFound, codeNotFound},
		{"POST", "/api/links/a/b/c", http.StatusNotFound, codeNotFound},
	} {
		h.wantError(h.do(c.method, c.path, "", "", nil), c.status, c.code)
	}
}

func TestPageBase(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:7880":          "http://127.0.0.1:7880",
		"wss://stoa.example.org/":      "https://stoa.example.org",
		"wss://example.org/stoa":       "https://example.org/stoa",
		"ws://[::1]:7880":              "http://[::1]:7880",
		"https://stoa.example.org":     "",
		"stoa.example.org":             "",
		"wss://":                       "",
		"wss://stoa.example.org/?a=b":  "",
		"wss://u:p@stoa.example.org":   "",
		"wss://stoa.example.org/#frag": "",
	} {
		got, err := PageBase(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("PageBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NewAPI(APIConfig{Links: newTestLinks(t, LinksConfig{}), Keys: map[string]string{"k": "s"}, PublicURL: "http://x"}); err == nil {
		t.Error("NewAPI accepted an http public URL")
	}
	if _, err := NewAPI(APIConfig{Links: newTestLinks(t, LinksConfig{}), PublicURL: apiTestWS}); err == nil {
		t.Error("NewAPI accepted no keys")
	}
	if _, err := NewAPI(APIConfig{Keys: map[string]string{"k": "s"}, PublicURL: apiTestWS}); err == nil {
		t.Error("NewAPI accepted no store")
	}
}
