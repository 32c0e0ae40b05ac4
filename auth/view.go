package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// errUnseen means the watcher does not follow the room.
var errUnseen = errors.New("auth: room not visible to Stoa")

// RoomView is the watcher's knowledge of Matrix rooms. The bot and
// application-service watchers implement it. Safe for concurrent use.
type RoomView interface {
	// Membership returns user's current m.room.member membership in room
	// ("" if none). It returns errUnseen when Stoa does not follow room.
	Membership(ctx context.Context, room id.RoomID, user id.UserID) (event.Membership, error)
	// PowerLevels returns user's power level in room and the room's kick
	// level (m.room.power_levels, with the spec's defaults).
	PowerLevels(ctx context.Context, room id.RoomID, user id.UserID) (level, kick int, err error)
}

// Ticket records what a minted token names, so that SFU participants can be
// traced back to Matrix users and their call memberships.
type Ticket struct {
	Alias    string // SFU room name
	Identity string // SFU participant identity
	Room     id.RoomID
	SlotID   string // "m.call#ROOM" for the room-wide call
	User     id.UserID
	Device   id.DeviceID
	MemberID string // MSC4143 member id; "" for legacy /sfu/get identities
	// DelayID and DelayTimeout are the client's MSC4140 delayed leave event
	// and its timeout, when the token request named one ("" and 0 if not).
	DelayID      string
	DelayTimeout time.Duration
}

// tickets holds the tickets of tokens issued, by SFU room and identity.
type tickets struct {
	mu     sync.Mutex // guards the following fields
	byRoom map[string]map[string]Ticket
	issued map[participantKey]time.Time
	adds   int
}

// ticketSweepEvery is how many issued tokens pass between sweeps of old
// tickets.
const ticketSweepEvery = 256

// add records k. Every ticketSweepEvery adds, tickets older than maxAge
// whose participant is not connected (present says who is) are dropped:
// their tokens have expired, and connected participants keep theirs for a
// reconnect with a refreshed token.
func (t *tickets) add(k Ticket, maxAge time.Duration, present func(alias, identity string) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byRoom == nil {
		t.byRoom = map[string]map[string]Ticket{}
		t.issued = map[participantKey]time.Time{}
	}
	now := time.Now()
	t.adds++
	if t.adds%ticketSweepEvery == 0 {
		for pk, at := range t.issued {
			if now.Sub(at) > maxAge && !present(pk.alias, pk.identity) {
				delete(t.issued, pk)
				delete(t.byRoom[pk.alias], pk.identity)
				if len(t.byRoom[pk.alias]) == 0 {
					delete(t.byRoom, pk.alias)
				}
			}
		}
	}
	t.issued[participantKey{k.Alias, k.Identity}] = now
	m := t.byRoom[k.Alias]
	if m == nil {
		m = map[string]Ticket{}
		t.byRoom[k.Alias] = m
	}
	m[k.Identity] = k
}

func (t *tickets) get(alias, identity string) (Ticket, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, ok := t.byRoom[alias][identity]
	return k, ok
}

// forRoom returns the tickets issued for the Matrix room.
func (t *tickets) forRoom(room id.RoomID) []Ticket {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Ticket
	for _, m := range t.byRoom {
		for _, k := range m {
			if k.Room == room {
				out = append(out, k)
			}
		}
	}
	return out
}
