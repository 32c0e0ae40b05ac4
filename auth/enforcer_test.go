package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// removal is one RemoveParticipant call.
type removal struct {
	room, identity, reason string
	at                     time.Time
}

// enfSFU is a hand-written SFU for the enforcer's tests. Like signalling, it
// tells its observer synchronously when it removes someone.
type enfSFU struct {
	observer interface{ ParticipantLeft(room, identity string) }

	mu       sync.Mutex // guards the following
	rooms    map[string][]string
	removals []removal
}

func (f *enfSFU) RoomExists(room string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[room] != nil
}
func (f *enfSFU) CreateRoom(string) error { return nil }
func (f *enfSFU) Participants(room string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rooms[room])
}

func (f *enfSFU) RemoveParticipant(room, identity, reason string) error {
	f.mu.Lock()
	f.removals = append(f.removals, removal{room, identity, reason, time.Now()})
	had := slices.Contains(f.rooms[room], identity)
	f.rooms[room] = slices.DeleteFunc(f.rooms[room], func(s string) bool { return s == identity })
	f.mu.Unlock()
	if had && f.observer != nil {
		f.observer.ParticipantLeft(room, identity)
	}
	return nil
}

func (f *enfSFU) add(room, identity string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rooms == nil {
		f.rooms = map[string][]string{}
	}
	f.rooms[room] = append(f.rooms[room], identity)
}

func (f *enfSFU) drop(room, identity string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rooms[room] = slices.DeleteFunc(f.rooms[room], func(s string) bool { return s == identity })
}

func (f *enfSFU) removed() []removal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removals)
}

// enfSource is a source whose rooms the test feeds; it records endCall.
type enfSource struct {
	canWrite bool
	hc       *http.Client // for clientFor

	mu    sync.Mutex // guards ended
	ended []string   // "room user key"
}

func (f *enfSource) run(ctx context.Context) error                    { <-ctx.Done(); return nil }
func (f *enfSource) load(context.Context, id.RoomID, id.UserID) error { return errUnseen }
func (f *enfSource) local(user id.UserID) bool                        { return user.Homeserver() == "example.org" }
func (f *enfSource) memberNow(context.Context, id.RoomID, id.UserID) (event.Membership, error) {
	return "", errUnseen
}
func (f *enfSource) endCall(_ context.Context, room id.RoomID, user id.UserID, key string) error {
	if !f.canWrite {
		return errCannotWrite
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, string(room)+" "+string(user)+" "+key)
	return nil
}

func (f *enfSource) clientFor(id.UserID) *mautrix.Client {
	cli, _ := mautrix.NewClient("https://hs.example.org", "", "")
	cli.Client = f.hc
	return cli
}

func (f *enfSource) endedCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ended)
}

// enfTransport serves HTTP in memory (no sockets inside a synctest bubble).
type enfTransport func(*http.Request) (*http.Response, error)

func (f enfTransport) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// enfRig is a Service with a roomWatcher fed by the test, an enforcer and a
// fake SFU.
type enfRig struct {
	s   *Service
	w   *roomWatcher
	sfu *enfSFU
	src *enfSource
	n   int // event counter
}

const (
	enfGrace = 5 * time.Second
	enfRoom  = id.RoomID("!call:example.org")
	enfAlias = "ALIAS"
	bobDev   = id.DeviceID("BOBDEV")
	bobIdent = "@bob:example.org:BOBDEV"
)

// newEnfRig builds the rig and starts the watcher's Run; it must be called
// inside a synctest bubble. The room has alice and bob joined.
func newEnfRig(t *testing.T) *enfRig {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sfu := &enfSFU{}
	s := &Service{cfg: Config{MembershipGrace: enfGrace}, log: log, sfu: sfu, mux: http.NewServeMux()}
	src := &enfSource{canWrite: true}
	w := &roomWatcher{log: log, src: src, rooms: map[id.RoomID]*roomState{}}
	w.enf = newEnforcer(s, w)
	s.watcher, s.view = w, w
	sfu.observer = s
	rig := &enfRig{s: s, w: w, sfu: sfu, src: src}
	rig.feed(t,
		memberEvt(t, rig.id(), stAlice, stAlice, "join", rig.now()),
		memberEvt(t, rig.id(), stBob, stBob, "join", rig.now()),
	)
	w.setComplete(enfRoom)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return rig
}

func (r *enfRig) id() string { r.n++; return "$e" + strings.Repeat("x", r.n) }
func (r *enfRig) now() int64 { return time.Now().UnixMilli() }

func (r *enfRig) feed(t *testing.T, evts ...*event.Event) {
	t.Helper()
	r.w.feed(enfRoom, evts, true)
}

// connect issues bob a ticket and makes him join the SFU room.
func (r *enfRig) connect(t *testing.T, tk Ticket) {
	t.Helper()
	if tk.Alias == "" {
		tk = Ticket{Alias: enfAlias, Identity: bobIdent, Room: enfRoom, SlotID: defaultSlot, User: stBob, Device: bobDev}
	}
	r.s.tickets.add(tk, time.Hour, func(string, string) bool { return true })
	r.sfu.add(tk.Alias, tk.Identity)
	r.s.ParticipantJoined(tk.Alias, tk.Identity)
}

func (r *enfRig) joinCall(t *testing.T, extra string) {
	t.Helper()
	r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(), ecContent(bobDev, extra)))
}

func wantRemoval(t *testing.T, got []removal, reason string, at time.Time) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("removals = %+v, want one (%q)", got, reason)
	}
	if got[0].room != enfAlias || got[0].identity != bobIdent || got[0].reason != reason {
		t.Errorf("removal = %+v, want %s/%s %q", got[0], enfAlias, bobIdent, reason)
	}
	if !got[0].at.Equal(at) {
		t.Errorf("removed at %v, want %v", got[0].at, at)
	}
}

func TestEnforcerGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		start := time.Now()
		r.connect(t, Ticket{})
		time.Sleep(enfGrace - time.Millisecond)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed before the grace ended: %+v", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		wantRemoval(t, r.sfu.removed(), reasonNoCall, start.Add(enfGrace))
	})
}

func TestEnforcerMembershipInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.connect(t, Ticket{})
		time.Sleep(2 * time.Second)
		r.joinCall(t, "")
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed despite a membership: %+v", got)
		}
	})
}

func TestEnforcerHangUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.connect(t, Ticket{})
		r.joinCall(t, "")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(), `{}`))
		synctest.Wait()
		wantRemoval(t, r.sfu.removed(), reasonCallEnded, time.Now())
		// Removed, so nothing is left to clean up after it.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := r.src.endedCalls(); len(got) != 0 {
			t.Errorf("cleaned up after a removed participant: %v", got)
		}
	})
}

// A membership emptied before the participant connected (the previous
// call) is no reason to remove it: Element Call asks for the token before
// it sends its membership (MATRIXRTC.md §1.6).
func TestEnforcerOldHangUpIsNotEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.joinCall(t, "")
		time.Sleep(time.Second)
		r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(), `{}`))
		time.Sleep(time.Second)
		r.connect(t, Ticket{})
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed at once: %+v", got)
		}
		time.Sleep(time.Second)
		r.joinCall(t, "")
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed: %+v", got)
		}
	})
}

func TestEnforcerRoomMembership(t *testing.T) {
	for _, c := range []struct {
		membership, reason string
		by                 id.UserID
	}{
		{"leave", "left the room", stBob},
		{"leave", "left the room", stAlice}, // kicked
		{"ban", "banned", stAlice},
	} {
		t.Run(c.membership+" by "+string(c.by), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newEnfRig(t)
				r.connect(t, Ticket{})
				r.joinCall(t, "")
				time.Sleep(3 * time.Second)
				r.feed(t, memberEvt(t, r.id(), stBob, c.by, c.membership, r.now()))
				synctest.Wait()
				wantRemoval(t, r.sfu.removed(), c.reason, time.Now())
			})
		})
	}
}

func TestEnforcerAlreadyLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.feed(t, memberEvt(t, r.id(), stBob, stBob, "leave", r.now()))
		r.connect(t, Ticket{})
		synctest.Wait()
		wantRemoval(t, r.sfu.removed(), "left the room", time.Now())
	})
}

func TestEnforcerExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.connect(t, Ticket{})
		r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(),
			`{"application":"m.call","call_id":"","device_id":"BOBDEV","focus_active":{"type":"livekit"},"expires":60000}`))
		start := time.Now()
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed before expiry: %+v", got)
		}
		time.Sleep(time.Second + 10*time.Millisecond)
		synctest.Wait()
		got := r.sfu.removed()
		if len(got) != 1 || got[0].reason != reasonCallEnded {
			t.Fatalf("removals = %+v, want call membership ended", got)
		}
		if d := got[0].at.Sub(start.Add(time.Minute)); d < 0 || d > 5*time.Millisecond {
			t.Errorf("removed %v after expiry", d)
		}
	})
}

func TestEnforcerRenewalKeepsParticipant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.connect(t, Ticket{})
		created := r.now()
		content := func(expires int) string {
			return `{"application":"m.call","call_id":"","device_id":"BOBDEV","focus_active":{"type":"livekit"},` +
				`"expires":` + strconv.Itoa(expires) + `,"created_ts":` + strconv.FormatInt(created, 10) + `}`
		}
		r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(), content(60000)))
		time.Sleep(50 * time.Second)
		r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(), content(120000)))
		time.Sleep(60 * time.Second)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed despite renewal: %+v", got)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 1 {
			t.Fatalf("not removed after the renewed expiry: %+v", got)
		}
	})
}

// Someone else overwriting bob's key (Dendrite allows it) does not count as
// his hang-up: his client gets the grace to restore it.
func TestEnforcerOverwrittenGetsGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		r.connect(t, Ticket{})
		r.joinCall(t, "")
		time.Sleep(time.Minute)
		r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stAlice, r.now(), `{}`))
		start := time.Now()
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed at once: %+v", got)
		}
		time.Sleep(enfGrace)
		synctest.Wait()
		wantRemoval(t, r.sfu.removed(), reasonNoCall, start.Add(enfGrace))
	})
}

func TestEnforcerSpoofedMembershipIsNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		start := time.Now()
		r.connect(t, Ticket{})
		// Bob writes his device under alice's key.
		r.feed(t, callEvt(t, r.id(), callKey(stAlice, "ALICEDEV"), stBob, r.now(), ecContent(bobDev, "")))
		time.Sleep(enfGrace)
		synctest.Wait()
		wantRemoval(t, r.sfu.removed(), reasonNoCall, start.Add(enfGrace))
	})
}

func TestEnforcerIgnoresUnticketedAndUnseen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEnfRig(t)
		// No ticket: a token Stoa did not issue.
		r.sfu.add(enfAlias, "someone")
		r.s.ParticipantJoined(enfAlias, "someone")
		// A ticket for a room the watcher does not see.
		r.connect(t, Ticket{Alias: "other", Identity: "x", Room: "!unseen:example.org", User: stBob, Device: bobDev})
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := r.sfu.removed(); len(got) != 0 {
			t.Fatalf("removed: %+v", got)
		}
	})
}

func TestEnforcerDroppedParticipant(t *testing.T) {
	t.Run("membership ended after the leave grace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEnfRig(t)
			r.connect(t, Ticket{})
			r.joinCall(t, "")
			time.Sleep(time.Minute)
			r.sfu.drop(enfAlias, bobIdent)
			r.s.ParticipantLeft(enfAlias, bobIdent)
			time.Sleep(defaultLeaveGrace - time.Millisecond)
			synctest.Wait()
			if got := r.src.endedCalls(); len(got) != 0 {
				t.Fatalf("ended before the leave grace: %v", got)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			want := []string{string(enfRoom) + " " + string(stBob) + " " + callKey(stBob, bobDev)}
			if got := r.src.endedCalls(); !slices.Equal(got, want) {
				t.Errorf("ended = %v, want %v", got, want)
			}
		})
	})
	t.Run("reconnected within the grace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEnfRig(t)
			r.connect(t, Ticket{})
			r.joinCall(t, "")
			r.sfu.drop(enfAlias, bobIdent)
			r.s.ParticipantLeft(enfAlias, bobIdent)
			time.Sleep(2 * time.Second)
			r.connect(t, Ticket{})
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := r.src.endedCalls(); len(got) != 0 {
				t.Errorf("ended although it came back: %v", got)
			}
		})
	})
	t.Run("same device still connected under another identity", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEnfRig(t)
			r.connect(t, Ticket{})
			r.connect(t, Ticket{Alias: enfAlias, Identity: "hashed", Room: enfRoom, User: stBob, Device: bobDev, MemberID: "m"})
			r.joinCall(t, "")
			r.sfu.drop(enfAlias, bobIdent)
			r.s.ParticipantLeft(enfAlias, bobIdent)
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := r.src.endedCalls(); len(got) != 0 {
				t.Errorf("ended although the device is still there: %v", got)
			}
		})
	})
	t.Run("hung up properly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEnfRig(t)
			r.connect(t, Ticket{})
			r.joinCall(t, "")
			r.sfu.drop(enfAlias, bobIdent)
			r.s.ParticipantLeft(enfAlias, bobIdent)
			r.feed(t, callEvt(t, r.id(), callKey(stBob, bobDev), stBob, r.now(), `{}`))
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := r.src.endedCalls(); len(got) != 0 {
				t.Errorf("ended again: %v", got)
			}
		})
	})
	t.Run("bot mode cannot write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEnfRig(t)
			r.src.canWrite = false
			r.connect(t, Ticket{})
			r.joinCall(t, "")
			r.sfu.drop(enfAlias, bobIdent)
			r.s.ParticipantLeft(enfAlias, bobIdent)
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := r.sfu.removed(); len(got) != 0 {
				t.Errorf("removed: %+v", got)
			}
		})
	})
	t.Run("delayed leave", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEnfRig(t)
			var mu sync.Mutex
			var paths []string
			r.src.hc = &http.Client{Transport: enfTransport(func(req *http.Request) (*http.Response, error) {
				mu.Lock()
				paths = append(paths, req.Method+" "+req.URL.Path)
				mu.Unlock()
				status, body := 200, `{}`
				if strings.HasSuffix(req.URL.Path, "/send") {
					// A homeserver with only the older body form.
					status, body = 404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`
				}
				return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body)),
					Header: http.Header{"Content-Type": {"application/json"}}, Request: req}, nil
			})}
			r.connect(t, Ticket{})
			r.joinCall(t, "")
			// The second token, asked for once the delayed leave exists.
			r.s.tickets.add(Ticket{Alias: enfAlias, Identity: bobIdent, Room: enfRoom, SlotID: defaultSlot,
				User: stBob, Device: bobDev, DelayID: "syd_abc", DelayTimeout: 10 * time.Second},
				time.Hour, func(string, string) bool { return true })
			r.sfu.drop(enfAlias, bobIdent)
			r.s.ParticipantLeft(enfAlias, bobIdent)
			time.Sleep(time.Minute)
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			want := []string{
				"POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_abc/send",
				"POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_abc",
			}
			if !slices.Equal(paths, want) {
				t.Errorf("requests = %q, want %q", paths, want)
			}
			if got := r.src.endedCalls(); len(got) != 0 {
				t.Errorf("also wrote {}: %v", got)
			}
		})
	})
}
