package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	asToken = "as-secret"
	hsToken = "hs-secret"
	asRoom  = id.RoomID("!room:example.org")
)

// asHomeserver is a fake homeserver for application service tests: it
// serves room state to masquerading users who are joined and records state
// writes.
type asHomeserver struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex // guards the following
	state  map[id.RoomID][]json.RawMessage
	joined map[id.RoomID][]id.UserID
	reads  []string // user_id of each state read
	writes []string // "user room type key body"
}

func newASHomeserver(t *testing.T) *asHomeserver {
	hs := &asHomeserver{t: t, state: map[id.RoomID][]json.RawMessage{}, joined: map[id.RoomID][]id.UserID{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/client/v3/account/whoami", func(w http.ResponseWriter, r *http.Request) {
		if !hs.authorised(w, r) {
			return
		}
		_, _ = io.WriteString(w, `{"user_id":"@stoa-auth:example.org"}`)
	})
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state", func(w http.ResponseWriter, r *http.Request) {
		if !hs.authorised(w, r) {
			return
		}
		user := id.UserID(r.URL.Query().Get("user_id"))
		room := id.RoomID(r.PathValue("room"))
		hs.mu.Lock()
		defer hs.mu.Unlock()
		hs.reads = append(hs.reads, string(user))
		if user.Homeserver() != "example.org" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"not in namespace"}`)
			return
		}
		if !slices.Contains(hs.joined[room], user) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errcode":"M_FORBIDDEN","error":"not joined"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(hs.state[room])
	})
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/state/{type}/{key}", func(w http.ResponseWriter, r *http.Request) {
		if !hs.authorised(w, r) {
			return
		}
		body, _ := io.ReadAll(r.Body)
		hs.mu.Lock()
		hs.writes = append(hs.writes, strings.Join([]string{r.URL.Query().Get("user_id"), r.PathValue("room"),
			r.PathValue("type"), r.PathValue("key"), string(body)}, " "))
		hs.mu.Unlock()
		_, _ = io.WriteString(w, `{"event_id":"$written"}`)
	})
	hs.srv = httptest.NewServer(mux)
	t.Cleanup(hs.srv.Close)
	return hs
}

func (hs *asHomeserver) authorised(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+asToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"bad token"}`)
		return false
	}
	return true
}

func (hs *asHomeserver) setRoom(room id.RoomID, joined []id.UserID, evts ...*event.Event) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.joined[room] = joined
	hs.state[room] = nil
	for _, evt := range evts {
		b, err := json.Marshal(evt)
		if err != nil {
			hs.t.Fatal(err)
		}
		hs.state[room] = append(hs.state[room], b)
	}
}

func (hs *asHomeserver) stateReads() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return slices.Clone(hs.reads)
}

func (hs *asHomeserver) stateWrites() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return slices.Clone(hs.writes)
}

// writeRegistration writes a registration like authtest's.
func writeRegistration(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "appservice.yaml")
	reg := "id: stoa\nurl: http://127.0.0.1:9\nas_token: " + asToken + "\nhs_token: " + hsToken +
		"\nsender_localpart: stoa-auth\nrate_limited: false\nnamespaces:\n  users:\n    - exclusive: false\n      regex: '^@.*:example\\.org$'\n"
	if err := os.WriteFile(path, []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newASService builds a Service in application service mode against hs and
// runs it until the test ends.
func newASService(t *testing.T, hs *asHomeserver, serverName string) *Service {
	t.Helper()
	s, err := New(Config{
		PublicURL: "ws://127.0.0.1:9", APIKey: "key", APISecret: "secret",
		HomeserverURL: hs.srv.URL, ServerName: serverName,
		AppserviceRegistration: writeRegistration(t),
		Logger:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, &enfSFU{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// push sends a transaction to s's handler.
func push(t *testing.T, s *Service, path, token string, evts ...*event.Event) *httptest.ResponseRecorder {
	t.Helper()
	body, err := json.Marshal(map[string]any{"events": evts})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPut, path, strings.NewReader(string(body)))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

func roomEvents(t *testing.T) []*event.Event {
	now := time.Now().UnixMilli()
	return []*event.Event{
		mkEvent(t, "$create", "m.room.create", strp(""), stAlice, now, `{"room_version":"10"}`),
		memberEvt(t, "$ja", stAlice, stAlice, "join", now),
		memberEvt(t, "$jb", stBob, stBob, "join", now),
		memberEvt(t, "$jc", stCarol, stCarol, "join", now),
		mkEvent(t, "$pl", "m.room.power_levels", strp(""), stAlice, now,
			`{"users":{"@alice:example.org":100},"events":{"org.matrix.msc3401.call.member":0}}`),
	}
}

func TestLoadRegistration(t *testing.T) {
	reg, err := loadRegistration(writeRegistration(t))
	if err != nil {
		t.Fatal(err)
	}
	if reg.ASToken != asToken || reg.HSToken != hsToken || reg.ID != "stoa" || reg.SenderLocalpart != "stoa-auth" {
		t.Errorf("registration = %+v", reg)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("id: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadRegistration(bad); err == nil {
		t.Error("registration without tokens accepted")
	}
	if _, err := loadRegistration(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing registration accepted")
	}
}

func TestNewWatcherConfig(t *testing.T) {
	base := Config{PublicURL: "ws://x", APIKey: "k", APISecret: "s", Logger: slog.New(slog.DiscardHandler)}
	cases := []struct {
		name    string
		edit    func(*Config)
		wantErr bool
		watcher bool
	}{
		{"neither", func(*Config) {}, false, false},
		{"bot", func(c *Config) { c.AccessToken = "t"; c.HomeserverURL = "http://127.0.0.1:9" }, false, true},
		{"both", func(c *Config) {
			c.AccessToken = "t"
			c.AppserviceRegistration = writeRegistration(t)
			c.HomeserverURL = "http://127.0.0.1:9"
		}, true, false},
		{"bot without homeserver", func(c *Config) { c.AccessToken = "t" }, true, false},
		{"appservice", func(c *Config) {
			c.AppserviceRegistration = writeRegistration(t)
			c.HomeserverURL = "http://127.0.0.1:9"
		}, false, true},
		{"appservice with a missing file", func(c *Config) {
			c.AppserviceRegistration = "/nonexistent/appservice.yaml"
			c.HomeserverURL = "http://127.0.0.1:9"
		}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.edit(&cfg)
			s, err := New(cfg, &enfSFU{})
			if (err != nil) != c.wantErr {
				t.Fatalf("New: err = %v, want error %v", err, c.wantErr)
			}
			if err == nil && (s.watcher != nil) != c.watcher {
				t.Errorf("watcher = %v, want one: %v", s.watcher, c.watcher)
			}
		})
	}
}

func TestTransactionAuth(t *testing.T) {
	hs := newASHomeserver(t)
	s := newASService(t, hs, "example.org")
	for _, c := range []struct {
		name, path, token string
		status            int
		errcode           string
	}{
		{"valid", "/_matrix/app/v1/transactions/1", hsToken, 200, ""},
		{"legacy path", "/transactions/2", hsToken, 200, ""},
		{"missing token", "/_matrix/app/v1/transactions/3", "", 401, "M_MISSING_TOKEN"},
		{"wrong token", "/_matrix/app/v1/transactions/4", "nope", 403, "M_FORBIDDEN"},
		{"the AS token is not the HS token", "/_matrix/app/v1/transactions/5", asToken, 403, "M_FORBIDDEN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := push(t, s, c.path, c.token)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.errcode == "" && strings.TrimSpace(w.Body.String()) != "{}" {
				t.Errorf("body %q, want {}", w.Body)
			}
			if c.errcode != "" && !strings.Contains(w.Body.String(), c.errcode) {
				t.Errorf("body %q, want %s", w.Body, c.errcode)
			}
		})
	}
	t.Run("legacy query token", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPut, "/transactions/9?access_token="+hsToken, strings.NewReader(`{"events":[]}`))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/10", strings.NewReader(`nope`))
		req.Header.Set("Authorization", "Bearer "+hsToken)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != 400 {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("unreadable event skipped", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/11",
			strings.NewReader(`{"events":[{"type":7},{"type":"m.room.message","room_id":"!x:example.org","content":{}}]}`))
		req.Header.Set("Authorization", "Bearer "+hsToken)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("queries and ping", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
		}{
			{http.MethodGet, "/_matrix/app/v1/users/@x:example.org", 404},
			{http.MethodGet, "/_matrix/app/v1/rooms/%23x:example.org", 404},
			{http.MethodPost, "/_matrix/app/v1/ping", 200},
		} {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+hsToken)
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != c.status {
				t.Errorf("%s %s: status %d, want %d", c.method, c.path, w.Code, c.status)
			}
		}
	})
}

func TestAppserviceLoadAndFeed(t *testing.T) {
	hs := newASHomeserver(t)
	hs.setRoom(asRoom, []id.UserID{stAlice, stBob}, roomEvents(t)...)
	s := newASService(t, hs, "example.org")
	ctx := t.Context()

	// Events of a room nobody asked about are not kept.
	push(t, s, "/_matrix/app/v1/transactions/0",
		hsToken, callEvt(t, "$early", callKey(stBob, "BOBDEV"), stBob, time.Now().UnixMilli(), ecContent("BOBDEV", "")))
	if s.watcher.(*roomWatcher).seen(asRoom) {
		t.Fatal("room kept before anyone asked")
	}

	m, err := s.view.Membership(ctx, asRoom, stAlice)
	if err != nil || m != event.MembershipJoin {
		t.Fatalf("Membership(alice) = %q, %v", m, err)
	}
	if got := hs.stateReads(); !slices.Equal(got, []string{string(stAlice)}) {
		t.Errorf("state read as %v, want as alice", got)
	}
	level, kick, err := s.view.PowerLevels(ctx, asRoom, stAlice)
	if err != nil || level != 100 || kick != 50 {
		t.Errorf("PowerLevels(alice) = %d, %d, %v", level, kick, err)
	}
	// Now known: no more reads.
	if m, err := s.view.Membership(ctx, asRoom, stBob); err != nil || m != event.MembershipJoin {
		t.Errorf("Membership(bob) = %q, %v", m, err)
	}
	if n := len(hs.stateReads()); n != 1 {
		t.Errorf("%d state reads, want 1", n)
	}

	// Pushed events update the model; a retried transaction with more
	// events applies only the new ones.
	kick1 := memberEvt(t, "$kick", stBob, stAlice, "leave", time.Now().UnixMilli())
	push(t, s, "/_matrix/app/v1/transactions/1", hsToken, kick1)
	rejoin := memberEvt(t, "$rejoin", stBob, stBob, "join", time.Now().UnixMilli())
	push(t, s, "/_matrix/app/v1/transactions/1", hsToken, kick1, rejoin)
	if m, _ := s.view.Membership(ctx, asRoom, stBob); m != event.MembershipJoin {
		t.Errorf("after kick and rejoin: %q", m)
	}
	push(t, s, "/_matrix/app/v1/transactions/2", hsToken, kick1)
	if m, _ := s.view.Membership(ctx, asRoom, stBob); m != event.MembershipJoin {
		t.Errorf("a repeated old event was applied again: %q", m)
	}
}

func TestAppserviceUnseen(t *testing.T) {
	hs := newASHomeserver(t)
	hs.setRoom(asRoom, []id.UserID{stAlice}, roomEvents(t)...)
	s := newASService(t, hs, "example.org")
	ctx := t.Context()

	// A remote user, and no local member known: unseen, no read.
	if _, err := s.view.Membership(ctx, asRoom, stCarol); !errors.Is(err, errUnseen) {
		t.Errorf("remote user: err = %v, want errUnseen", err)
	}
	if got := hs.stateReads(); len(got) != 0 {
		t.Errorf("read as %v", got)
	}
	// A local user the homeserver says is not joined: no membership.
	if m, err := s.view.Membership(ctx, asRoom, "@dave:example.org"); err != nil || m != "" {
		t.Errorf("local non-member: %q, %v", m, err)
	}
	if _, _, err := s.view.PowerLevels(ctx, asRoom, "@dave:example.org"); !errors.Is(err, errUnseen) {
		t.Errorf("PowerLevels of local non-member: err = %v", err)
	}
	// Once alice is seen in the room (a pushed event), a remote user's
	// question reads the state as alice.
	push(t, s, "/_matrix/app/v1/transactions/1", hsToken,
		mkEvent(t, "$msg", "m.room.message", nil, stAlice, time.Now().UnixMilli(), `{"body":"hi"}`))
	if m, err := s.view.Membership(ctx, asRoom, stCarol); err != nil || m != event.MembershipJoin {
		t.Errorf("remote user after alice was seen: %q, %v", m, err)
	}
	reads := hs.stateReads()
	if len(reads) == 0 || reads[len(reads)-1] != string(stAlice) {
		t.Errorf("reads %v, want the last as alice", reads)
	}
	// When the last local member leaves, the room goes stale: questions
	// read it again (and alice cannot any more).
	push(t, s, "/_matrix/app/v1/transactions/2", hsToken,
		memberEvt(t, "$lb", stBob, stBob, "leave", time.Now().UnixMilli()),
		memberEvt(t, "$la", stAlice, stAlice, "leave", time.Now().UnixMilli()))
	hs.setRoom(asRoom, nil)
	if _, err := s.view.Membership(ctx, asRoom, stCarol); !errors.Is(err, errUnseen) {
		t.Errorf("after the last local member left: err = %v, want errUnseen", err)
	}
}

func TestAppserviceServerNameFromWhoami(t *testing.T) {
	hs := newASHomeserver(t)
	hs.setRoom(asRoom, []id.UserID{stAlice}, roomEvents(t)...)
	s := newASService(t, hs, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := s.view.Membership(t.Context(), asRoom, stAlice)
		if err == nil && m == event.MembershipJoin {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Membership = %q, %v: server name never learnt", m, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAppserviceEndCall(t *testing.T) {
	hs := newASHomeserver(t)
	s := newASService(t, hs, "example.org")
	w := s.watcher.(*roomWatcher)
	key := callKey(stBob, "BOBDEV")
	if err := w.src.endCall(t.Context(), asRoom, stBob, key); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s %s %s %s {}", stBob, asRoom, typeCallMember, key)
	if got := hs.stateWrites(); !slices.Equal(got, []string{want}) {
		t.Errorf("writes = %q, want %q", got, want)
	}
	if err := w.src.endCall(t.Context(), asRoom, stCarol, callKey(stCarol, "C")); !errors.Is(err, errCannotWrite) {
		t.Errorf("remote user: err = %v, want errCannotWrite", err)
	}
}
