package auth

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Event types the watcher follows, besides m.room.member, m.room.create and
// m.room.power_levels.
const (
	// typeCallMember is the generation-2 call membership state event
	// (MATRIXRTC.md §1.2).
	typeCallMember = "org.matrix.msc3401.call.member"
	// typeRTCMember is the generation-3 sticky membership event, MSC4143
	// (MATRIXRTC.md §1.3).
	typeRTCMember = "org.matrix.msc4143.rtc.member"
)

const (
	// defaultCallExpiry applies to call.member content without "expires":
	// js-sdk's DEFAULT_EXPIRE_DURATION (MATRIXRTC.md §1.2).
	defaultCallExpiry = 4 * time.Hour
	// maxStickyDuration caps stickiness, as MSC4354 does (MATRIXRTC.md §1.3);
	// it is also the duration assumed when a homeserver without sticky
	// events delivered an rtc.member event without one.
	maxStickyDuration = time.Hour
	// seenLimit bounds the event IDs remembered per room for deduplication.
	// Homeservers repeat an event within one sync response or one
	// transaction retry, so a few thousand recent IDs are plenty.
	seenLimit = 4096
	// defaultSlot is the slot of the room-wide call: application "m.call"
	// with call_id "" (MATRIXRTC.md §1.2).
	defaultSlot = "m.call#ROOM"
	// creatorLevel is the power of a room creator in room versions where
	// creators outrank everyone (v12).
	creatorLevel = math.MaxInt
)

// callMember is one valid call membership: a (user, device) in a slot until
// expires.
type callMember struct {
	user     id.UserID
	device   id.DeviceID
	slot     string
	memberID string // MSC4143 member.id; "" for state memberships
	expires  time.Time
}

// callState is what the model knows about one (user, device) in one slot.
type callState struct {
	// active is set while a valid membership exists and the user is joined.
	active bool
	// expires is when the active membership runs out, unless renewed.
	expires time.Time
	// key is the state key of an active (or, if not active, the last)
	// call.member membership of the device; "" if it only has a sticky one.
	key string
	// ended is when the user's own membership for the device last ended,
	// by hang-up, expiry or leaving the room. It is zero if there never was
	// one, or if another user overwrote it (which the owner's client
	// usually repairs, so it does not count as hanging up).
	ended time.Time
}

// memberEntry is a user's m.room.member state.
type memberEntry struct {
	membership event.Membership
}

// callSlot is the state of one call.member state key.
type callSlot struct {
	// member is the membership the key holds; nil for {} or content that
	// does not count (invalid, spoofed, generation 1).
	member *callMember
	// last is the last membership the key held and endedAt when it ended;
	// endedByOwner tells whether its owner ended it.
	last         *callMember
	endedAt      time.Time
	endedByOwner bool
}

// stickyID identifies an MSC4354 sticky event stream.
type stickyID struct {
	sender id.UserID
	key    string
}

// stickySlot is the current sticky rtc.member event of a stickyID.
type stickySlot struct {
	rank    int64 // origin_server_ts + duration: the newer event wins
	eventID id.EventID
	member  *callMember
	last    *callMember
	endedAt time.Time
}

// roomState is the model of one Matrix room: the state that decides who may
// be in its calls. It is pure: not safe for concurrent use, and the caller
// supplies the time.
type roomState struct {
	// complete is set once the room's whole state has been seen (a /state
	// snapshot, or the bot's sync of a joined room). Before that, only
	// events since Stoa started are known.
	complete bool
	// stale is set by the watcher when events may no longer arrive (no
	// local member left in application service mode); a snapshot clears it.
	stale bool
	// tsOrder drops a live state event older (by origin_server_ts) than
	// the key's current one: set for sources that do not deliver in order
	// (Dendrite's /sync).
	tsOrder bool
	// gen counts live events applied; keys remember the gen that set them
	// so that a snapshot fetched earlier cannot overwrite newer state.
	gen uint64

	members map[id.UserID]*memberEntry
	power   *event.PowerLevelsEventContent
	create  *event.CreateEventContent
	creator id.UserID
	calls   map[string]*callSlot
	sticky  map[stickyID]*stickySlot
	keys    map[stateKey]keyMeta

	seen     map[id.EventID]struct{}
	seenRing []id.EventID
	seenNext int
}

func newRoomState() *roomState {
	return &roomState{
		members: map[id.UserID]*memberEntry{},
		calls:   map[string]*callSlot{},
		sticky:  map[stickyID]*stickySlot{},
		keys:    map[stateKey]keyMeta{},
		seen:    map[id.EventID]struct{}{},
	}
}

// markSeen records evt's ID and reports whether it was new.
func (r *roomState) markSeen(evt id.EventID) bool {
	if evt == "" {
		return true
	}
	if _, ok := r.seen[evt]; ok {
		return false
	}
	if len(r.seenRing) < seenLimit {
		r.seenRing = append(r.seenRing, evt)
	} else {
		delete(r.seen, r.seenRing[r.seenNext])
		r.seenRing[r.seenNext] = evt
		r.seenNext = (r.seenNext + 1) % seenLimit
	}
	r.seen[evt] = struct{}{}
	return true
}

// apply feeds one event as it happened (a sync or a transaction), in the
// order the homeserver delivered it. now is when it was received. It reports
// whether the event was new and one the model cares about.
//
// Homeservers repeat events (sync sections, transaction retries) and
// Dendrite's sync re-sends a freshly joined room's older state after newer
// events, so delivery order is not enough: an event is dropped if it was
// seen, if a known event replaced it (unsigned.replaces_state), and, with
// tsOrder or against a snapshot, if it is older than the key's current
// event by origin_server_ts.
func (r *roomState) apply(evt *event.Event, now time.Time) bool {
	if !relevant(evt) {
		return false
	}
	if replaced := evt.Unsigned.ReplacesState; replaced != "" {
		// Whatever evt replaced is older than evt: never apply it later.
		r.markSeen(replaced)
	}
	if !r.markSeen(evt.ID) {
		return false
	}
	if evt.StateKey != nil {
		k := stateKey{evt.Type.Type, *evt.StateKey}
		if m, ok := r.keys[k]; ok {
			successor := evt.Unsigned.ReplacesState != "" && evt.Unsigned.ReplacesState == m.id
			if m.replaces != "" && m.replaces == evt.ID {
				return false // the current event replaced this one
			}
			if !successor && (m.snap || r.tsOrder) && evt.Timestamp < m.ts {
				return false // older than what the key holds
			}
		}
		r.gen++
		r.keys[k] = keyMeta{gen: r.gen, ts: evt.Timestamp, id: evt.ID, replaces: evt.Unsigned.ReplacesState}
	} else {
		r.gen++
	}
	r.set(evt, now)
	return true
}

// applySnapshot feeds a room's whole state (GET /rooms/{id}/state) that was
// requested when the room's gen was since: keys that live events changed
// after that keep their newer value. It marks the room complete.
func (r *roomState) applySnapshot(evts []*event.Event, since uint64, now time.Time) {
	for _, evt := range evts {
		if evt == nil || evt.StateKey == nil || !relevant(evt) {
			continue
		}
		k := stateKey{evt.Type.Type, *evt.StateKey}
		if r.keys[k].gen > since {
			continue // a live event changed it after the snapshot was asked for
		}
		r.markSeen(evt.ID)
		r.keys[k] = keyMeta{gen: since, ts: evt.Timestamp, snap: true, id: evt.ID, replaces: evt.Unsigned.ReplacesState}
		r.set(evt, now)
	}
	r.complete = true
	r.stale = false
}

// syncOrder puts the events of one room in one /sync response into an
// order apply can take. Dendrite v0.13.8 does not keep sync's contract that
// "state" is the state before "timeline": a freshly joined room's state
// section may hold an event that the timeline repeats, after older events
// of the same key (an invite listed after the join that replaced it). So an
// event that occurs twice counts at its last position, and events of one
// state key are put in the order their unsigned.replaces_state links give
// (an event comes after the one it replaced); otherwise the order is kept.
func syncOrder(evts []*event.Event) []*event.Event {
	last := make(map[id.EventID]int, len(evts))
	for i, evt := range evts {
		if evt != nil && evt.ID != "" {
			last[evt.ID] = i
		}
	}
	out := make([]*event.Event, 0, len(evts))
	byID := make(map[id.EventID]*event.Event, len(evts))
	for i, evt := range evts {
		if evt == nil || evt.ID != "" && last[evt.ID] != i {
			continue
		}
		out = append(out, evt)
		if evt.ID != "" {
			byID[evt.ID] = evt
		}
	}
	// depth counts the replaced events of the same key within the batch.
	depth := func(evt *event.Event) int {
		d := 0
		for cur := evt; d < len(out); d++ {
			prev := byID[cur.Unsigned.ReplacesState]
			if prev == nil || prev.StateKey == nil || *prev.StateKey != *cur.StateKey || prev.Type != cur.Type {
				break
			}
			cur = prev
		}
		return d
	}
	groups := map[stateKey][]int{} // positions in out, per key
	for i, evt := range out {
		if evt.StateKey != nil {
			k := stateKey{evt.Type.Type, *evt.StateKey}
			groups[k] = append(groups[k], i)
		}
	}
	for _, pos := range groups {
		if len(pos) < 2 {
			continue
		}
		sorted := make([]*event.Event, len(pos))
		for j, p := range pos {
			sorted[j] = out[p]
		}
		slices.SortStableFunc(sorted, func(a, b *event.Event) int { return depth(a) - depth(b) })
		for j, p := range pos {
			out[p] = sorted[j]
		}
	}
	return out
}

// relevant reports whether the model keeps evt.
func relevant(evt *event.Event) bool {
	switch evt.Type.Type {
	case event.StateMember.Type, event.StatePowerLevels.Type, event.StateCreate.Type, typeCallMember:
		return evt.StateKey != nil
	case typeRTCMember:
		return evt.StateKey == nil
	}
	return false
}

// stateKey names a piece of room state.
type stateKey struct{ typ, key string }

// keyMeta is how a piece of state was last set: by the live event applied as
// gen, or by a snapshot (then gen is the snapshot's since); the event's ID,
// the event it replaced, and when it was sent.
type keyMeta struct {
	gen      uint64
	ts       int64
	snap     bool
	id       id.EventID
	replaces id.EventID
}

func (r *roomState) set(evt *event.Event, now time.Time) {
	raw := []byte(evt.Content.VeryRaw)
	switch evt.Type.Type {
	case event.StateCreate.Type:
		if *evt.StateKey != "" {
			return
		}
		var c event.CreateEventContent
		if json.Unmarshal(raw, &c) == nil {
			r.create = &c
			r.creator = evt.Sender
			if r.creator == "" {
				r.creator = c.Creator
			}
		}
	case event.StateMember.Type:
		var c struct {
			Membership event.Membership `json:"membership"`
		}
		if json.Unmarshal(raw, &c) != nil {
			return
		}
		r.members[id.UserID(*evt.StateKey)] = &memberEntry{membership: c.Membership}
	case event.StatePowerLevels.Type:
		if *evt.StateKey != "" {
			return
		}
		var pl event.PowerLevelsEventContent
		if json.Unmarshal(raw, &pl) != nil {
			// Old rooms may carry string levels; keep what we had.
			return
		}
		r.power = &pl
	case typeCallMember:
		r.setCall(evt, raw, now)
	case typeRTCMember:
		r.setSticky(evt, raw, now)
	}
}

func (r *roomState) setCall(evt *event.Event, raw []byte, now time.Time) {
	key := *evt.StateKey
	slot := r.calls[key]
	if slot == nil {
		slot = &callSlot{}
		r.calls[key] = slot
	}
	m := parseCallMember(evt, raw)
	if old := slot.member; old != nil && (m == nil || m.user != old.user || m.device != old.device || m.slot != old.slot) {
		slot.last = old
		slot.endedAt = sentAt(evt, now)
		slot.endedByOwner = evt.Sender == old.user
	}
	slot.member = m
}

// sentAt is when evt was sent by its origin_server_ts, or now if that is
// missing or in the future (a remote server's clock).
func sentAt(evt *event.Event, now time.Time) time.Time {
	t := time.UnixMilli(evt.Timestamp)
	if evt.Timestamp <= 0 || t.After(now) {
		return now
	}
	return t
}

// callMemberContent is the content of a generation-2 membership
// (MATRIXRTC.md §1.2). Pointers tell absent fields from empty ones; a field
// of the wrong JSON type makes the whole content invalid.
type callMemberContent struct {
	Application *string `json:"application"`
	CallID      *string `json:"call_id"`
	DeviceID    *string `json:"device_id"`
	Scope       *string `json:"scope"`
	FocusActive *struct {
		Type *string `json:"type"`
	} `json:"focus_active"`
	Expires   *int64 `json:"expires"`
	CreatedTS *int64 `json:"created_ts"`
}

// parseCallMember returns the membership a call.member state event
// establishes, or nil if it establishes none: {} (hang-up), content that
// js-sdk's checkSessionsMembershipData rejects, generation-1 content, or a
// state key naming a user other than the sender. The last matters because
// Dendrite lets anyone who may send the type write any key (TESTENV.md).
func parseCallMember(evt *event.Event, raw []byte) *callMember {
	if !keyNamesSender(*evt.StateKey, evt.Sender) {
		return nil
	}
	var c callMemberContent
	if json.Unmarshal(raw, &c) != nil {
		return nil
	}
	if c.Application == nil || c.CallID == nil || c.DeviceID == nil || *c.DeviceID == "" ||
		c.FocusActive == nil || c.FocusActive.Type == nil {
		return nil
	}
	if c.Scope != nil && *c.Scope == "m.user" {
		return nil // per-user calls are not room calls
	}
	created := evt.Timestamp
	if c.CreatedTS != nil {
		created = *c.CreatedTS
	}
	expiry := defaultCallExpiry
	if c.Expires != nil {
		expiry = time.Duration(*c.Expires) * time.Millisecond
	}
	callID := *c.CallID
	if callID == "" {
		callID = "ROOM"
	}
	return &callMember{
		user:    evt.Sender,
		device:  id.DeviceID(*c.DeviceID),
		slot:    *c.Application + "#" + callID,
		expires: time.UnixMilli(created).Add(expiry),
	}
}

// keyNamesSender reports whether a call.member state key belongs to sender:
// "_@user:server_DEVICE_m.call" (or without the leading "_" in owned-state
// room versions). Server names cannot contain "_", so the user ID ends at
// the first "_" after it.
func keyNamesSender(key string, sender id.UserID) bool {
	if sender == "" {
		return false
	}
	key = strings.TrimPrefix(key, "_")
	return strings.HasPrefix(key, string(sender)+"_")
}

// rtcMemberContent is the js-sdk shape of an MSC4143 rtc.member event
// (MATRIXRTC.md §1.3).
type rtcMemberContent struct {
	SlotID      *string `json:"slot_id"`
	Application *struct {
		Type *string `json:"type"`
	} `json:"application"`
	Member *struct {
		UserID   *string `json:"user_id"`
		DeviceID *string `json:"device_id"`
		ID       *string `json:"id"`
	} `json:"member"`
	StickyKey      *string `json:"sticky_key"`
	UnstableSticky *string `json:"msc4354_sticky_key"`
	RTCTransports  []struct {
		Type *string `json:"type"`
	} `json:"rtc_transports"`
}

func (r *roomState) setSticky(evt *event.Event, raw []byte, now time.Time) {
	var c rtcMemberContent
	if json.Unmarshal(raw, &c) != nil {
		return
	}
	key := c.UnstableSticky
	if key == nil {
		key = c.StickyKey
	} else if c.StickyKey != nil && *c.StickyKey != *key {
		return
	}
	if key == nil {
		return
	}
	// Stickiness runs from the event's origin_server_ts (capped by when we
	// received it) for its sticky duration (MSC4354).
	start := sentAt(evt, now)
	duration := maxStickyDuration
	switch {
	case evt.Sticky != nil:
		duration = evt.Sticky.GetDuration()
	case evt.Unsigned.StickyDurationTTL.Duration > 0:
		start = now
		duration = min(evt.Unsigned.StickyDurationTTL.Duration, maxStickyDuration)
	}
	sid := stickyID{sender: evt.Sender, key: *key}
	slot := r.sticky[sid]
	rank := start.Add(duration).UnixMilli()
	if slot != nil && (rank < slot.rank || rank == slot.rank && evt.ID < slot.eventID) {
		return // an older event of the stream
	}
	if slot == nil {
		slot = &stickySlot{}
		r.sticky[sid] = slot
	}
	m := parseRTCMember(evt, &c, start.Add(duration))
	if old := slot.member; old != nil && (m == nil || m.device != old.device || m.memberID != old.memberID || m.slot != old.slot) {
		slot.last = old
		slot.endedAt = sentAt(evt, now)
	}
	slot.rank = rank
	slot.eventID = evt.ID
	slot.member = m
}

// parseRTCMember applies js-sdk's checkRtcMembershipData; a leave event
// (only the sticky key) or invalid content yields nil.
func parseRTCMember(evt *event.Event, c *rtcMemberContent, expires time.Time) *callMember {
	if c.SlotID == nil || c.Application == nil || c.Application.Type == nil || c.Member == nil ||
		c.Member.UserID == nil || c.Member.DeviceID == nil || c.Member.ID == nil {
		return nil
	}
	app := *c.Application.Type
	if app == "" || strings.Contains(app, "#") || !strings.HasPrefix(*c.SlotID, app+"#") ||
		strings.Count(*c.SlotID, "#") != 1 {
		return nil
	}
	if id.UserID(*c.Member.UserID) != evt.Sender || *c.Member.DeviceID == "" {
		return nil
	}
	for _, t := range c.RTCTransports {
		if t.Type == nil {
			return nil
		}
	}
	return &callMember{
		user:     evt.Sender,
		device:   id.DeviceID(*c.Member.DeviceID),
		slot:     *c.SlotID,
		memberID: *c.Member.ID,
		expires:  expires,
	}
}

// membership returns user's room membership ("" if unknown).
func (r *roomState) membership(user id.UserID) event.Membership {
	if m := r.members[user]; m != nil {
		return m.membership
	}
	return ""
}

// powerLevels returns user's power level and the kick level, with the
// spec's defaults when the room has no m.room.power_levels (creator 100,
// others 0, kick 50) and creator power in room versions that have it.
func (r *roomState) powerLevels(user id.UserID) (level, kick int) {
	if r.create != nil && r.create.SupportsCreatorPower() &&
		(user == r.creator || containsUser(r.create.AdditionalCreators, user)) {
		level = creatorLevel
	} else if r.power != nil {
		level = r.power.GetUserLevel(user)
	} else if user == r.creator {
		level = 100
	}
	kick = 50
	if r.power != nil {
		kick = r.power.Kick()
	}
	return level, kick
}

func containsUser(list []id.UserID, user id.UserID) bool {
	for _, u := range list {
		if u == user {
			return true
		}
	}
	return false
}

// call returns what is known of device's membership of user in slot at now.
// A membership counts only while the user is joined to the room.
func (r *roomState) call(user id.UserID, device id.DeviceID, slot string, now time.Time) callState {
	if slot == "" {
		slot = defaultSlot
	}
	var st callState
	joined := r.membership(user) == event.MembershipJoin
	match := func(m *callMember) bool {
		return m != nil && m.user == user && m.device == device && m.slot == slot
	}
	// ended keeps the latest end of an own membership.
	ended := func(t time.Time) {
		if t.After(st.ended) {
			st.ended = t
		}
	}
	for key, c := range r.calls {
		switch {
		case match(c.member) && c.member.expires.After(now):
			if joined {
				if !st.active || c.member.expires.After(st.expires) {
					st.expires = c.member.expires
					st.key = key
				}
				st.active = true
			}
		case match(c.member):
			ended(c.member.expires)
			if st.key == "" {
				st.key = key
			}
		case match(c.last):
			if c.endedByOwner {
				ended(c.endedAt)
			}
			if st.key == "" {
				st.key = key
			}
		}
	}
	for _, s := range r.sticky {
		switch {
		case match(s.member) && s.member.expires.After(now):
			if joined {
				if !st.active || s.member.expires.After(st.expires) {
					st.expires = s.member.expires
				}
				st.active = true
			}
		case match(s.member):
			ended(s.member.expires)
		case match(s.last):
			ended(s.endedAt)
		}
	}
	if st.active {
		st.ended = time.Time{}
	}
	return st
}

// joined lists the users whose membership is join.
func (r *roomState) joined() []id.UserID {
	var out []id.UserID
	for u, m := range r.members {
		if m.membership == event.MembershipJoin {
			out = append(out, u)
		}
	}
	return out
}
