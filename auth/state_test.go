package auth

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const (
	stAlice = id.UserID("@alice:example.org")
	stBob   = id.UserID("@bob:example.org")
	stCarol = id.UserID("@carol:remote.example")
	// t0ms is the test's "now" on the homeserver's clock, in ms
	// (2026-09-01 12:00 UTC).
	t0ms = 1788264000000
)

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

// mkEvent builds an event the way it arrives from a homeserver (through
// JSON, so that Content.VeryRaw is set). key nil makes a message event.
func mkEvent(t testing.TB, eid, typ string, key *string, sender id.UserID, ts int64, content string) *event.Event {
	t.Helper()
	m := map[string]any{
		"event_id": eid, "type": typ, "sender": sender, "origin_server_ts": ts,
		"room_id": "!room:example.org", "content": json.RawMessage(content),
	}
	if key != nil {
		m["state_key"] = *key
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	evt := &event.Event{}
	if err := json.Unmarshal(b, evt); err != nil {
		t.Fatal(err)
	}
	return evt
}

func strp(s string) *string { return &s }

func memberEvt(t testing.TB, eid string, user, sender id.UserID, membership string, ts int64) *event.Event {
	t.Helper()
	return mkEvent(t, eid, "m.room.member", strp(string(user)), sender, ts, fmt.Sprintf(`{"membership":%q}`, membership))
}

func callKey(user id.UserID, device id.DeviceID) string {
	return "_" + string(user) + "_" + string(device) + "_m.call"
}

// ecContent is what Element Call sends for device (MATRIXRTC.md §1.2).
func ecContent(device id.DeviceID, extra string) string {
	return `{"application":"m.call","call_id":"","scope":"m.room","device_id":"` + string(device) +
		`","expires":14400000,"focus_active":{"type":"livekit","focus_selection":"multi_sfu"},` +
		`"foci_preferred":[{"type":"livekit","livekit_service_url":"https://x"}]` + extra + `}`
}

func callEvt(t testing.TB, eid, key string, sender id.UserID, ts int64, content string) *event.Event {
	t.Helper()
	return mkEvent(t, eid, typeCallMember, &key, sender, ts, content)
}

func rtcEvt(t testing.TB, eid string, sender id.UserID, ts int64, content string) *event.Event {
	t.Helper()
	return mkEvent(t, eid, typeRTCMember, nil, sender, ts, content)
}

func rtcContent(user id.UserID, device id.DeviceID, member, stickyKey string) string {
	return fmt.Sprintf(`{"application":{"type":"m.call","m.call.intent":"video"},"slot_id":"m.call#ROOM",`+
		`"rtc_transports":[{"type":"livekit","livekit_service_url":"https://x"}],`+
		`"member":{"device_id":%q,"user_id":%q,"id":%q},"versions":[],"msc4354_sticky_key":%q}`,
		device, user, member, stickyKey)
}

// joinedRoom returns a room where alice (creator) and bob are joined.
func joinedRoom(t testing.TB) *roomState {
	t.Helper()
	r := newRoomState()
	now := msTime(t0ms)
	r.apply(mkEvent(t, "$create", "m.room.create", strp(""), stAlice, t0ms-9000, `{"room_version":"10"}`), now)
	r.apply(memberEvt(t, "$ja", stAlice, stAlice, "join", t0ms-8000), now)
	r.apply(memberEvt(t, "$jb", stBob, stBob, "join", t0ms-7000), now)
	r.complete = true
	return r
}

func TestKeyNamesSender(t *testing.T) {
	cases := []struct {
		key    string
		sender id.UserID
		want   bool
	}{
		{"_@alice:example.org_DEV_m.call", stAlice, true},
		{"_@alice:example.org_DEV", stAlice, true},       // before js-sdk #4945
		{"@alice:example.org_DEV_m.call", stAlice, true}, // owned-state room versions
		{"_@alice:example.org_DEV_m.call", stBob, false}, // bob writing alice's key
		{"_@alice:example.org.evil_DEV_m.call", stAlice, false},
		{"_@alice:example.org", stAlice, false}, // generation 1 style
		{"@alice:example.org", stAlice, false},
		{"", stAlice, false},
		{"_@alice:example.org_DEV_m.call", "", false},
		{"_@al:example.org_ice:example.org_X", "@al:example.org", true},
	}
	for _, c := range cases {
		if got := keyNamesSender(c.key, c.sender); got != c.want {
			t.Errorf("keyNamesSender(%q, %s) = %v, want %v", c.key, c.sender, got, c.want)
		}
	}
}

func TestCallMembership(t *testing.T) {
	now := msTime(t0ms)
	const dev = id.DeviceID("BOBDEV")
	bobKey := callKey(stBob, dev)
	aliceKey := callKey(stAlice, "ALICEDEV")
	cases := []struct {
		name   string
		events func(t testing.TB) []*event.Event
		user   id.UserID
		device id.DeviceID
		slot   string
		at     time.Time
		want   callState
	}{
		{
			name: "valid membership",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms-1000, ecContent(dev, ""))}
			},
			user: stBob, device: dev,
			want: callState{active: true, expires: msTime(t0ms - 1000).Add(4 * time.Hour), key: bobKey},
		},
		{
			name: "created_ts starts the expiry",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms-1000,
					ecContent(dev, fmt.Sprintf(`,"created_ts":%d`, t0ms-3*3600*1000)))}
			},
			user: stBob, device: dev,
			want: callState{active: true, expires: msTime(t0ms - 3*3600*1000).Add(4 * time.Hour), key: bobKey},
		},
		{
			name: "expired",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms-5*3600*1000, ecContent(dev, ""))}
			},
			user: stBob, device: dev,
			want: callState{key: bobKey, ended: msTime(t0ms - 5*3600*1000).Add(4 * time.Hour)},
		},
		{
			name: "no expires field means 4 h",
			events: func(t testing.TB) []*event.Event {
				c := `{"application":"m.call","call_id":"","device_id":"BOBDEV","focus_active":{"type":"livekit"}}`
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{active: true, expires: msTime(t0ms).Add(4 * time.Hour), key: bobKey},
		},
		{
			name: "hung up",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					callEvt(t, "$c1", bobKey, stBob, t0ms-2000, ecContent(dev, "")),
					callEvt(t, "$c2", bobKey, stBob, t0ms-500, `{}`),
				}
			},
			user: stBob, device: dev,
			want: callState{key: bobKey, ended: msTime(t0ms - 500)},
		},
		{
			name: "left the room",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					callEvt(t, "$c1", bobKey, stBob, t0ms-2000, ecContent(dev, "")),
					memberEvt(t, "$l", stBob, stBob, "leave", t0ms-100),
				}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "sender never joined",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", callKey(stCarol, "C"), stCarol, t0ms, ecContent("C", ""))}
			},
			user: stCarol, device: "C",
			want: callState{},
		},
		{
			name: "spoofed: bob writes a membership under alice's key",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", aliceKey, stBob, t0ms, ecContent(dev, ""))}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "spoofed: bob writes alice's device under alice's key",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", aliceKey, stBob, t0ms, ecContent("ALICEDEV", ""))}
			},
			user: stAlice, device: "ALICEDEV",
			want: callState{},
		},
		{
			name: "overwritten by another user: gone, but not hung up",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					callEvt(t, "$c1", aliceKey, stAlice, t0ms-2000, ecContent("ALICEDEV", "")),
					callEvt(t, "$c2", aliceKey, stBob, t0ms-1000, `{}`),
				}
			},
			user: stAlice, device: "ALICEDEV",
			want: callState{key: aliceKey},
		},
		{
			name: "another device's membership does not count",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{callEvt(t, "$c1", callKey(stBob, "OTHER"), stBob, t0ms, ecContent("OTHER", ""))}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "another slot does not count",
			events: func(t testing.TB) []*event.Event {
				c := `{"application":"m.call","call_id":"side","device_id":"BOBDEV","focus_active":{"type":"livekit"}}`
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "named slot",
			events: func(t testing.TB) []*event.Event {
				c := `{"application":"m.call","call_id":"side","device_id":"BOBDEV","focus_active":{"type":"livekit"}}`
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms, c)}
			},
			user: stBob, device: dev, slot: "m.call#side",
			want: callState{active: true, expires: msTime(t0ms).Add(4 * time.Hour), key: bobKey},
		},
		{
			name: "invalid content: no focus_active",
			events: func(t testing.TB) []*event.Event {
				c := `{"application":"m.call","call_id":"","device_id":"BOBDEV"}`
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "invalid content: device_id not a string",
			events: func(t testing.TB) []*event.Event {
				c := `{"application":"m.call","call_id":"","device_id":7,"focus_active":{"type":"livekit"}}`
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "generation 1 content is ignored",
			events: func(t testing.TB) []*event.Event {
				c := `{"memberships":[{"application":"m.call","call_id":"","device_id":"BOBDEV","expires":3600000}]}`
				return []*event.Event{callEvt(t, "$c1", string(stBob), stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "per-user scope is not a room call",
			events: func(t testing.TB) []*event.Event {
				c := `{"application":"m.call","call_id":"","scope":"m.user","device_id":"BOBDEV","focus_active":{"type":"livekit"}}`
				return []*event.Event{callEvt(t, "$c1", bobKey, stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{},
		},
		{
			name: "rejoined after hanging up",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					callEvt(t, "$c1", bobKey, stBob, t0ms-3000, ecContent(dev, "")),
					callEvt(t, "$c2", bobKey, stBob, t0ms-2000, `{}`),
					callEvt(t, "$c3", bobKey, stBob, t0ms-1000, ecContent(dev, "")),
				}
			},
			user: stBob, device: dev,
			want: callState{active: true, expires: msTime(t0ms - 1000).Add(4 * time.Hour), key: bobKey},
		},
		{
			name: "sticky membership",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{rtcEvt(t, "$s1", stBob, t0ms-1000, rtcContent(stBob, dev, "m1", "m1"))}
			},
			user: stBob, device: dev,
			want: callState{active: true, expires: msTime(t0ms - 1000).Add(time.Hour)},
		},
		{
			name: "sticky membership naming another user",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{rtcEvt(t, "$s1", stBob, t0ms-1000, rtcContent(stAlice, "ALICEDEV", "m1", "m1"))}
			},
			user: stAlice, device: "ALICEDEV",
			want: callState{},
		},
		{
			name: "sticky leave",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					rtcEvt(t, "$s1", stBob, t0ms-2000, rtcContent(stBob, dev, "m1", "m1")),
					rtcEvt(t, "$s2", stBob, t0ms-1000, `{"msc4354_sticky_key":"m1"}`),
				}
			},
			user: stBob, device: dev,
			want: callState{ended: msTime(t0ms - 1000)},
		},
		{
			name: "an older sticky event does not replace a newer one",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					rtcEvt(t, "$s2", stBob, t0ms-1000, rtcContent(stBob, dev, "m1", "m1")),
					rtcEvt(t, "$s1", stBob, t0ms-2000, `{"msc4354_sticky_key":"m1"}`),
				}
			},
			user: stBob, device: dev,
			want: callState{active: true, expires: msTime(t0ms - 1000).Add(time.Hour)},
		},
		{
			name: "sticky expired",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{rtcEvt(t, "$s1", stBob, t0ms-2*3600*1000, rtcContent(stBob, dev, "m1", "m1"))}
			},
			user: stBob, device: dev,
			want: callState{ended: msTime(t0ms - 3600*1000)},
		},
		{
			name: "sticky keys disagree",
			events: func(t testing.TB) []*event.Event {
				c := rtcContent(stBob, dev, "m1", "m1")
				c = c[:len(c)-1] + `,"sticky_key":"other"}`
				return []*event.Event{rtcEvt(t, "$s1", stBob, t0ms, c)}
			},
			user: stBob, device: dev,
			want: callState{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := joinedRoom(t)
			for _, evt := range c.events(t) {
				r.apply(evt, now)
			}
			when := c.at
			if when.IsZero() {
				when = now
			}
			got := r.call(c.user, c.device, c.slot, when)
			if got.active != c.want.active || !got.expires.Equal(c.want.expires) ||
				got.key != c.want.key || !got.ended.Equal(c.want.ended) {
				t.Errorf("call(%s, %s) = %+v, want %+v", c.user, c.device, got, c.want)
			}
		})
	}
}

func TestApplyDeduplicates(t *testing.T) {
	r := joinedRoom(t)
	now := msTime(t0ms)
	key := callKey(stBob, "BOBDEV")
	join := callEvt(t, "$c1", key, stBob, t0ms-2000, ecContent("BOBDEV", ""))
	hangup := callEvt(t, "$c2", key, stBob, t0ms-1000, `{}`)
	if !r.apply(join, now) {
		t.Fatal("first delivery not applied")
	}
	// An application service transaction retried with more events: the
	// repeated event is dropped, the new one applied.
	if r.apply(join, now) {
		t.Error("repeated event applied again")
	}
	if !r.apply(hangup, now) {
		t.Error("new event of the retried transaction not applied")
	}
	// A sync may carry the same event in state and timeline.
	if r.apply(hangup, now) || r.apply(join, now) {
		t.Error("repeated events applied")
	}
	if st := r.call(stBob, "BOBDEV", "", now); st.active {
		t.Errorf("after hang-up: %+v", st)
	}
	// Irrelevant events are not kept.
	if r.apply(mkEvent(t, "$m", "m.room.message", nil, stBob, t0ms, `{"body":"hi"}`), now) {
		t.Error("message event reported as a change")
	}
}

func TestSeenIsBounded(t *testing.T) {
	r := newRoomState()
	now := msTime(t0ms)
	for i := range seenLimit + 10 {
		r.apply(memberEvt(t, fmt.Sprintf("$e%d", i), stBob, stBob, "join", t0ms), now)
	}
	if len(r.seen) != seenLimit || len(r.seenRing) != seenLimit {
		t.Errorf("seen holds %d IDs, ring %d; want %d", len(r.seen), len(r.seenRing), seenLimit)
	}
	if r.markSeen("$e0") != true {
		t.Error("the oldest ID was not forgotten")
	}
	if r.markSeen(id.EventID(fmt.Sprintf("$e%d", seenLimit+9))) {
		t.Error("a recent ID was forgotten")
	}
}

// A fresh filtered /sync puts call.member events in the timeline, not the
// state section (TESTENV.md): state first, then timeline, gives the
// current state.
func TestSyncOrderStateThenTimeline(t *testing.T) {
	r := newRoomState()
	now := msTime(t0ms)
	key := callKey(stBob, "BOBDEV")
	state := []*event.Event{
		memberEvt(t, "$ja", stAlice, stAlice, "join", t0ms-9000),
		memberEvt(t, "$jb", stBob, stBob, "join", t0ms-8000),
		callEvt(t, "$c0", key, stBob, t0ms-7000, `{}`),
	}
	timeline := []*event.Event{
		callEvt(t, "$c1", key, stBob, t0ms-1000, ecContent("BOBDEV", "")),
		callEvt(t, "$c1", key, stBob, t0ms-1000, ecContent("BOBDEV", "")),
	}
	for _, evt := range append(state, timeline...) {
		r.apply(evt, now)
	}
	if st := r.call(stBob, "BOBDEV", "", now); !st.active {
		t.Errorf("membership from the timeline not active: %+v", st)
	}
}

func TestSnapshot(t *testing.T) {
	now := msTime(t0ms)
	key := callKey(stBob, "BOBDEV")
	snapshot := func(t testing.TB) []*event.Event {
		return []*event.Event{
			mkEvent(t, "$create", "m.room.create", strp(""), stAlice, t0ms-9000, `{"room_version":"10"}`),
			memberEvt(t, "$ja", stAlice, stAlice, "join", t0ms-9000),
			memberEvt(t, "$jb", stBob, stBob, "join", t0ms-8000),
			callEvt(t, "$c1", key, stBob, t0ms-5000, ecContent("BOBDEV", "")),
			mkEvent(t, "$name", "m.room.name", strp(""), stAlice, t0ms-9000, `{"name":"x"}`),
		}
	}

	t.Run("complete", func(t *testing.T) {
		r := newRoomState()
		r.applySnapshot(snapshot(t), r.gen, now)
		if !r.complete {
			t.Fatal("not complete after a snapshot")
		}
		if !r.call(stBob, "BOBDEV", "", now).active || r.membership(stAlice) != event.MembershipJoin {
			t.Error("snapshot not applied")
		}
	})
	t.Run("live event during the fetch wins", func(t *testing.T) {
		r := newRoomState()
		since := r.gen
		// Bob hangs up while the snapshot is on its way.
		r.apply(callEvt(t, "$c2", key, stBob, t0ms-1000, `{}`), now)
		r.applySnapshot(snapshot(t), since, now)
		if st := r.call(stBob, "BOBDEV", "", now); st.active {
			t.Errorf("the older snapshot overwrote the hang-up: %+v", st)
		}
	})
	t.Run("older event pushed after the snapshot is ignored", func(t *testing.T) {
		r := newRoomState()
		r.applySnapshot(snapshot(t), r.gen, now)
		// A transaction that was on its way carries an event older than
		// the snapshot's.
		r.apply(callEvt(t, "$c0", key, stBob, t0ms-6000, `{}`), now)
		if st := r.call(stBob, "BOBDEV", "", now); !st.active {
			t.Errorf("an older pushed event overwrote the snapshot: %+v", st)
		}
		// A newer one applies, and an event in the snapshot is not applied
		// again.
		if r.apply(callEvt(t, "$c1", key, stBob, t0ms-5000, ecContent("BOBDEV", "")), now) {
			t.Error("event of the snapshot applied again")
		}
		r.apply(callEvt(t, "$c3", key, stBob, t0ms, `{}`), now)
		if st := r.call(stBob, "BOBDEV", "", now); st.active || !st.ended.Equal(now) {
			t.Errorf("newer pushed event not applied: %+v", st)
		}
	})
}

func TestPowerLevels(t *testing.T) {
	now := msTime(t0ms)
	cases := []struct {
		name      string
		events    func(t testing.TB) []*event.Event
		user      id.UserID
		level     int
		kickLevel int
	}{
		{
			name:   "no power levels: creator",
			events: func(t testing.TB) []*event.Event { return nil },
			user:   stAlice, level: 100, kickLevel: 50,
		},
		{
			name:   "no power levels: member",
			events: func(t testing.TB) []*event.Event { return nil },
			user:   stBob, level: 0, kickLevel: 50,
		},
		{
			name: "explicit",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{mkEvent(t, "$pl", "m.room.power_levels", strp(""), stAlice, t0ms,
					`{"users":{"@alice:example.org":100,"@bob:example.org":60},"users_default":5,"kick":70}`)}
			},
			user: stBob, level: 60, kickLevel: 70,
		},
		{
			name: "users_default",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{mkEvent(t, "$pl", "m.room.power_levels", strp(""), stAlice, t0ms,
					`{"users":{"@alice:example.org":100},"users_default":5}`)}
			},
			user: stCarol, level: 5, kickLevel: 50,
		},
		{
			name: "string levels keep the previous event",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					mkEvent(t, "$pl", "m.room.power_levels", strp(""), stAlice, t0ms, `{"users":{"@bob:example.org":60},"kick":70}`),
					mkEvent(t, "$pl2", "m.room.power_levels", strp(""), stAlice, t0ms, `{"users":{"@bob:example.org":"10"}}`),
				}
			},
			user: stBob, level: 60, kickLevel: 70,
		},
		{
			name: "room v12 creator outranks",
			events: func(t testing.TB) []*event.Event {
				return []*event.Event{
					mkEvent(t, "$create12", "m.room.create", strp(""), stAlice, t0ms,
						`{"room_version":"12","additional_creators":["@bob:example.org"]}`),
					mkEvent(t, "$pl", "m.room.power_levels", strp(""), stAlice, t0ms, `{"users":{}}`),
				}
			},
			user: stBob, level: math.MaxInt, kickLevel: 50,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := joinedRoom(t)
			for _, evt := range c.events(t) {
				r.apply(evt, now)
			}
			level, kick := r.powerLevels(c.user)
			if level != c.level || kick != c.kickLevel {
				t.Errorf("powerLevels(%s) = %d, %d; want %d, %d", c.user, level, kick, c.level, c.kickLevel)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	r := joinedRoom(t)
	now := msTime(t0ms)
	r.apply(memberEvt(t, "$kb", stBob, stAlice, "leave", t0ms), now)
	r.apply(memberEvt(t, "$bc", stCarol, stAlice, "ban", t0ms), now)
	for user, want := range map[id.UserID]event.Membership{
		stAlice: event.MembershipJoin, stBob: event.MembershipLeave, stCarol: event.MembershipBan,
		"@dave:example.org": "",
	} {
		if got := r.membership(user); got != want {
			t.Errorf("membership(%s) = %q, want %q", user, got, want)
		}
	}
	if got := r.joined(); len(got) != 1 || got[0] != stAlice {
		t.Errorf("joined() = %v", got)
	}
}

func FuzzCallMemberContent(f *testing.F) {
	f.Add(ecContent("DEV", ""), true)
	f.Add(`{}`, true)
	f.Add(`{"memberships":[]}`, true)
	f.Add(rtcContent(stBob, "DEV", "m", "m"), false)
	f.Add(`{"msc4354_sticky_key":"m"}`, false)
	f.Add(`{"application":{"type":"m.call"},"slot_id":"m.call#","member":{"user_id":"@bob:example.org","device_id":"","id":""},"sticky_key":"x"}`, false)
	f.Fuzz(func(t *testing.T, content string, state bool) {
		var obj map[string]any
		if json.Unmarshal([]byte(content), &obj) != nil {
			return // event content is always an object
		}
		r := joinedRoom(t)
		now := msTime(t0ms)
		var evt *event.Event
		if state {
			evt = callEvt(t, "$f", callKey(stBob, "DEV"), stBob, t0ms, content)
		} else {
			evt = rtcEvt(t, "$f", stBob, t0ms, content)
		}
		r.apply(evt, now)
		st := r.call(stBob, "DEV", "", now)
		if st.active && !st.expires.After(now) {
			t.Errorf("active membership already expired: %+v", st)
		}
		if st2 := r.call(stAlice, "DEV", "", now); st2.active {
			t.Errorf("bob's event gave alice a membership: %+v", st2)
		}
	})
}

// withReplaces sets evt's unsigned.replaces_state.
func withReplaces(evt *event.Event, replaced id.EventID) *event.Event {
	evt.Unsigned.ReplacesState = replaced
	return evt
}

// TestSyncOrderDendrite replays what Dendrite v0.13.8 sent the bot for a
// room it had just joined, where bob joined just before it: bob's join in
// the state section and again in the timeline, after his invite.
func TestSyncOrderDendrite(t *testing.T) {
	ts := int64(t0ms)
	botID := id.UserID("@authz:example.org")
	invBob := memberEvt(t, "$invbob", stBob, stAlice, "invite", ts)
	invBot := memberEvt(t, "$invbot", botID, stAlice, "invite", ts)
	joinBob := withReplaces(memberEvt(t, "$joinbob", stBob, stBob, "join", ts+100), "$invbob")
	joinBot := withReplaces(memberEvt(t, "$joinbot", botID, botID, "join", ts+90), "$invbot")
	create := mkEvent(t, "$create", "m.room.create", strp(""), stAlice, ts-10, `{"room_version":"10"}`)
	joinAlice := memberEvt(t, "$joinalice", stAlice, stAlice, "join", ts-10)
	batch := []*event.Event{
		invBot, joinBob, // "state"
		invBob, invBot, joinBob, joinBot, create, joinAlice, // "timeline"
	}
	got := syncOrder(batch)
	var ids []id.EventID
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	want := []id.EventID{"$invbob", "$invbot", "$joinbob", "$joinbot", "$create", "$joinalice"}
	if !slices.Equal(ids, want) {
		t.Errorf("syncOrder = %v, want %v", ids, want)
	}
	r := newRoomState()
	for _, e := range got {
		r.apply(e, msTime(ts))
	}
	for _, u := range []id.UserID{stAlice, stBob, botID} {
		if m := r.membership(u); m != event.MembershipJoin {
			t.Errorf("membership(%s) = %q", u, m)
		}
	}

	// The chain decides even where positions disagree: a join listed
	// before the invite it replaced.
	got = syncOrder([]*event.Event{joinBob, invBob})
	if got[0].ID != "$invbob" || got[1].ID != "$joinbob" {
		t.Errorf("syncOrder(join, invite) = %v, %v", got[0].ID, got[1].ID)
	}
	// Without links, positions are kept.
	a := memberEvt(t, "$a", stBob, stBob, "join", ts)
	b := memberEvt(t, "$b", stBob, stBob, "leave", ts)
	got = syncOrder([]*event.Event{a, b, nil})
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("syncOrder without links reordered: %v", got)
	}
}

// TestApplyAcrossSyncs replays two consecutive sync responses Dendrite
// v0.13.8 sent the bot: bob's join (replacing his invite), then the freshly
// joined room's state again, with the invite.
func TestApplyAcrossSyncs(t *testing.T) {
	ts := int64(t0ms)
	now := msTime(ts)
	invBob := memberEvt(t, "$invbob", stBob, stAlice, "invite", ts)
	joinBob := withReplaces(memberEvt(t, "$joinbob", stBob, stBob, "join", ts+100), "$invbob")

	r := newRoomState()
	r.tsOrder = true
	for _, e := range syncOrder([]*event.Event{joinBob}) {
		r.apply(e, now)
	}
	for _, e := range syncOrder([]*event.Event{invBob, joinBob}) {
		r.apply(e, now)
	}
	if m := r.membership(stBob); m != event.MembershipJoin {
		t.Errorf("membership(bob) = %q after the replayed invite", m)
	}

	t.Run("older by time, unlinked", func(t *testing.T) {
		r := newRoomState()
		r.tsOrder = true
		r.apply(memberEvt(t, "$new", stBob, stBob, "join", ts+100), now)
		if r.apply(memberEvt(t, "$old", stBob, stAlice, "invite", ts), now) {
			t.Error("older event applied under tsOrder")
		}
		// Delivery order alone (application service) applies it.
		r2 := newRoomState()
		r2.apply(memberEvt(t, "$new", stBob, stBob, "join", ts+100), now)
		if !r2.apply(memberEvt(t, "$old", stBob, stAlice, "invite", ts), now) {
			t.Error("event in delivery order dropped")
		}
	})
	t.Run("successor with a skewed clock", func(t *testing.T) {
		// A kick from a server whose clock is behind the joiner's.
		r := newRoomState()
		r.tsOrder = true
		r.apply(memberEvt(t, "$join", stCarol, stCarol, "join", ts+5000), now)
		kick := withReplaces(memberEvt(t, "$kick", stCarol, stAlice, "leave", ts), "$join")
		if !r.apply(kick, now) || r.membership(stCarol) != event.MembershipLeave {
			t.Errorf("kick replacing the join not applied: %q", r.membership(stCarol))
		}
	})
	t.Run("the replaced event of a replaced event", func(t *testing.T) {
		r := newRoomState()
		r.tsOrder = true
		leave := withReplaces(memberEvt(t, "$leave", stBob, stBob, "leave", ts+200), "$joinbob")
		r.apply(leave, now)
		r.apply(joinBob, now) // older: dropped, and what it replaced with it
		if r.apply(memberEvt(t, "$invbob", stBob, stAlice, "invite", ts+300), now) {
			t.Error("the invite the join replaced was applied")
		}
		if m := r.membership(stBob); m != event.MembershipLeave {
			t.Errorf("membership(bob) = %q", m)
		}
	})
}
