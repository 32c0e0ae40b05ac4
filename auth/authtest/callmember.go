package authtest

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// MatrixRTC membership event types (MATRIXRTC.md §1.2, §1.3).
const (
	// CallMemberType is the state event Element Call sends in
	// compatibility mode (MSC3401, js-sdk MembershipManager).
	CallMemberType = "org.matrix.msc3401.call.member"
	// RTCMemberType is the sticky event of MSC4143's "Matrix 2.0" mode.
	RTCMemberType = "org.matrix.msc4143.rtc.member"
)

// callMemberDefaultExpiry is js-sdk's DEFAULT_EXPIRE_DURATION, 4 h in ms.
const callMemberDefaultExpiry = 14_400_000

func callMemberType() event.Type {
	return event.Type{Type: CallMemberType, Class: event.StateEventType}
}

// CallMemberKey returns the state key Element Call uses for u's
// membership in a room's call, _<userID>_<deviceID>_m.call. The leading
// underscore dodges the rule that a key starting with @ must equal the
// sender.
func CallMemberKey(u *User) string {
	return "_" + string(u.ID) + "_" + string(u.Device) + "_m.call"
}

// CallMemberContent returns the content Element Call sends when u joins
// room's call (js-sdk makeMyMembership, EC compatibility mode), with
// hs.LiveKitServiceURL as u's preferred focus. The map is new: callers may
// change it and send it with SendCallMemberWithKey.
func (hs *Homeserver) CallMemberContent(u *User, room id.RoomID) map[string]any {
	return map[string]any{
		"application":   "m.call",
		"call_id":       "",
		"scope":         "m.room",
		"device_id":     string(u.Device),
		"membershipID":  string(u.ID) + ":" + string(u.Device),
		"expires":       callMemberDefaultExpiry,
		"m.call.intent": "video",
		"focus_active":  map[string]any{"type": "livekit", "focus_selection": "multi_sfu"},
		"foci_preferred": []any{map[string]any{
			"livekit_alias":       string(room),
			"type":                "livekit",
			"livekit_service_url": hs.LiveKitServiceURL,
		}},
	}
}

// SendCallMember makes u join room's call as Element Call does: it sends
// CallMemberContent under CallMemberKey(u). It returns the event ID.
func (hs *Homeserver) SendCallMember(t testing.TB, u *User, room id.RoomID) id.EventID {
	t.Helper()
	return hs.SendCallMemberWithKey(t, u, room, CallMemberKey(u), hs.CallMemberContent(u, room))
}

// SendCallMemberWithKey makes u send a call.member state event with any
// state key and content, e.g. bob writing alice's key: Dendrite accepts
// that (it has no MSC3757 ownership check). It returns the event ID.
func (hs *Homeserver) SendCallMemberWithKey(t testing.TB, u *User, room id.RoomID, stateKey string, content any) id.EventID {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	resp, err := u.Client.SendStateEvent(ctx, room, callMemberType(), stateKey, content)
	if err != nil {
		t.Fatalf("authtest: %s sends %s %q in %s: %v", u.ID, CallMemberType, stateKey, room, err)
	}
	return resp.EventID
}

// EmptyCallMember makes u leave room's call as Element Call does on hang-up:
// content {} under CallMemberKey(u). It returns the event ID.
func (hs *Homeserver) EmptyCallMember(t testing.TB, u *User, room id.RoomID) id.EventID {
	t.Helper()
	return hs.SendCallMemberWithKey(t, u, room, CallMemberKey(u), map[string]any{})
}

// CallMemberState reads, as u, the content of the call.member state event
// with stateKey in room. It returns nil if the key was never set and an
// empty map if the membership was emptied.
func (hs *Homeserver) CallMemberState(t testing.TB, u *User, room id.RoomID, stateKey string) map[string]any {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	content := map[string]any{}
	err := u.Client.StateEvent(ctx, room, callMemberType(), stateKey, &content)
	if httpStatus(err) == http.StatusNotFound {
		return nil
	}
	if err != nil {
		t.Fatalf("authtest: %s reads %s %q in %s: %v", u.ID, CallMemberType, stateKey, room, err)
	}
	return content
}
