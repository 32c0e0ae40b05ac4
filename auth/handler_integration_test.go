package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/auth/authtest"
	"maunium.net/go/mautrix/id"
)

// integrationWait bounds the wait for the bot to join and sync a room it
// was invited to; Dendrite's /sync wakes up ~0.1 s after an event
// (TESTENV.md).
const integrationWait = 20 * time.Second

// TestTokensWithDendrite runs the token endpoints against a real Dendrite,
// with the bot-mode watcher as the room view: alice (the room's creator,
// power level 100) and bob are joined, carol is not, and the bot was
// invited.
func TestTokensWithDendrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite")
	}
	hs := authtest.Start(t, authtest.Options{})
	alice, bob, carol := hs.Register(t, "alice"), hs.Register(t, "bob"), hs.Register(t, "carol")
	bot := hs.Register(t, "stoabot")
	room := hs.CreateRoom(t, alice, bob, bot)
	hs.Join(t, bob, room)
	hidden := hs.CreateRoom(t, alice) // the bot is not in it

	sfu := newFakeSFU()
	s := newTestService(t, Config{
		Logger:         testLogger(t),
		HomeserverURL:  hs.URL,
		ServerName:     hs.ServerName,
		AccessToken:    bot.Token,
		OpenIDBaseURLs: map[string]string{hs.ServerName: hs.URL, "other.example": hs.URL},
	}, nil, sfu)
	s.view = s.watcher // newTestService cleared it
	runService(t, s)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	alias := roomAlias(room, roomSlot)
	aliceToken := alice.OpenIDToken(t)

	// The bot joins and syncs the room; until then the room is unseen.
	deadline := time.Now().Add(integrationWait)
	for {
		code, body := postJSON(t, srv.URL+"/sfu/get", sfuGetBody(aliceToken, room, hs.ServerName, string(alice.Device)))
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice still gets %d %s after %v: the bot did not see the room", code, body, integrationWait)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("alice, both endpoints", func(t *testing.T) {
		w := postRecorded(t, srv.URL+"/sfu/get", sfuGetBody(aliceToken, room, hs.ServerName, string(alice.Device)))
		wantToken(t, w, testURL, string(alice.ID)+":"+string(alice.Device), alias, true)
		const member = "0b3e6c1e-9f0a-4a4e-8a66-1c2d3e4f5a6b"
		w = postRecorded(t, srv.URL+"/get_token", getTokenBody(aliceToken, room, alice.ID, string(alice.Device), member))
		wantToken(t, w, testURL, memberIdentity(alice.ID, alice.Device, member), alias, true)
		if _, ok := s.tickets.get(alias, memberIdentity(alice.ID, alice.Device, member)); !ok {
			t.Error("no ticket for alice's /get_token token")
		}
	})
	t.Run("bob, not an admin", func(t *testing.T) {
		w := postRecorded(t, srv.URL+"/sfu/get", sfuGetBody(bob.OpenIDToken(t), room, hs.ServerName, string(bob.Device)))
		wantToken(t, w, testURL, string(bob.ID)+":"+string(bob.Device), alias, false)
	})
	t.Run("carol, not in the room", func(t *testing.T) {
		tok := carol.OpenIDToken(t)
		w := postRecorded(t, srv.URL+"/sfu/get", sfuGetBody(tok, room, hs.ServerName, string(carol.Device)))
		wantError(t, w, http.StatusForbidden, "M_FORBIDDEN", errNotInRoom.Err)
		w = postRecorded(t, srv.URL+"/get_token", getTokenBody(tok, room, carol.ID, string(carol.Device), "m"))
		wantError(t, w, http.StatusForbidden, "M_FORBIDDEN", errNotInRoom.Err)
	})
	t.Run("room the bot is not in", func(t *testing.T) {
		w := postRecorded(t, srv.URL+"/sfu/get", sfuGetBody(aliceToken, hidden, hs.ServerName, string(alice.Device)))
		wantError(t, w, http.StatusForbidden, "M_FORBIDDEN", errUnseenRoom.Err)
	})
	t.Run("bad OpenID tokens", func(t *testing.T) {
		const msg = "The request could not be authorised."
		w := postRecorded(t, srv.URL+"/sfu/get", sfuGetBody("not-a-token", room, hs.ServerName, "DEV"))
		wantError(t, w, http.StatusUnauthorized, "M_UNAUTHORIZED", msg)
		// alice's token presented as one of another server.
		w = postRecorded(t, srv.URL+"/sfu/get", sfuGetBody(alice.OpenIDToken(t), room, "other.example", "DEV"))
		wantError(t, w, http.StatusUnauthorized, "M_UNAUTHORIZED", msg)
		// bob's token with alice's claim.
		w = postRecorded(t, srv.URL+"/get_token", getTokenBody(bob.OpenIDToken(t), room, alice.ID, "DEV", "m"))
		wantError(t, w, http.StatusUnauthorized, "M_UNAUTHORIZED", msg)
	})
	if got := sfu.createdRooms(); len(got) == 0 || got[0] != alias {
		t.Errorf("SFU rooms created %q, want %s", got, alias)
	}
}

// TestExpiredOpenIDToken: an OpenID token Dendrite no longer knows gives
// 401. It needs no room view.
func TestExpiredOpenIDToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite")
	}
	const lifetime = time.Second
	hs := authtest.Start(t, authtest.Options{OpenIDTokenLifetime: lifetime})
	alice := hs.Register(t, "alice")
	s := newTestService(t, Config{
		OpenIDBaseURLs: map[string]string{hs.ServerName: hs.URL},
		UnseenRooms:    UnseenLKJWT, FullAccessHomeservers: []string{"*"},
	}, nil, newFakeSFU())

	room := id.RoomID("!any:" + hs.ServerName)
	expired := alice.OpenIDToken(t)
	fresh := alice.OpenIDToken(t)
	w := do(t, s, http.MethodPost, "/sfu/get", sfuGetBody(fresh, room, hs.ServerName, "DEV"))
	wantToken(t, w, testURL, string(alice.ID)+":DEV", roomAlias(room, roomSlot), false)
	time.Sleep(lifetime + 500*time.Millisecond)
	w = do(t, s, http.MethodPost, "/sfu/get", sfuGetBody(expired, room, hs.ServerName, "DEV"))
	wantError(t, w, http.StatusUnauthorized, "M_UNAUTHORIZED", "")
}

// testLogger returns a debug logger whose output the test shows if it
// fails.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runService runs s until the test ends.
func runService(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// postJSON posts body as JSON to url and returns the status and body.
func postJSON(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	w := postRecorded(t, url, body)
	return w.Code, w.Body.Bytes()
}

// postRecorded posts body as JSON to url over HTTP and returns the answer
// as a recorder, for wantToken and wantError.
func postRecorded(t *testing.T, url string, body any) *httptest.ResponseRecorder {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://call.example.org")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	w := httptest.NewRecorder()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := w.Body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return w
}
