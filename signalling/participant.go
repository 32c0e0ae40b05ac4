package signalling

import (
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/stoa-rtc/stoa/sfu"
)

const (
	// resumeWindow is how long a participant whose WebSocket dropped is kept
	// for a resume. The JS SDK retries for about 45 s (PROTOCOL.md §5.8)
	// but gives up on resuming well before that.
	resumeWindow = 30 * time.Second
)

// participant is one joined client: its signal connection, its
// PeerConnections (one in single-PC mode, publisher and subscriber in
// dual-PC mode), what it publishes and what it receives.
type participant struct {
	// perm is the participant's permission: params.Permission until
	// UpdateParticipant replaces it. The value is never modified in place.
	perm        atomic.Pointer[livekit.ParticipantPermission]
	dataDropped atomic.Uint64 // data packets not delivered to this slow receiver

	room     *room
	sid      string
	identity string
	params   *joinParams
	log      *slog.Logger
	single   bool
	pub      *sfu.Peer // the client's offers go here (the only PC in single mode)
	sub      *sfu.Peer // the server's tracks go here (== pub in single mode)
	stop     chan struct{}
	stopOnce sync.Once

	mu          sync.Mutex // guards the following fields
	info        *livekit.ParticipantInfo
	conn        *wsConn
	pending     map[string]*livekit.TrackInfo // by cid, announced by add_track
	published   map[string]*publishedTrack    // by track sid
	subs        map[string]*subscription      // by track sid
	dataOut     [2]*webrtc.DataChannel        // by livekit.DataPacket_Kind
	lastDataSeq uint32
	closed      bool
	dropTimer   *time.Timer
}

// publishedTrack is a track the participant sends and the SFU forwards.
type publishedTrack struct {
	info     *livekit.TrackInfo // guarded by the publisher's mu
	cid      string
	receiver *webrtc.RTPReceiver
	up       *sfu.UpTrack
}

// subscription is one track the participant receives.
type subscription struct {
	publisher *participant
	track     *publishedTrack
	down      *sfu.DownTrack
}

func newParticipant(r *room, params *joinParams, conn *wsConn) *participant {
	sid := newID("PA_")
	now := time.Now()
	p := &participant{
		room:      r,
		sid:       sid,
		identity:  params.Identity,
		params:    params,
		single:    params.SinglePC,
		log:       r.log.With("participant", params.Identity, "participant_sid", sid),
		stop:      make(chan struct{}),
		conn:      conn,
		pending:   map[string]*livekit.TrackInfo{},
		published: map[string]*publishedTrack{},
		subs:      map[string]*subscription{},
	}
	var clientProtocol int32
	if params.ClientInfo != nil {
		clientProtocol = params.ClientInfo.ClientProtocol
	}
	p.info = &livekit.ParticipantInfo{
		Sid:            sid,
		Identity:       params.Identity,
		Name:           params.Name,
		Metadata:       params.Metadata,
		Attributes:     params.Attributes,
		State:          livekit.ParticipantInfo_JOINING,
		JoinedAt:       now.Unix(),
		JoinedAtMs:     now.UnixMilli(),
		Version:        r.nextVersion(),
		Permission:     params.Permission,
		Kind:           params.Kind,
		ClientProtocol: clientProtocol,
	}
	p.perm.Store(params.Permission)
	return p
}

// startPeers creates the participant's PeerConnections.
func (p *participant) startPeers() error {
	s := p.room.s.sfu
	pub, err := s.NewPeer(sfu.PeerConfig{
		Logger: p.log.With("pc", "publisher"),
		OnDescription: func(d webrtc.SessionDescription, id uint32, mids map[string]string) {
			p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Answer{Answer: &livekit.SessionDescription{
				Type: d.Type.String(), Sdp: d.SDP, Id: id, MidToTrackId: mids,
			}}})
		},
		OnCandidate: func(c webrtc.ICECandidateInit) { p.sendCandidate(c, livekit.SignalTarget_PUBLISHER) },
		OnTrack:     p.onTrack,
		OnDataChannel: func(dc *webrtc.DataChannel) {
			p.onDataChannel(dc)
		},
		OnState: func(st webrtc.PeerConnectionState) { p.onPeerState(st, !p.single) },
		OnNeedOffer: func(audios, videos int) {
			p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_MediaSectionsRequirement{
				MediaSectionsRequirement: &livekit.MediaSectionsRequirement{NumAudios: uint32(audios), NumVideos: uint32(videos)},
			}})
		},
	})
	if err != nil {
		return err
	}
	p.pub = pub
	if p.single {
		p.sub = pub
		return nil
	}
	sub, err := s.NewPeer(sfu.PeerConfig{
		ServerOffers: true,
		Logger:       p.log.With("pc", "subscriber"),
		OnDescription: func(d webrtc.SessionDescription, id uint32, mids map[string]string) {
			p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Offer{Offer: &livekit.SessionDescription{
				Type: d.Type.String(), Sdp: d.SDP, Id: id, MidToTrackId: mids,
			}}})
		},
		OnCandidate: func(c webrtc.ICECandidateInit) { p.sendCandidate(c, livekit.SignalTarget_SUBSCRIBER) },
		OnState:     func(st webrtc.PeerConnectionState) { p.onPeerState(st, false) },
	})
	if err != nil {
		_ = pub.Close()
		return err
	}
	p.sub = sub
	// The server creates the downstream data channels on the subscriber
	// PC; the client adopts them by label (PROTOCOL.md §3.3.2).
	ordered := false
	var zero uint16
	rel, err := sub.CreateDataChannel(labelReliable, &webrtc.DataChannelInit{})
	if err == nil {
		p.dataOut[livekit.DataPacket_RELIABLE] = rel
	}
	lossy, err := sub.CreateDataChannel(labelLossy, &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: &zero})
	if err == nil {
		p.dataOut[livekit.DataPacket_LOSSY] = lossy
	}
	return nil
}

func (p *participant) sendCandidate(c webrtc.ICECandidateInit, target livekit.SignalTarget) {
	b, err := json.Marshal(c)
	if err != nil {
		return
	}
	p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Trickle{Trickle: &livekit.TrickleRequest{
		CandidateInit: string(b), Target: target,
	}}})
}

// send queues msg on the participant's current signal connection. Messages
// sent while the client is away (resuming) are dropped: the resume sends the
// whole state again.
func (p *participant) send(msg *livekit.SignalResponse) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		c.send(msg)
	}
}

// permission returns the participant's current permission; do not modify it.
func (p *participant) permission() *livekit.ParticipantPermission { return p.perm.Load() }

func (p *participant) hidden() bool {
	perm := p.permission()
	return perm != nil && perm.Hidden
}

func (p *participant) canSubscribe() bool {
	perm := p.permission()
	return perm == nil || perm.CanSubscribe
}

func (p *participant) isPublisher() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.published) > 0
}

// snapshot returns a copy of the participant's current info.
func (p *participant) snapshot() *livekit.ParticipantInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return proto.Clone(p.info).(*livekit.ParticipantInfo)
}

// changed bumps the version after a change made under mu and returns the
// info to broadcast.
func (p *participant) changedLocked() *livekit.ParticipantInfo {
	p.info.Version = p.room.nextVersion()
	p.info.IsPublisher = len(p.published) > 0
	return proto.Clone(p.info).(*livekit.ParticipantInfo)
}

// announce sends p's current info to everyone, itself included (the JS
// resolves metadata and mute requests when it sees its own info change).
func (p *participant) announce(info *livekit.ParticipantInfo) {
	p.room.broadcast(p, info)
	p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{
		Update: &livekit.ParticipantUpdate{Participants: []*livekit.ParticipantInfo{info}},
	}})
}

func (p *participant) setState(st livekit.ParticipantInfo_State) {
	p.mu.Lock()
	if p.closed || p.info.State >= st {
		p.mu.Unlock()
		return
	}
	p.info.State = st
	info := p.changedLocked()
	p.mu.Unlock()
	p.announce(info)
}

// onPeerState follows a PeerConnection's state: the participant becomes
// ACTIVE when media connects, and is dropped when the connection fails
// while its client is not there to repair it.
func (p *participant) onPeerState(st webrtc.PeerConnectionState, publisherOnly bool) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		p.setState(livekit.ParticipantInfo_ACTIVE)
	case webrtc.PeerConnectionStateFailed:
		p.mu.Lock()
		away := p.conn == nil
		p.mu.Unlock()
		if away {
			// Not from this goroutine: closing waits for the Peer's loop,
			// which is running this callback.
			go p.close(livekit.DisconnectReason_CONNECTION_TIMEOUT, livekit.LeaveRequest_DISCONNECT, false)
		}
	}
	_ = publisherOnly
}

// signalLost is called when c, the participant's WebSocket, ended without a
// leave. The participant is kept for a resume within resumeWindow.
func (p *participant) signalLost(c *wsConn) {
	p.mu.Lock()
	if p.conn != c || p.closed {
		p.mu.Unlock()
		return
	}
	p.conn = nil
	if p.dropTimer != nil {
		p.dropTimer.Stop()
	}
	p.dropTimer = time.AfterFunc(resumeWindow, func() {
		p.mu.Lock()
		away := p.conn == nil
		p.mu.Unlock()
		if away {
			p.close(livekit.DisconnectReason_SIGNAL_CLOSE, livekit.LeaveRequest_DISCONNECT, false)
		}
	})
	p.mu.Unlock()
	c.closeNow()
	p.log.Debug("signal connection lost; waiting for resume")
}

// resumeWith makes c the participant's signal connection, with the
// reconnect response queued on it first: nothing sent to the participant
// meanwhile may overtake it (livekit-client drops everything before it). It
// reports false if the participant is gone.
func (p *participant) resumeWith(c *wsConn, info *livekit.ServerInfo) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Reconnect{Reconnect: &livekit.ReconnectResponse{
		ServerInfo: info, LastMessageSeq: p.lastDataSeq,
	}}})
	old := p.conn
	p.conn = c
	if p.dropTimer != nil {
		p.dropTimer.Stop()
		p.dropTimer = nil
	}
	p.mu.Unlock()
	if old != nil && old != c {
		old.closeNow()
	}
	return true
}

// close removes the participant from the room and releases everything it
// holds. With a reason other than CLIENT_INITIATED the client is told with a
// leave carrying action. replaced means a new session of the same identity
// took over: the others are not told it left (they see the new sid).
func (p *participant) close(reason livekit.DisconnectReason, action livekit.LeaveRequest_Action, replaced bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conn := p.conn
	p.conn = nil
	if p.dropTimer != nil {
		p.dropTimer.Stop()
	}
	published := make([]*publishedTrack, 0, len(p.published))
	for _, t := range p.published {
		published = append(published, t)
	}
	p.info.State = livekit.ParticipantInfo_DISCONNECTED
	p.info.DisconnectReason = reason
	p.info.Tracks = nil
	info := p.changedLocked()
	p.mu.Unlock()
	p.stopOnce.Do(func() { close(p.stop) })

	current := p.room.remove(p)
	if o := p.room.s.cfg.Observer; o != nil && current {
		o.ParticipantLeft(p.room.name, p.identity)
	}
	for _, q := range p.room.all() {
		for _, t := range published {
			q.unsubscribe(t.info.Sid)
		}
	}
	if !replaced {
		p.room.departed(info)
		p.room.broadcast(p, info)
	}
	if conn != nil {
		if reason != livekit.DisconnectReason_CLIENT_INITIATED {
			conn.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
				Reason: reason, Action: action, CanReconnect: action != livekit.LeaveRequest_DISCONNECT,
			}}})
		}
		go conn.close(1000, reason.String())
	}
	_ = p.pub.Close()
	if p.sub != p.pub {
		_ = p.sub.Close()
	}
	for _, t := range published {
		if t.up != nil {
			t.up.Close()
		}
	}
	p.log.Info("participant left", "reason", reason.String())
}

// refreshLoop pushes a fresh token right after join and every
// tokenRefreshInterval until the participant leaves.
func (p *participant) refreshLoop() {
	t := time.NewTicker(tokenRefreshInterval)
	defer t.Stop()
	for {
		p.sendRefreshToken()
		select {
		case <-t.C:
		case <-p.stop:
			return
		}
	}
}

func (p *participant) sendRefreshToken() {
	secret, ok := p.room.s.cfg.Keys[p.params.APIKey]
	if !ok {
		return
	}
	p.mu.Lock()
	claims := p.params.Claims
	p.mu.Unlock()
	tok, err := mintToken(p.params.APIKey, secret, claims, refreshTTL(p.params.ExpiresAt, time.Now()))
	if err != nil {
		p.log.Warn("cannot mint refresh token", "err", err)
		return
	}
	p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: tok}})
}

func containsSource(sources []livekit.TrackSource, s livekit.TrackSource) bool {
	return len(sources) == 0 || slices.Contains(sources, s)
}
