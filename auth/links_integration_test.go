package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/auth/authtest"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// fakeLinkMaker records the links it is asked for.
type fakeLinkMaker struct {
	mu    sync.Mutex
	calls []fakeLinkCall
}

type fakeLinkCall struct {
	room     string
	ttl      time.Duration
	viewOnly bool
}

func (f *fakeLinkMaker) MakeLink(room string, ttl time.Duration, viewOnly bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeLinkCall{room, ttl, viewOnly})
	return "https://stoa.example.org/j/fake-slug-" + string(rune('0'+len(f.calls))), nil
}

func (f *fakeLinkMaker) made() []fakeLinkCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeLinkCall(nil), f.calls...)
}

// TestLinkCommandWithDendrite: in a room the bot follows, alice (the
// creator, power level 100) gets a link with "!stoa link 2h" and bob
// (power level 0) a refusal; a command sent before the service started is
// ignored.
func TestLinkCommandWithDendrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite")
	}
	hs := authtest.Start(t, authtest.Options{})
	alice, bob := hs.Register(t, "alice"), hs.Register(t, "bob")
	bot := hs.Register(t, "stoabot")
	room := hs.CreateRoom(t, alice, bob, bot)
	hs.Join(t, bob, room)
	sendText(t, alice, room, "!stoa link") // before the service started
	time.Sleep(50 * time.Millisecond)      // its timestamp is before the start

	links := &fakeLinkMaker{}
	s := newTestService(t, Config{
		Logger:        testLogger(t),
		HomeserverURL: hs.URL,
		ServerName:    hs.ServerName,
		AccessToken:   bot.Token,
		Links:         links,
	}, nil, newFakeSFU())
	w := s.watcher.(*roomWatcher)
	runService(t, s)

	deadline := time.Now().Add(integrationWait)
	for !w.seen(room) {
		if time.Now().After(deadline) {
			t.Fatalf("the bot did not see the room within %v", integrationWait)
		}
		time.Sleep(100 * time.Millisecond)
	}

	sendText(t, alice, room, "!stoa link 2h")
	waitNotice(t, alice, room, bot.ID, "https://stoa.example.org/j/fake-slug-1")
	want := fakeLinkCall{room: roomAlias(room, roomSlot), ttl: 2 * time.Hour}
	if got := links.made(); len(got) != 1 || got[0] != want {
		t.Fatalf("links made %+v, want [%+v]", got, want)
	}

	sendText(t, bob, room, "!stoa link")
	waitNotice(t, alice, room, bot.ID, "Sorry, "+string(bob.ID))
	time.Sleep(500 * time.Millisecond) // nothing else may come
	if got := links.made(); len(got) != 1 {
		t.Errorf("links made %+v, want only alice's", got)
	}
	for _, body := range notices(t, alice, room, bot.ID) {
		if strings.Contains(body, "fake-slug-2") {
			t.Errorf("a second link was posted: %q", body)
		}
	}
}

func sendText(t *testing.T, u *authtest.User, room id.RoomID, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := u.Client.SendText(ctx, room, text); err != nil {
		t.Fatalf("%s sends %q: %v", u.ID, text, err)
	}
}

// notices returns the bodies of the recent m.notice messages of sender in
// room, as u reads them.
func notices(t *testing.T, u *authtest.User, room id.RoomID, sender id.UserID) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := u.Client.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	var out []string
	for _, evt := range resp.Chunk {
		if evt.Sender != sender || evt.Type != event.EventMessage {
			continue
		}
		if mt, _ := evt.Content.Raw["msgtype"].(string); mt != string(event.MsgNotice) {
			continue
		}
		body, _ := evt.Content.Raw["body"].(string)
		out = append(out, body)
	}
	return out
}

// waitNotice waits for a notice of sender in room that contains want.
func waitNotice(t *testing.T, u *authtest.User, room id.RoomID, sender id.UserID, want string) string {
	t.Helper()
	deadline := time.Now().Add(integrationWait)
	for {
		for _, body := range notices(t, u, room, sender) {
			if strings.Contains(body, want) {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notice of %s containing %q within %v; notices: %q", sender, want, integrationWait, notices(t, u, room, sender))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
