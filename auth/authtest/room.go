package authtest

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Power levels of a call room, as Element creates one. Dendrite merges the
// events map of power_level_content_override with its own defaults
// (Synapse replaces it), so the whole map is sent, as Element does.
const (
	ownerLevel   = 100
	defaultLevel = 50 // state_default, kick, ban, redact
)

// callRoomEvents is the events map of power_level_content_override: Element
// Web's DEFAULT_EVENT_POWER_LEVELS (src/createRoom.ts) plus the two
// MatrixRTC membership types at 0, so that every member may join a call
// (MATRIXRTC.md §1.2; MSC3401, MSC4143).
func callRoomEvents() map[string]int {
	return map[string]int{
		"m.room.name":               50,
		"m.room.avatar":             50,
		"m.room.power_levels":       100,
		"m.room.history_visibility": 100,
		"m.room.canonical_alias":    50,
		"m.room.tombstone":          100,
		"m.room.server_acl":         100,
		"m.room.encryption":         100,
		CallMemberType:              0,
		RTCMemberType:               0,
	}
}

// CreateRoom creates a private room owned by owner (power level 100) with
// the power levels Element sets for calls: every member (users_default 0)
// may send org.matrix.msc3401.call.member and org.matrix.msc4143.rtc.member;
// other state, kick, ban and redact need 50. The users in invite are
// invited, not joined: call Join for each.
func (hs *Homeserver) CreateRoom(t testing.TB, owner *User, invite ...*User) id.RoomID {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	invitees := make([]id.UserID, 0, len(invite))
	for _, u := range invite {
		invitees = append(invitees, u.ID)
	}
	req := map[string]any{
		"preset": "private_chat",
		"name":   "authtest call room",
		"invite": invitees,
		"power_level_content_override": map[string]any{
			"users":          map[id.UserID]int{owner.ID: ownerLevel},
			"users_default":  0,
			"events":         callRoomEvents(),
			"events_default": 0,
			"state_default":  defaultLevel,
			"invite":         0,
			"kick":           defaultLevel,
			"ban":            defaultLevel,
			"redact":         defaultLevel,
		},
	}
	var resp mautrix.RespCreateRoom
	cli := owner.Client
	if _, err := cli.MakeRequest(ctx, http.MethodPost, cli.BuildClientURL("v3", "createRoom"), req, &resp); err != nil {
		t.Fatalf("authtest: %s creates a room: %v", owner.ID, err)
	}
	return resp.RoomID
}

// Join makes u join room; u must be invited (or the room public).
func (hs *Homeserver) Join(t testing.TB, u *User, room id.RoomID) {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	if _, err := u.Client.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("authtest: %s joins %s: %v", u.ID, room, err)
	}
}

// Invite makes by invite u into room.
func (hs *Homeserver) Invite(t testing.TB, by *User, room id.RoomID, u *User) {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	if _, err := by.Client.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: u.ID}); err != nil {
		t.Fatalf("authtest: %s invites %s to %s: %v", by.ID, u.ID, room, err)
	}
}

// Leave makes u leave room. Dendrite leaves u's call.member state as it
// was: emptying it is the client's job (EmptyCallMember).
func (hs *Homeserver) Leave(t testing.TB, u *User, room id.RoomID) {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	if _, err := u.Client.LeaveRoom(ctx, room); err != nil {
		t.Fatalf("authtest: %s leaves %s: %v", u.ID, room, err)
	}
}

// Kick makes by kick u out of room; by needs power level 50.
func (hs *Homeserver) Kick(t testing.TB, by *User, room id.RoomID, u *User) {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	if _, err := by.Client.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: u.ID, Reason: "authtest"}); err != nil {
		t.Fatalf("authtest: %s kicks %s from %s: %v", by.ID, u.ID, room, err)
	}
}

// Ban makes by ban u from room; by needs power level 50.
func (hs *Homeserver) Ban(t testing.TB, by *User, room id.RoomID, u *User) {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	if _, err := by.Client.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: u.ID, Reason: "authtest"}); err != nil {
		t.Fatalf("authtest: %s bans %s from %s: %v", by.ID, u.ID, room, err)
	}
}

// SetPowerLevel makes by set u's power level in room to level, keeping the
// rest of m.room.power_levels as it is.
func (hs *Homeserver) SetPowerLevel(t testing.TB, by *User, room id.RoomID, u *User, level int) {
	t.Helper()
	ctx, cancel := hs.context(t)
	defer cancel()
	var pl map[string]any
	if err := by.Client.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatalf("authtest: %s reads the power levels of %s: %v", by.ID, room, err)
	}
	users, _ := pl["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	users[string(u.ID)] = level
	pl["users"] = users
	if _, err := by.Client.SendStateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
		t.Fatalf("authtest: %s sets the power level of %s in %s to %d: %v", by.ID, u.ID, room, level, err)
	}
}
