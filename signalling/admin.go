package signalling

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// Administration from the server side: the methods the authorisation
// service calls (its SFU interface), and the room and participant
// operations behind RoomService (roomservice.go). All of them may be called
// from any goroutine; none holds a lock while it talks to a client.

// RoomExists reports whether a room named room is open.
func (s *Server) RoomExists(room string) bool {
	r := s.room(room, false)
	return r != nil && !r.isClosed()
}

// CreateRoom opens room with the server's default settings if it is not
// open yet. Anyone whose token names the room may join it; a join opens a
// room anyway, so this only starts its empty timeout early.
func (s *Server) CreateRoom(room string) error {
	if err := checkRoomName(room); err != nil {
		return err
	}
	if s.room(room, true) == nil {
		return errServerClosed
	}
	return nil
}

// Participants returns the identities in room, sorted, hidden participants
// included. It is nil if the room is not open.
func (s *Server) Participants(room string) []string {
	r := s.room(room, false)
	if r == nil {
		return nil
	}
	ps := r.all()
	ids := make([]string, 0, len(ps))
	for _, p := range ps {
		ids = append(ids, p.identity)
	}
	slices.Sort(ids)
	return ids
}

// RemoveParticipant disconnects identity from room with
// leave{PARTICIPANT_REMOVED, DISCONNECT}; the others see it leave. reason is
// only logged: LeaveRequest has no field for text. Removing someone who is
// not there is not an error.
func (s *Server) RemoveParticipant(room, identity, reason string) error {
	r := s.room(room, false)
	if r == nil {
		return nil
	}
	p := r.get(identity)
	if p == nil {
		return nil
	}
	p.log.Info("removing participant", "reason", reason)
	p.close(livekit.DisconnectReason_PARTICIPANT_REMOVED, livekit.LeaveRequest_DISCONNECT, false)
	return nil
}

// checkRoomName applies the join's limits to a room name.
func checkRoomName(name string) error {
	if name == "" {
		return errNoRoomName
	}
	if len(name) > maxRoomNameLen {
		return badRequest(fmt.Sprintf("room name length exceeds limits: max length %d", maxRoomNameLen))
	}
	return nil
}

// openRooms returns the rooms that are open.
func (s *Server) openRooms() []*room {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	return slices.DeleteFunc(rooms, (*room).isClosed)
}

// configure applies the non-zero settings of a CreateRoom request to a room
// that already exists, as LiveKit does; its sid and creation time stay. A
// running empty timeout is not restarted. A new metadata is sent to everyone.
func (r *room) configure(req *livekit.CreateRoomRequest) {
	r.mu.Lock()
	if req.EmptyTimeout > 0 {
		r.settings.emptyTimeout = time.Duration(req.EmptyTimeout) * time.Second
	}
	if req.DepartureTimeout > 0 {
		r.settings.departureTimeout = time.Duration(req.DepartureTimeout) * time.Second
	}
	if req.MaxParticipants > 0 {
		r.settings.maxParticipants = req.MaxParticipants
	}
	changed := req.Metadata != "" && req.Metadata != r.settings.metadata
	if changed {
		r.settings.metadata = req.Metadata
	}
	info := r.infoLocked()
	r.mu.Unlock()
	if changed {
		r.sendRoomUpdate(info)
	}
}

// setMetadata replaces the room's metadata, tells everyone with room_update
// and returns the room's new info.
func (r *room) setMetadata(metadata string) *livekit.Room {
	r.mu.Lock()
	r.settings.metadata = metadata
	info := r.infoLocked()
	r.mu.Unlock()
	r.sendRoomUpdate(info)
	return info
}

func (r *room) sendRoomUpdate(info *livekit.Room) {
	msg := &livekit.SignalResponse{Message: &livekit.SignalResponse_RoomUpdate{RoomUpdate: &livekit.RoomUpdate{Room: info}}}
	for _, p := range r.all() {
		p.send(msg)
	}
}

// participantInfos returns a snapshot of everyone in the room, hidden
// participants included, sorted by identity.
func (r *room) participantInfos() []*livekit.ParticipantInfo {
	ps := r.all()
	slices.SortFunc(ps, func(a, b *participant) int { return cmp.Compare(a.identity, b.identity) })
	out := make([]*livekit.ParticipantInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out
}

// sendServerData delivers pkt, a DataPacket without sender and sequence
// (PROTOCOL.md §5.6), on the channel of kind, which must be RELIABLE or
// LOSSY: to everyone when identities and sids are empty, else to the
// participants they name. It fails only if pkt is too large to forward.
func (r *room) sendServerData(kind livekit.DataPacket_Kind, pkt *livekit.DataPacket, identities, sids []string) error {
	b, err := proto.Marshal(pkt)
	if err != nil {
		return err
	}
	if len(b) > maxDataPacket {
		return errDataTooLarge
	}
	all := len(identities) == 0 && len(sids) == 0
	for _, p := range r.all() {
		if all || slices.Contains(identities, p.identity) || slices.Contains(sids, p.sid) {
			p.sendData(kind, b)
		}
	}
	return nil
}

// remoteMute mutes or unmutes the track with sid on behalf of the server:
// the publisher is told with a mute message, then everyone sees the new
// state. It returns a copy of the track's info, or false if p has no such
// track.
func (p *participant) remoteMute(sid string, muted bool) (*livekit.TrackInfo, bool) {
	p.mu.Lock()
	ok := !p.closed && p.trackLocked(sid) != nil
	p.mu.Unlock()
	if !ok {
		return nil, false
	}
	// The mute goes first, as in LiveKit: a client that saw its own info
	// disagree with its track's state would send its own state back.
	p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Mute{Mute: &livekit.MuteTrackRequest{Sid: sid, Muted: muted}}})
	return p.setMuted(sid, muted)
}

// setPermission replaces the participant's permission, as LiveKit's
// UpdateParticipant does (PROTOCOL.md §6.1): tracks of sources it may no
// longer publish are unpublished and the client told so, subscriptions
// follow can_subscribe, everyone sees the new permission, and the client
// gets a refresh token carrying it.
//
// A participant that becomes hidden stays visible to those who saw it
// already, and one that stops being hidden appears with its next update.
func (p *participant) setPermission(perm *livekit.ParticipantPermission) {
	p.mu.Lock()
	if p.closed || p.params.Claims == nil || p.params.Claims.Video == nil {
		p.mu.Unlock()
		return
	}
	claims := p.params.Claims.Clone()
	claims.Video.UpdateFromPermission(perm)
	now := claims.Video.ToPermission()
	old := p.permission()
	p.params.Claims = claims
	p.perm.Store(now)
	p.info.Permission = now
	subs := make([]string, 0, len(p.subs))
	for sid := range p.subs {
		subs = append(subs, sid)
	}
	p.mu.Unlock()
	p.log.Info("permission updated", "can_publish", now.CanPublish, "can_subscribe", now.CanSubscribe,
		"can_publish_data", now.CanPublishData, "hidden", now.Hidden)

	gone := p.unpublishWhere(func(t *publishedTrack) bool {
		return !now.CanPublish || !containsSource(now.CanPublishSources, t.info.Source)
	})
	for _, t := range gone {
		p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_TrackUnpublished{
			TrackUnpublished: &livekit.TrackUnpublishedResponse{TrackSid: t.info.Sid},
		}})
	}
	switch {
	case !now.CanSubscribe:
		for _, sid := range subs {
			p.unsubscribe(sid)
		}
	case old != nil && !old.CanSubscribe:
		p.subscribeExisting()
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	info := p.changedLocked()
	p.mu.Unlock()
	p.announce(info)
	p.sendRefreshToken()
}
