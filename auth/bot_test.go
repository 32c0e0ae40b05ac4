package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const botToken = "bot-token"

// botHomeserver is a fake homeserver for the bot: whoami (failing once, to
// exercise the backoff), filters, joins, and a /sync whose responses the
// test hands out one by one.
type botHomeserver struct {
	srv   *httptest.Server
	syncs chan string // response bodies; next_batch is filled in

	mu      sync.Mutex // guards the following
	whoamis int
	filter  mautrix.Filter
	joins   []string
	since   []string
}

func newBotHomeserver(t *testing.T) *botHomeserver {
	hs := &botHomeserver{syncs: make(chan string)}
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+botToken {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"bad token"}`)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /_matrix/client/v3/account/whoami", auth(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		hs.whoamis++
		n := hs.whoamis
		hs.mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, `{"user_id":"@authz:example.org","device_id":"BOT"}`)
	}))
	mux.HandleFunc("POST /_matrix/client/v3/user/{user}/filter", auth(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		_ = json.NewDecoder(r.Body).Decode(&hs.filter)
		hs.mu.Unlock()
		_, _ = io.WriteString(w, `{"filter_id":"f1"}`)
	}))
	mux.HandleFunc("POST /_matrix/client/v3/rooms/{room}/join", auth(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		hs.joins = append(hs.joins, r.PathValue("room"))
		hs.mu.Unlock()
		_, _ = io.WriteString(w, `{"room_id":"`+r.PathValue("room")+`"}`)
	}))
	n := 0
	mux.HandleFunc("GET /_matrix/client/v3/sync", auth(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("filter") != "f1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		hs.mu.Lock()
		hs.since = append(hs.since, r.URL.Query().Get("since"))
		hs.mu.Unlock()
		select {
		case body := <-hs.syncs:
			n++
			_, _ = io.WriteString(w, strings.Replace(body, "{", `{"next_batch":"s`+string(rune('0'+n))+`",`, 1))
		case <-r.Context().Done():
		case <-time.After(time.Second):
			_, _ = io.WriteString(w, `{"next_batch":"`+r.URL.Query().Get("since")+`"}`)
		}
	}))
	hs.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.srv.CloseClientConnections()
		hs.srv.Close()
	})
	return hs
}

func eventsJSON(t *testing.T, evts ...*event.Event) string {
	t.Helper()
	b, err := json.Marshal(evts)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBot(t *testing.T) {
	hs := newBotHomeserver(t)
	s, err := New(Config{
		PublicURL: "ws://127.0.0.1:9", APIKey: "key", APISecret: "secret",
		HomeserverURL: hs.srv.URL, AccessToken: botToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, &enfSFU{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})

	now := time.Now().UnixMilli()
	room := id.RoomID("!room:example.org")
	invited := id.RoomID("!inv:example.org")
	state := eventsJSON(t,
		mkEvent(t, "$create", "m.room.create", strp(""), stAlice, now, `{"room_version":"10"}`),
		memberEvt(t, "$ja", stAlice, stAlice, "join", now),
		memberEvt(t, "$jb", stBob, stBob, "join", now),
	)
	// A fresh filtered sync puts call.member in the timeline.
	timeline := eventsJSON(t, callEvt(t, "$c", callKey(stBob, "BOBDEV"), stBob, now, ecContent("BOBDEV", "")))
	first := `{"rooms":{"join":{"` + string(room) + `":{"state":{"events":` + state + `},"timeline":{"events":` + timeline + `}}},` +
		`"invite":{"` + string(invited) + `":{"invite_state":{"events":[]}}}}}`
	select {
	case hs.syncs <- first:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync request (whoami backoff should take 1 s)")
	}

	m, err := s.view.Membership(t.Context(), room, stBob)
	if err != nil || m != event.MembershipJoin {
		t.Fatalf("Membership(bob) = %q, %v", m, err)
	}
	w := s.watcher.(*roomWatcher)
	if v := w.judge(Ticket{Room: room, User: stBob, Device: "BOBDEV"}, time.Now()); !v.call.active {
		t.Errorf("bob's call membership from the timeline not seen: %+v", v)
	}
	if _, err := s.view.Membership(t.Context(), invited, stBob); !errors.Is(err, errUnseen) {
		t.Errorf("room the bot is not in yet: err = %v", err)
	}

	waitFor(t, func() bool {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		return slices.Equal(hs.joins, []string{string(invited)})
	})
	hs.mu.Lock()
	filter := hs.filter
	hs.mu.Unlock()
	if filter.Room == nil || filter.Room.Timeline == nil ||
		!slices.ContainsFunc(filter.Room.Timeline.Types, func(t event.Type) bool { return t.Type == typeRTCMember }) ||
		!slices.ContainsFunc(filter.Room.State.Types, func(t event.Type) bool { return t.Type == typeCallMember }) {
		t.Errorf("filter = %+v", filter.Room)
	}

	// The invited room arrives under join once the bot is in.
	second := `{"rooms":{"join":{"` + string(invited) + `":{"state":{"events":` +
		eventsJSON(t, memberEvt(t, "$jc", stCarol, stCarol, "join", now)) + `}}}}}`
	hs.syncs <- second
	waitFor(t, func() bool {
		m, err := s.view.Membership(t.Context(), invited, stCarol)
		return err == nil && m == event.MembershipJoin
	})

	// Kicked out of a room: it is no longer seen.
	hs.syncs <- `{"rooms":{"leave":{"` + string(room) + `":{}}}}`
	waitFor(t, func() bool {
		_, err := s.view.Membership(t.Context(), room, stBob)
		return errors.Is(err, errUnseen)
	})
	hs.mu.Lock()
	since := slices.Clone(hs.since)
	hs.mu.Unlock()
	if len(since) < 3 || since[0] != "" || since[1] != "s1" || since[2] != "s2" {
		t.Errorf("since tokens %q", since)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := backoff(1000); got != 30*time.Second {
		t.Errorf("backoff(1000) = %v", got)
	}
}
