package signalling_test

// The Server methods the authorisation service calls (auth.SFU), driven
// against real SDK participants.

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/stoa-rtc/stoa/sfu"
	"github.com/stoa-rtc/stoa/signalling"
)

// startAdminServer starts an in-process server and returns it with the
// harness that joins SDK participants to it.
func startAdminServer(t *testing.T) (*signalling.Server, *testServer) {
	t.Helper()
	srv, err := signalling.NewServer(signalling.Config{
		Keys:             map[string]string{testAPIKey: testAPISecret},
		RTC:              sfu.Config{BindIP: "127.0.0.1", IncludeLoopback: true},
		DepartureTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
	})
	return srv, &testServer{
		url:    "ws" + strings.TrimPrefix(hs.URL, "http"),
		key:    testAPIKey,
		secret: testAPISecret,
		tags:   map[string]byte{},
	}
}

func TestAdminSFU(t *testing.T) {
	srv, ts := startAdminServer(t)
	name := roomName(t, "room")

	if srv.RoomExists(name) {
		t.Fatalf("RoomExists(%s) before anything happened", name)
	}
	if err := srv.CreateRoom(name); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	if err := srv.CreateRoom(name); err != nil {
		t.Fatalf("CreateRoom again: %v", err)
	}
	if !srv.RoomExists(name) {
		t.Fatalf("RoomExists(%s) after CreateRoom = false", name)
	}
	if err := srv.CreateRoom(""); err == nil {
		t.Error("CreateRoom(\"\") succeeded")
	}
	if ids := srv.Participants(name); len(ids) != 0 {
		t.Errorf("Participants of an empty room = %v", ids)
	}
	if ids := srv.Participants("no-such-room"); len(ids) != 0 {
		t.Errorf("Participants of no room = %v", ids)
	}

	// other joins first: the SDK reports only later arrivals as connected.
	other := ts.join(t, name, "other")
	victim := ts.watch(t, name, "victim")
	other.waitFor(time.Now().Add(mediaTimeout), "victim to be seen", func() bool { return other.connected["victim"] })
	if ids := srv.Participants(name); !slices.Equal(ids, []string{"other", "victim"}) {
		t.Errorf("Participants = %v, want [other victim]", ids)
	}

	if err := srv.RemoveParticipant(name, "victim", "membership ended"); err != nil {
		t.Fatalf("RemoveParticipant: %v", err)
	}
	victim.waitDisconnected(t, lksdk.ParticipantRemoved, livekit.DisconnectReason_PARTICIPANT_REMOVED)
	other.waitFor(time.Now().Add(mediaTimeout), "victim to leave", func() bool { return other.disconnected["victim"] })
	if ids := srv.Participants(name); !slices.Equal(ids, []string{"other"}) {
		t.Errorf("Participants after removal = %v, want [other]", ids)
	}
	if err := srv.RemoveParticipant(name, "victim", "again"); err != nil {
		t.Errorf("RemoveParticipant of someone gone: %v", err)
	}
	if err := srv.RemoveParticipant("no-such-room", "other", "x"); err != nil {
		t.Errorf("RemoveParticipant in no room: %v", err)
	}

	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if srv.RoomExists(name) {
		t.Error("RoomExists after Close")
	}
	if err := srv.CreateRoom(name); err == nil {
		t.Error("CreateRoom after Close succeeded")
	}
}

// TestAdminRoomClosesAfterEmptyTimeout checks that a room opened for the
// authorisation service closes when nobody comes.
func TestAdminRoomClosesAfterEmptyTimeout(t *testing.T) {
	srv, err := signalling.NewServer(signalling.Config{
		Keys:         map[string]string{testAPIKey: testAPISecret},
		RTC:          sfu.Config{BindIP: "127.0.0.1", IncludeLoopback: true},
		EmptyTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	name := roomName(t, "room")
	if err := srv.CreateRoom(name); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	eventually(t, "the empty room to close", func() bool { return !srv.RoomExists(name) })
}
