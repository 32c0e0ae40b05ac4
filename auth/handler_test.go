package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Names of the unit tests' world: users of example.org, whose fake
// homeserver answers OpenID userinfo requests.
const (
	testServer = "example.org"
	testKey    = "APIkey"
	testSecret = "a-secret-of-at-least-32-characters!"
	testURL    = "wss://stoa.example.org"
	alice      = id.UserID("@alice:example.org")
	aliceToken = "alice-openid-token-1234"
	testRoom   = id.RoomID("!room:example.org")
	testMember = "7b1a6c2e-0f4d-4c1e-9a55-2f8e3c4d5e6f"
)

// fakeHomeserver answers GET /_matrix/federation/v1/openid/userinfo as
// Dendrite does.
type fakeHomeserver struct {
	srv *httptest.Server

	mu     sync.Mutex // guards the following fields
	tokens map[string]string
	hits   int
}

func newFakeHomeserver(t *testing.T) *fakeHomeserver {
	t.Helper()
	hs := &fakeHomeserver{tokens: map[string]string{}}
	hs.srv = httptest.NewServer(http.HandlerFunc(hs.serve))
	t.Cleanup(hs.srv.Close)
	return hs
}

func (hs *fakeHomeserver) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != userInfoPath {
		http.NotFound(w, r)
		return
	}
	hs.mu.Lock()
	hs.hits++
	sub, ok := hs.tokens[r.URL.Query().Get("access_token")]
	hs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"Access Token unknown"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"sub": sub})
}

// addToken makes token an OpenID token of sub.
func (hs *fakeHomeserver) addToken(token, sub string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.tokens[token] = sub
}

func (hs *fakeHomeserver) requests() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.hits
}

// fakeView is a RoomView of funcs. A nil powerLevels gives level 0 and
// kick level 50.
type fakeView struct {
	membership  func(room id.RoomID, user id.UserID) (event.Membership, error)
	powerLevels func(room id.RoomID, user id.UserID) (level, kick int, err error)
}

func (v fakeView) Membership(_ context.Context, room id.RoomID, user id.UserID) (event.Membership, error) {
	return v.membership(room, user)
}

func (v fakeView) PowerLevels(_ context.Context, room id.RoomID, user id.UserID) (int, int, error) {
	if v.powerLevels == nil {
		return 0, 50, nil
	}
	return v.powerLevels(room, user)
}

// joinedView says every user is joined to every room.
func joinedView() fakeView {
	return fakeView{membership: func(id.RoomID, id.UserID) (event.Membership, error) { return event.MembershipJoin, nil }}
}

// fakeSFU records the rooms opened.
type fakeSFU struct {
	mu        sync.Mutex // guards the following fields
	rooms     map[string]bool
	created   []string
	createErr error
}

func newFakeSFU(rooms ...string) *fakeSFU {
	f := &fakeSFU{rooms: map[string]bool{}}
	for _, r := range rooms {
		f.rooms[r] = true
	}
	return f
}

func (f *fakeSFU) RoomExists(room string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[room]
}

func (f *fakeSFU) CreateRoom(room string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return f.createErr
	}
	f.rooms[room] = true
	f.created = append(f.created, room)
	return nil
}

func (f *fakeSFU) Participants(string) []string { return nil }

func (f *fakeSFU) RemoveParticipant(string, string, string) error { return nil }

func (f *fakeSFU) createdRooms() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.created...)
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestService returns a Service with cfg's blanks filled in, view as
// its RoomView (nil for none) and sfu as its SFU.
func newTestService(t *testing.T, cfg Config, view RoomView, sfu SFU) *Service {
	t.Helper()
	if cfg.PublicURL == "" {
		cfg.PublicURL = testURL
	}
	if cfg.APIKey == "" {
		cfg.APIKey, cfg.APISecret = testKey, testSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	s, err := New(cfg, sfu)
	if err != nil {
		t.Fatal(err)
	}
	s.view = view
	return s
}

// withHomeserver points the OpenID verification of testServer at hs.
func withHomeserver(cfg Config, hs *fakeHomeserver) Config {
	cfg.OpenIDBaseURLs = map[string]string{testServer: hs.srv.URL}
	return cfg
}

// do sends a request to s: body nil sends none, a string is sent as is,
// anything else as JSON.
func do(t *testing.T, s *Service, method, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		r = strings.NewReader(mustJSON(t, b))
	}
	req := httptest.NewRequest(method, path, r)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// getTokenBody is a /get_token body as Element Call sends it.
func getTokenBody(token string, room id.RoomID, user id.UserID, device, member string) map[string]any {
	return map[string]any{
		"room_id": room,
		"slot_id": "m.call#ROOM",
		"openid_token": map[string]any{
			"access_token": token, "token_type": "Bearer", "matrix_server_name": user.Homeserver(), "expires_in": 3600,
		},
		"member": map[string]any{"id": member, "claimed_user_id": user, "claimed_device_id": device},
	}
}

// sfuGetBody is a /sfu/get body as Element Call sends it.
func sfuGetBody(token string, room id.RoomID, server, device string) map[string]any {
	return map[string]any{
		"room": room,
		"openid_token": map[string]any{
			"access_token": token, "token_type": "Bearer", "matrix_server_name": server, "expires_in": 3600,
		},
		"device_id": device,
	}
}

// wantToken checks that w is a 200 {"url","jwt"} whose token is valid and
// names identity in alias, with roomAdmin as admin.
func wantToken(t *testing.T, w *httptest.ResponseRecorder, url, identity, alias string, admin bool) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp struct {
		URL string `json:"url"`
		JWT string `json:"jwt"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if resp.URL != url {
		t.Errorf("url %q, want %q", resp.URL, url)
	}
	claims, grants := verifyJWT(t, resp.JWT, testKey, testSecret)
	if claims.Subject != identity || grants.Identity != identity {
		t.Errorf("identity %q (sub %q), want %q", grants.Identity, claims.Subject, identity)
	}
	if v := grants.Video; v == nil || v.Room != alias || !v.RoomJoin || v.RoomAdmin != admin {
		t.Errorf("video grant %+v, want room %q, admin %v", v, alias, admin)
	}
	if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != time.Hour {
		t.Errorf("validity %v, want the default 1h", got)
	}
	if !atobSafe(resp.JWT) {
		t.Errorf("payload not atob-safe: %s", resp.JWT)
	}
}

// wantError checks that w is a Matrix error.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, errcode, msg string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if body["errcode"] != errcode || (msg != "" && body["error"] != msg) {
		t.Errorf("body %v, want errcode %s, error %q", body, errcode, msg)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin %q on an error", got)
	}
}

func TestGetToken(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	sfu := newFakeSFU()
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), sfu)

	w := do(t, s, http.MethodPost, "/get_token", getTokenBody(aliceToken, testRoom, alice, "ALICEDEV", testMember))
	identity := memberIdentity(alice, "ALICEDEV", testMember)
	alias := roomAlias(testRoom, roomSlot)
	wantToken(t, w, testURL, identity, alias, false)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if got := sfu.createdRooms(); len(got) != 1 || got[0] != alias {
		t.Errorf("rooms created %q, want [%s]", got, alias)
	}
	k, ok := s.tickets.get(alias, identity)
	want := Ticket{Alias: alias, Identity: identity, Room: testRoom, SlotID: roomSlot, User: alice, Device: "ALICEDEV", MemberID: testMember}
	if !ok || k != want {
		t.Errorf("ticket %+v, want %+v", k, want)
	}
}

func TestSFUGet(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())

	w := do(t, s, http.MethodPost, "/sfu/get", sfuGetBody(aliceToken, testRoom, testServer, "ALICEDEV"))
	identity := "@alice:example.org:ALICEDEV"
	alias := roomAlias(testRoom, roomSlot)
	wantToken(t, w, testURL, identity, alias, false)
	k, ok := s.tickets.get(alias, identity)
	want := Ticket{Alias: alias, Identity: identity, Room: testRoom, SlotID: roomSlot, User: alice, Device: "ALICEDEV"}
	if !ok || k != want {
		t.Errorf("ticket %+v, want %+v", k, want)
	}

	// No device: not validated by lk-jwt-service either.
	w = do(t, s, http.MethodPost, "/sfu/get", sfuGetBody(aliceToken, testRoom, testServer, ""))
	wantToken(t, w, testURL, "@alice:example.org:", alias, false)
}

// TestSFUGetNewBody: like lk-jwt-service v0.5.0, /sfu/get takes a
// /get_token body too.
func TestSFUGetNewBody(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())
	w := do(t, s, http.MethodPost, "/sfu/get", getTokenBody(aliceToken, testRoom, alice, "DEV", testMember))
	wantToken(t, w, testURL, memberIdentity(alice, "DEV", testMember), roomAlias(testRoom, roomSlot), false)
}

func TestDelayFieldsRecorded(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())
	alias := roomAlias(testRoom, roomSlot)

	body := getTokenBody(aliceToken, testRoom, alice, "DEV", testMember)
	body["delay_id"], body["delay_timeout"], body["delay_cs_api_url"] = "syd_abc", 10000, "https://ignored.example"
	wantToken(t, do(t, s, http.MethodPost, "/get_token", body), testURL, memberIdentity(alice, "DEV", testMember), alias, false)
	if k, _ := s.tickets.get(alias, memberIdentity(alice, "DEV", testMember)); k.DelayID != "syd_abc" || k.DelayTimeout != 10*time.Second {
		t.Errorf("/get_token ticket delay %q %v", k.DelayID, k.DelayTimeout)
	}

	legacy := sfuGetBody(aliceToken, testRoom, testServer, "DEV")
	legacy["delay_id"], legacy["delay_timeout"] = "syd_def", 1e15
	wantToken(t, do(t, s, http.MethodPost, "/sfu/get", legacy), testURL, "@alice:example.org:DEV", alias, false)
	if k, _ := s.tickets.get(alias, "@alice:example.org:DEV"); k.DelayID != "syd_def" || k.DelayTimeout != maxDelayTimeout {
		t.Errorf("/sfu/get ticket delay %q %v", k.DelayID, k.DelayTimeout)
	}
}

func TestUnauthorized(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	hs.addToken("evil-token", "@mallory:evil.org")
	hs.addToken("bad-sub", "alice")
	hs.addToken("empty-localpart", "@:example.org")
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())
	const msg = "The request could not be authorised."

	tests := []struct {
		name string
		path string
		body any
	}{
		{"bad token get_token", "/get_token", getTokenBody("nope", testRoom, alice, "DEV", testMember)},
		{"bad token sfu/get", "/sfu/get", sfuGetBody("nope", testRoom, testServer, "DEV")},
		{"sub of another server", "/sfu/get", sfuGetBody("evil-token", testRoom, testServer, "DEV")},
		{"sub not a user ID", "/sfu/get", sfuGetBody("bad-sub", testRoom, testServer, "DEV")},
		{"empty localpart", "/sfu/get", sfuGetBody("empty-localpart", testRoom, testServer, "DEV")},
		{"claimed user mismatch", "/get_token", getTokenBody(aliceToken, testRoom, "@bob:example.org", "DEV", testMember)},
		{"server not a server name", "/sfu/get", sfuGetBody(aliceToken, testRoom, "example.org/x?", "DEV")},
		{"server unreachable", "/sfu/get", sfuGetBody(aliceToken, testRoom, closedAddr(t), "DEV")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, do(t, s, http.MethodPost, tt.path, tt.body), http.StatusUnauthorized, "M_UNAUTHORIZED", msg)
		})
	}
	if n := len(s.tickets.forRoom(testRoom)); n != 0 {
		t.Errorf("%d tickets recorded for refused requests", n)
	}
}

// TestBadRequests checks lk-jwt-service's validation order and messages.
func TestBadRequests(t *testing.T) {
	hs := newFakeHomeserver(t)
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())

	full := func() map[string]any { return getTokenBody(aliceToken, testRoom, alice, "DEV", testMember) }
	edit := func(f func(m map[string]any)) map[string]any { m := full(); f(m); return m }
	legacy := func(f func(m map[string]any)) map[string]any {
		m := sfuGetBody(aliceToken, testRoom, testServer, "DEV")
		f(m)
		return m
	}
	tests := []struct {
		name, path string
		body       any
		errcode    string
		msg        string
	}{
		{"not JSON", "/get_token", "{", "M_NOT_JSON", "Error reading request"},
		{"empty", "/get_token", "", "M_NOT_JSON", "Error reading request"},
		{"wrong type", "/get_token", `{"room_id": 5}`, "M_NOT_JSON", "Error reading request"},
		{"legacy not JSON", "/sfu/get", "nope", "M_NOT_JSON", "Error reading request"},
		{"null", "/get_token", "null", "M_BAD_JSON", msgMissingRoomSlot},
		{"no room_id", "/get_token", edit(func(m map[string]any) { delete(m, "room_id") }), "M_BAD_JSON", msgMissingRoomSlot},
		{"no slot_id", "/get_token", edit(func(m map[string]any) { m["slot_id"] = "" }), "M_BAD_JSON", msgMissingRoomSlot},
		{"room before member", "/get_token", edit(func(m map[string]any) { delete(m, "room_id"); delete(m, "member") }), "M_BAD_JSON", msgMissingRoomSlot},
		{"no member", "/get_token", edit(func(m map[string]any) { delete(m, "member") }), "M_BAD_JSON", msgMissingMember},
		{"no member id", "/get_token", edit(func(m map[string]any) { m["member"].(map[string]any)["id"] = "" }), "M_BAD_JSON", msgMissingMember},
		{"no claimed device", "/get_token", edit(func(m map[string]any) { delete(m["member"].(map[string]any), "claimed_device_id") }), "M_BAD_JSON", msgMissingMember},
		{"member before openid", "/get_token", edit(func(m map[string]any) { delete(m, "member"); delete(m, "openid_token") }), "M_BAD_JSON", msgMissingMember},
		{"no openid", "/get_token", edit(func(m map[string]any) { delete(m, "openid_token") }), "M_BAD_JSON", msgMissingOpenID},
		{"no server name", "/get_token", edit(func(m map[string]any) { delete(m["openid_token"].(map[string]any), "matrix_server_name") }), "M_BAD_JSON", msgMissingOpenID},
		{"openid before delay", "/get_token", edit(func(m map[string]any) { delete(m, "openid_token"); m["delay_id"] = "x" }), "M_BAD_JSON", msgMissingOpenID},
		{"delay id alone", "/get_token", edit(func(m map[string]any) { m["delay_id"] = "x" }), "M_BAD_JSON", msgMissingDelay},
		{"delay timeout alone", "/get_token", edit(func(m map[string]any) { m["delay_timeout"] = 5 }), "M_BAD_JSON", msgMissingDelay},
		{"room not a room ID", "/get_token", edit(func(m map[string]any) { m["room_id"] = "#alias:example.org" }), "M_BAD_JSON", "Invalid room ID"},
		{"legacy no room", "/sfu/get", legacy(func(m map[string]any) { delete(m, "room") }), "M_BAD_JSON", msgLegacyMissingRoom},
		{"legacy no token", "/sfu/get", legacy(func(m map[string]any) { m["openid_token"] = map[string]any{"matrix_server_name": testServer} }), "M_BAD_JSON", msgLegacyMissingOIDC},
		{"legacy delay id alone", "/sfu/get", legacy(func(m map[string]any) { m["delay_id"] = "x" }), "M_BAD_JSON", msgMissingDelay},
		{"legacy device not ASCII", "/sfu/get", legacy(func(m map[string]any) { m["device_id"] = "DÉVICE" }), "M_BAD_JSON", "Invalid device_id"},
		{"legacy room not a room ID", "/sfu/get", legacy(func(m map[string]any) { m["room"] = "room" }), "M_BAD_JSON", "Invalid room ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, do(t, s, http.MethodPost, tt.path, tt.body), http.StatusBadRequest, tt.errcode, tt.msg)
		})
	}
	if n := hs.requests(); n != 0 {
		t.Errorf("%d userinfo requests for invalid bodies", n)
	}

	big := `{"room":"` + strings.Repeat("x", maxBodySize) + `"}`
	wantError(t, do(t, s, http.MethodPost, "/sfu/get", big), http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "")
}

// TestUnknownFieldsAccepted: unlike lk-jwt-service, fields Stoa does not
// know are ignored (MATRIXRTC.md §3.1).
func TestUnknownFieldsAccepted(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())

	body := getTokenBody(aliceToken, testRoom, alice, "DEV", testMember)
	body["future_field"] = map[string]any{"x": []int{1, 2}}
	body["openid_token"].(map[string]any)["expires_in"] = 1795779404 // Dendrite's absolute time
	body["openid_token"].(map[string]any)["extra"] = true
	body["member"].(map[string]any)["extra"] = "x"
	wantToken(t, do(t, s, http.MethodPost, "/get_token", body), testURL, memberIdentity(alice, "DEV", testMember), roomAlias(testRoom, roomSlot), false)

	legacy := sfuGetBody(aliceToken, testRoom, testServer, "DEV")
	legacy["delay_cs_api_url"] = "https://hs.example.org"
	legacy["something"] = 1.5
	wantToken(t, do(t, s, http.MethodPost, "/sfu/get", legacy), testURL, "@alice:example.org:DEV", roomAlias(testRoom, roomSlot), false)
}

func TestMethods(t *testing.T) {
	s := newTestService(t, Config{}, nil, newFakeSFU())
	for _, path := range []string{"/sfu/get", "/get_token"} {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead} {
			w := do(t, s, m, path, nil)
			if w.Code != http.StatusMethodNotAllowed || w.Body.Len() != 0 {
				t.Errorf("%s %s: %d %q, want 405 with no body", m, path, w.Code, w.Body)
			}
		}
		w := do(t, s, http.MethodOptions, path, nil)
		want := map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "POST",
			"Access-Control-Allow-Headers": "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token",
			"Content-Type":                 "application/json",
		}
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("OPTIONS %s: %d %q", path, w.Code, w.Body)
		}
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("OPTIONS %s: %s %q, want %q", path, k, got, v)
			}
		}
	}

	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if w := do(t, s, m, "/healthz", nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("%s /healthz: %d %q", m, w.Code, w.Body)
		}
	}
	if w := do(t, s, http.MethodPost, "/healthz", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", w.Code)
	}

	// Element Call probes delegation with an empty POST; only 404 means
	// "not supported" (MATRIXRTC.md §9).
	for _, body := range []any{nil, "{}"} {
		wantError(t, do(t, s, http.MethodPost, "/delegate_delayed_leave", body), http.StatusNotFound, "M_UNRECOGNIZED", "")
	}
	if w := do(t, s, http.MethodOptions, "/delegate_delayed_leave", nil); w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("OPTIONS /delegate_delayed_leave: %d %v", w.Code, w.Header())
	}
}

// TestRoomMembership: the view decides, and power levels give roomAdmin.
func TestRoomMembership(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	levels := func(level, kick int, err error) func(id.RoomID, id.UserID) (int, int, error) {
		return func(id.RoomID, id.UserID) (int, int, error) { return level, kick, err }
	}
	member := func(m event.Membership, err error) func(id.RoomID, id.UserID) (event.Membership, error) {
		return func(room id.RoomID, user id.UserID) (event.Membership, error) {
			if room != testRoom || user != alice {
				return "", errors.New("asked about the wrong room or user")
			}
			return m, err
		}
	}
	fifty := 50
	hundred := 100
	tests := []struct {
		name       string
		view       fakeView
		adminLevel *int
		status     int
		errcode    string
		msg        string
		admin      bool
		created    bool
	}{
		{name: "joined", view: fakeView{membership: member(event.MembershipJoin, nil)}, status: 200, created: true},
		{name: "joined moderator", view: fakeView{membership: member(event.MembershipJoin, nil), powerLevels: levels(50, 50, nil)}, status: 200, admin: true, created: true},
		{name: "joined below kick", view: fakeView{membership: member(event.MembershipJoin, nil), powerLevels: levels(49, 50, nil)}, status: 200, created: true},
		{name: "kick level 0", view: fakeView{membership: member(event.MembershipJoin, nil), powerLevels: levels(0, 0, nil)}, status: 200, admin: true, created: true},
		{name: "admin level set", view: fakeView{membership: member(event.MembershipJoin, nil), powerLevels: levels(50, 50, nil)}, adminLevel: &hundred, status: 200, created: true},
		{name: "admin level reached", view: fakeView{membership: member(event.MembershipJoin, nil), powerLevels: levels(50, 100, nil)}, adminLevel: &fifty, status: 200, admin: true, created: true},
		{name: "no power levels", view: fakeView{membership: member(event.MembershipJoin, nil), powerLevels: levels(100, 50, errors.New("boom"))}, status: 200, created: true},
		{name: "left", view: fakeView{membership: member(event.MembershipLeave, nil)}, status: 403, errcode: "M_FORBIDDEN", msg: errNotInRoom.Err},
		{name: "invited", view: fakeView{membership: member(event.MembershipInvite, nil)}, status: 403, errcode: "M_FORBIDDEN", msg: errNotInRoom.Err},
		{name: "banned", view: fakeView{membership: member(event.MembershipBan, nil)}, status: 403, errcode: "M_FORBIDDEN", msg: errNotInRoom.Err},
		{name: "never", view: fakeView{membership: member("", nil)}, status: 403, errcode: "M_FORBIDDEN", msg: errNotInRoom.Err},
		{name: "unseen", view: fakeView{membership: member("", errUnseen)}, status: 403, errcode: "M_FORBIDDEN", msg: errUnseenRoom.Err},
		{name: "wrapped unseen", view: fakeView{membership: member("", errors.Join(errors.New("x"), errUnseen))}, status: 403, errcode: "M_FORBIDDEN", msg: errUnseenRoom.Err},
		{name: "view fails", view: fakeView{membership: member("", errors.New("homeserver down"))}, status: 500, errcode: "M_UNKNOWN", msg: errRoomState.Err},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sfu := newFakeSFU()
			s := newTestService(t, withHomeserver(Config{AdminPowerLevel: tt.adminLevel}, hs), tt.view, sfu)
			for _, path := range []string{"/get_token", "/sfu/get"} {
				var w *httptest.ResponseRecorder
				identity := memberIdentity(alice, "DEV", testMember)
				if path == "/get_token" {
					w = do(t, s, http.MethodPost, path, getTokenBody(aliceToken, testRoom, alice, "DEV", testMember))
				} else {
					w = do(t, s, http.MethodPost, path, sfuGetBody(aliceToken, testRoom, testServer, "DEV"))
					identity = legacyIdentity(alice, "DEV")
				}
				if tt.status != 200 {
					wantError(t, w, tt.status, tt.errcode, tt.msg)
					continue
				}
				wantToken(t, w, testURL, identity, roomAlias(testRoom, roomSlot), tt.admin)
			}
			if got := len(sfu.createdRooms()) > 0; got != tt.created {
				t.Errorf("room created: %v, want %v", got, tt.created)
			}
			if got, want := len(s.tickets.forRoom(testRoom)), map[bool]int{true: 2, false: 0}[tt.status == 200]; got != want {
				t.Errorf("%d tickets, want %d", got, want)
			}
		})
	}
}

// TestUnseenRooms checks the UnseenRooms policies, with a view that does
// not see the room and with no view at all.
func TestUnseenRooms(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	alias := roomAlias(testRoom, roomSlot)
	unseen := fakeView{membership: func(id.RoomID, id.UserID) (event.Membership, error) { return "", errUnseen }}
	tests := []struct {
		name     string
		policy   string
		full     []string
		existing bool
		status   int
		msg      string
		created  bool
	}{
		{name: "deny", policy: UnseenDeny, full: []string{"*"}, existing: true, status: 403, msg: errUnseenRoom.Err},
		{name: "default is deny", policy: "", full: []string{"*"}, status: 403, msg: errUnseenRoom.Err},
		{name: "lk-jwt full access", policy: UnseenLKJWT, full: []string{"other.org", testServer}, status: 200, created: true},
		{name: "lk-jwt wildcard", policy: UnseenLKJWT, full: []string{"*"}, status: 200, created: true},
		{name: "lk-jwt restricted, call exists", policy: UnseenLKJWT, full: []string{"other.org"}, existing: true, status: 200},
		{name: "lk-jwt restricted, no call", policy: UnseenLKJWT, full: []string{"other.org"}, status: 403, msg: errNotStarted.Err},
		{name: "lk-jwt no full-access list", policy: UnseenLKJWT, status: 403, msg: errNotStarted.Err},
		{name: "lk-jwt server names match exactly", policy: UnseenLKJWT, full: []string{"EXAMPLE.ORG", "sub.example.org"}, status: 403, msg: errNotStarted.Err},
	}
	for _, tt := range tests {
		for _, view := range []RoomView{unseen, nil} {
			t.Run(tt.name+map[bool]string{true: ", no view", false: ""}[view == nil], func(t *testing.T) {
				var sfu *fakeSFU
				if tt.existing {
					sfu = newFakeSFU(alias)
				} else {
					sfu = newFakeSFU()
				}
				cfg := withHomeserver(Config{UnseenRooms: tt.policy, FullAccessHomeservers: tt.full}, hs)
				s := newTestService(t, cfg, view, sfu)
				w := do(t, s, http.MethodPost, "/sfu/get", sfuGetBody(aliceToken, testRoom, testServer, "DEV"))
				if tt.status != 200 {
					wantError(t, w, tt.status, "M_FORBIDDEN", tt.msg)
				} else {
					wantToken(t, w, testURL, legacyIdentity(alice, "DEV"), alias, false)
				}
				if got := len(sfu.createdRooms()) > 0; got != tt.created {
					t.Errorf("room created: %v, want %v", got, tt.created)
				}
			})
		}
	}
}

func TestCreateRoomFails(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	sfu := newFakeSFU()
	sfu.createErr = errors.New("node full")
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), sfu)
	w := do(t, s, http.MethodPost, "/get_token", getTokenBody(aliceToken, testRoom, alice, "DEV", testMember))
	wantError(t, w, http.StatusInternalServerError, "M_UNKNOWN", "Unable to create room on SFU")
	if n := len(s.tickets.forRoom(testRoom)); n != 0 {
		t.Errorf("%d tickets recorded for a failed request", n)
	}
}

// TestOpenIDCached: Element Call's repeated calls with one OpenID token
// ask the homeserver once.
func TestOpenIDCached(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	s := newTestService(t, withHomeserver(Config{}, hs), joinedView(), newFakeSFU())
	for range 3 {
		w := do(t, s, http.MethodPost, "/sfu/get", sfuGetBody(aliceToken, testRoom, testServer, "DEV"))
		wantToken(t, w, testURL, legacyIdentity(alice, "DEV"), roomAlias(testRoom, roomSlot), false)
	}
	w := do(t, s, http.MethodPost, "/get_token", getTokenBody(aliceToken, testRoom, alice, "DEV", testMember))
	wantToken(t, w, testURL, memberIdentity(alice, "DEV", testMember), roomAlias(testRoom, roomSlot), false)
	if n := hs.requests(); n != 1 {
		t.Errorf("%d userinfo requests, want 1", n)
	}
	// The cached answer still checks the claimed user.
	w = do(t, s, http.MethodPost, "/get_token", getTokenBody(aliceToken, testRoom, "@bob:example.org", "DEV", testMember))
	wantError(t, w, http.StatusUnauthorized, "M_UNAUTHORIZED", "")
	// Failures are not cached.
	for range 2 {
		do(t, s, http.MethodPost, "/sfu/get", sfuGetBody("unknown", testRoom, testServer, "DEV"))
	}
	if n := hs.requests(); n != 3 {
		t.Errorf("%d userinfo requests, want 3", n)
	}
}

// TestTokensNotLogged: at debug level, nothing Stoa logs contains an
// OpenID token, whatever happens to the request.
func TestTokensNotLogged(t *testing.T) {
	hs := newFakeHomeserver(t)
	hs.addToken(aliceToken, string(alice))
	var logs syncBuffer
	cfg := withHomeserver(Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, hs)
	cfg.OpenIDBaseURLs["unreachable.example"] = "http://" + closedAddr(t)
	s := newTestService(t, cfg, joinedView(), newFakeSFU())

	const badToken = "bad-openid-token-5678"
	for _, req := range []struct {
		path string
		body any
	}{
		{"/get_token", getTokenBody(aliceToken, testRoom, alice, "DEV", testMember)},
		{"/get_token", getTokenBody(aliceToken, testRoom, "@bob:example.org", "DEV", testMember)},
		{"/sfu/get", sfuGetBody(badToken, testRoom, testServer, "DEV")},
		{"/sfu/get", sfuGetBody(badToken, testRoom, "unreachable.example", "DEV")},
		{"/sfu/get", sfuGetBody(badToken, testRoom, "bad/name", "DEV")},
		{"/sfu/get", sfuGetBody(badToken, "bad room", testServer, "DEV")},
	} {
		do(t, s, http.MethodPost, req.path, req.body)
	}
	out := logs.String()
	if strings.Contains(out, aliceToken) || strings.Contains(out, badToken) {
		t.Errorf("a token was logged:\n%s", out)
	}
	if !strings.Contains(out, "token issued") || !strings.Contains(out, "token refused") {
		t.Errorf("expected log lines missing:\n%s", out)
	}
}
