package signalling

import (
	"crypto/rand"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
)

// room is one LiveKit room on this node: who is in it and what they publish.
// Lock order: room.mu before participant.mu.
type room struct {
	version atomic.Uint32 // last ParticipantInfo version handed out

	s       *Server
	name    string
	sid     string
	created time.Time
	sif     []byte // sif_trailer: marks frames the SFU injects into E2EE tracks
	log     *slog.Logger
	stop    chan struct{} // closed when the room closes

	mu           sync.Mutex              // guards the following fields
	participants map[string]*participant // by identity
	closed       bool
	closeTimer   *time.Timer
	settings     roomSettings
	departures   []departure // recent leavers, for resuming clients
}

// roomSettings are what RoomService.CreateRoom may choose for a room
// (PROTOCOL.md §6.1); rooms opened by a join get the server's defaults.
type roomSettings struct {
	emptyTimeout     time.Duration // close if nobody joins within this time of creation
	departureTimeout time.Duration // close this long after the last participant left
	maxParticipants  uint32        // joins beyond this many are refused; 0: no limit
	metadata         string
}

func newRoom(s *Server, name string, settings roomSettings) *room {
	r := &room{
		s:            s,
		name:         name,
		sid:          newID("RM_"),
		created:      time.Now(),
		sif:          make([]byte, 8),
		participants: map[string]*participant{},
		stop:         make(chan struct{}),
		settings:     settings,
	}
	_, _ = rand.Read(r.sif)
	r.log = s.log.With("room", name, "room_sid", r.sid)
	// A room nobody joins closes after the empty timeout.
	r.closeTimer = time.AfterFunc(settings.emptyTimeout, r.closeIfEmpty)
	go r.speakerLoop()
	return r
}

// nextVersion returns a version larger than any given out before in this
// room: clients ignore a ParticipantInfo whose version does not increase.
func (r *room) nextVersion() uint32 { return r.version.Add(1) }

func (r *room) info() *livekit.Room {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.infoLocked()
}

func (r *room) infoLocked() *livekit.Room {
	var n, pubs uint32
	for _, p := range r.participants {
		if p.hidden() {
			continue
		}
		n++
		if p.isPublisher() {
			pubs++
		}
	}
	return &livekit.Room{
		Sid:              r.sid,
		Name:             r.name,
		EmptyTimeout:     uint32(r.settings.emptyTimeout / time.Second),
		DepartureTimeout: uint32(r.settings.departureTimeout / time.Second),
		MaxParticipants:  r.settings.maxParticipants,
		Metadata:         r.settings.metadata,
		CreationTime:     r.created.Unix(),
		CreationTimeMs:   r.created.UnixMilli(),
		NumParticipants:  n,
		NumPublishers:    pubs,
		EnabledCodecs:    enabledCodecs(),
	}
}

// fullLocked reports whether a new session for identity would take the room
// over its max participants. A session replacing one of the same identity
// does not add to the count.
func (r *room) fullLocked(identity string) bool {
	limit := r.settings.maxParticipants
	if limit == 0 {
		return false
	}
	if _, ok := r.participants[identity]; ok {
		return false
	}
	return uint32(len(r.participants)) >= limit
}

func (r *room) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// others returns everyone in the room but p.
func (r *room) others(p *participant) []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*participant, 0, len(r.participants))
	for _, q := range r.participants {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// all returns everyone in the room.
func (r *room) all() []*participant { return r.others(nil) }

func (r *room) get(identity string) *participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.participants[identity]
}

// broadcast sends a participant update about infos to everyone in the room
// except skip. Hidden participants' infos are never sent.
func (r *room) broadcast(skip *participant, infos ...*livekit.ParticipantInfo) {
	visible := infos[:0:0]
	for _, i := range infos {
		if i.Permission == nil || !i.Permission.Hidden {
			visible = append(visible, i)
		}
	}
	if len(visible) == 0 {
		return
	}
	msg := &livekit.SignalResponse{Message: &livekit.SignalResponse_Update{
		Update: &livekit.ParticipantUpdate{Participants: visible},
	}}
	for _, q := range r.others(skip) {
		q.send(msg)
	}
}

// remove takes p out of the room if it is still the participant for its
// identity, and starts the departure timer when the room is left empty.
func (r *room) remove(p *participant) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.participants[p.identity] != p {
		return false
	}
	delete(r.participants, p.identity)
	if len(r.participants) == 0 && !r.closed {
		if r.closeTimer != nil {
			r.closeTimer.Stop()
		}
		r.closeTimer = time.AfterFunc(r.settings.departureTimeout, r.closeIfEmpty)
	}
	return true
}

func (r *room) closeIfEmpty() {
	r.mu.Lock()
	if r.closed || len(r.participants) > 0 {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.s.dropRoom(r)
	r.log.Info("room closed")
}

// close ends the room: everyone gets a leave with reason and is removed.
func (r *room) close(reason livekit.DisconnectReason) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	if r.closeTimer != nil {
		r.closeTimer.Stop()
	}
	ps := make([]*participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	close(r.stop)
	for _, p := range ps {
		p.close(reason, livekit.LeaveRequest_DISCONNECT, false)
	}
	r.s.dropRoom(r)
}

// enabledCodecs are the codecs publishers may use. VP9 and AV1 are left out:
// their SVC layers need dependency-descriptor parsing to be selected, and a
// client told only VP8/H.264 publishes simulcast the SFU can switch.
func enabledCodecs() []*livekit.Codec {
	return []*livekit.Codec{
		{Mime: "video/VP8"},
		{Mime: "video/H264"},
		{Mime: "audio/opus"},
	}
}

// departure is a participant that left, kept for clients that resume after
// missing the news.
type departure struct {
	info *livekit.ParticipantInfo // state DISCONNECTED
	at   time.Time
}

// departureMemory is how long departures are remembered: a resume comes
// within the resume window.
const departureMemory = resumeWindow + 10*time.Second

// departed records info, the last state of a participant that left.
func (r *room) departed(info *livekit.ParticipantInfo) {
	if info.Permission != nil && info.Permission.Hidden {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	keep := r.departures[:0]
	for _, d := range r.departures {
		if now.Sub(d.at) < departureMemory && d.info.Identity != info.Identity {
			keep = append(keep, d)
		}
	}
	// Bounded by the participants who can leave within departureMemory;
	// cap it anyway so a join/leave storm cannot grow it without limit.
	if len(keep) >= 256 {
		keep = keep[1:]
	}
	r.departures = append(keep, departure{info: info, at: now})
}

// recentDepartures returns the remembered departures of identities that are
// not back in the room.
func (r *room) recentDepartures() []*livekit.ParticipantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var out []*livekit.ParticipantInfo
	for _, d := range r.departures {
		if _, back := r.participants[d.info.Identity]; !back && now.Sub(d.at) < departureMemory {
			out = append(out, d.info)
		}
	}
	return out
}
