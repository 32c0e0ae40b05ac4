package signalling

import (
	"errors"
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
)

// handleValidate answers the clients' probe after a failed WebSocket
// upgrade with the status the join would have got (PROTOCOL.md §1.5).
func (s *Server) handleValidate(v1 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		params, err := parseJoin(r, s.cfg.Keys, v1)
		if err == nil {
			err = s.checkRoom(params)
		}
		if err != nil {
			writeHTTPError(w, err)
			return
		}
		_, _ = w.Write([]byte("success"))
	}
}

// handleRTC serves a signal connection: /rtc (v1=false; dual PC unless the
// request carries join_request) and /rtc/v1 (single PC).
func (s *Server) handleRTC(v1 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			http.Error(w, "expected a WebSocket upgrade", http.StatusNotFound)
			return
		}
		params, err := parseJoin(r, s.cfg.Keys, v1)
		if err == nil {
			err = s.checkRoom(params)
		}
		if err != nil {
			writeHTTPError(w, err)
			return
		}
		ws, err := s.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		s.wg.Add(1)
		defer s.wg.Done()
		c := newWSConn(ws)
		if params.Reconnect {
			s.resume(c, params)
			return
		}
		s.join(c, params)
	}
}

// checkRoom refuses, before the upgrade, a join the room has no place for.
// join checks again under the room lock, as others may join meanwhile.
func (s *Server) checkRoom(params *joinParams) error {
	if params.Reconnect {
		return nil
	}
	r := s.room(params.Room, false)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fullLocked(params.Identity) {
		return errRoomFull
	}
	return nil
}

// join starts a new session (PROTOCOL.md §3.2).
func (s *Server) join(c *wsConn, params *joinParams) {
	r := s.room(params.Room, true)
	if r == nil {
		leaveAndClose(c, livekit.DisconnectReason_SERVER_SHUTDOWN, livekit.LeaveRequest_RECONNECT)
		return
	}
	p := newParticipant(r, params, c)
	if err := p.startPeers(); err != nil {
		p.log.Warn("cannot create peer connections", "err", err)
		leaveAndClose(c, livekit.DisconnectReason_JOIN_FAILURE, livekit.LeaveRequest_DISCONNECT)
		return
	}

	r.mu.Lock()
	if r.closed || r.fullLocked(p.identity) {
		reason := livekit.DisconnectReason_ROOM_CLOSED
		if !r.closed {
			reason = livekit.DisconnectReason_JOIN_FAILURE
			p.log.Info("join refused: room is full")
		}
		r.mu.Unlock()
		_ = p.pub.Close()
		_ = p.sub.Close()
		leaveAndClose(c, reason, livekit.LeaveRequest_DISCONNECT)
		return
	}
	old := r.participants[p.identity]
	r.participants[p.identity] = p
	if r.closeTimer != nil {
		r.closeTimer.Stop()
		r.closeTimer = nil
	}
	others := make([]*livekit.ParticipantInfo, 0, len(r.participants))
	for _, q := range r.participants {
		if q != p && q != old && !q.hidden() {
			others = append(others, q.snapshot())
		}
	}
	// The join response is queued under the room lock, so no update about
	// anyone can reach the client before it.
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Join{Join: s.joinResponse(r, p, others)}})
	r.mu.Unlock()

	if old != nil {
		old.close(livekit.DisconnectReason_DUPLICATE_IDENTITY, livekit.LeaveRequest_DISCONNECT, true)
	}
	p.log.Info("participant joined", "single_pc", p.single)
	if o := s.cfg.Observer; o != nil {
		o.ParticipantJoined(r.name, p.identity)
	}
	go p.refreshLoop()

	if !p.single {
		// The subscriber offer goes out at once, even without tracks; the
		// client waits for it (PROTOCOL.md §3.2).
		p.sub.Negotiate(false)
	}
	for _, at := range params.AddTrackRequests {
		p.handleAddTrack(at)
	}
	if params.PublisherOffer != nil {
		p.handleOffer(params.PublisherOffer)
	}
	p.setState(livekit.ParticipantInfo_JOINED)
	p.subscribeExisting()
	s.serve(p, c)
}

func (s *Server) joinResponse(r *room, p *participant, others []*livekit.ParticipantInfo) *livekit.JoinResponse {
	perm := p.permission()
	canPublish := perm != nil && perm.CanPublish
	return &livekit.JoinResponse{
		Room:              r.infoLocked(),
		Participant:       p.snapshot(),
		OtherParticipants: others,
		ServerVersion:     Version,
		ServerInfo:        s.serverInfo(),
		// dual PC: the client waits for our subscriber offer; single PC:
		// must be false or Firefox never offers (PROTOCOL.md §9.4).
		SubscriberPrimary:    !p.single && p.canSubscribe(),
		FastPublish:          !p.single && canPublish,
		PingInterval:         5,
		PingTimeout:          15,
		SifTrailer:           r.sif,
		EnabledPublishCodecs: enabledCodecs(),
	}
}

func (s *Server) serverInfo() *livekit.ServerInfo {
	return &livekit.ServerInfo{
		Edition:  livekit.ServerInfo_Standard,
		Version:  Version,
		Protocol: protocolVersion,
		NodeId:   s.cfg.NodeID,
	}
}

// resume attaches a new signal connection to a participant whose previous
// one dropped (PROTOCOL.md §5.8).
func (s *Server) resume(c *wsConn, params *joinParams) {
	var p *participant
	if r := s.room(params.Room, false); r != nil {
		p = r.get(params.Identity)
	}
	if p == nil || (params.ParticipantSID != "" && params.ParticipantSID != p.sid) || !p.resumeWith(c, s.serverInfo()) {
		// Unknown session: the client falls back to a full reconnect.
		leaveAndClose(c, livekit.DisconnectReason_STATE_MISMATCH, livekit.LeaveRequest_RECONNECT)
		return
	}
	// Who left while the client was away (its DISCONNECTED updates were
	// lost with the socket; the JS never drops a participant otherwise),
	// then everyone present (PROTOCOL.md §5.8).
	if gone := p.room.recentDepartures(); len(gone) > 0 {
		c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{Participants: gone}}})
	}
	infos := []*livekit.ParticipantInfo{p.snapshot()}
	for _, q := range p.room.others(p) {
		if !q.hidden() {
			infos = append(infos, q.snapshot())
		}
	}
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{Participants: infos}}})
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_RoomUpdate{RoomUpdate: &livekit.RoomUpdate{Room: p.room.info()}}})
	if !p.single {
		p.sub.Negotiate(true)
	}
	p.sendRefreshToken()
	p.log.Info("participant resumed")
	s.serve(p, c)
}

// serve reads c until it ends. A malformed message ends the session with a
// leave and a close frame saying why; a dropped socket leaves the
// participant waiting for a resume.
func (s *Server) serve(p *participant, c *wsConn) {
	for {
		req, err := c.read()
		if err != nil {
			var pe *protocolError
			switch {
			case errors.As(err, &pe):
				p.log.Info("closing session after malformed message", "err", err)
				p.closeWith(c, livekit.DisconnectReason_UNKNOWN_REASON, websocket.CloseUnsupportedData, pe.Error())
			case errors.Is(err, errMessageTooLarge):
				p.log.Info("closing session after oversized message")
				p.closeWith(c, livekit.DisconnectReason_UNKNOWN_REASON, websocket.CloseMessageTooBig, "signal message too large")
			default:
				p.signalLost(c)
			}
			return
		}
		if err := validateSignalRequest(req); err != nil {
			if m := req.GetUpdateMetadata(); m != nil {
				// Too large a metadata update is refused, not fatal (as LiveKit).
				p.rejectRequest(livekit.RequestResponse_LIMIT_EXCEEDED, err.Error(),
					&livekit.RequestResponse{RequestId: m.RequestId})
				continue
			}
			p.log.Info("closing session after invalid message", "err", err)
			p.closeWith(c, livekit.DisconnectReason_UNKNOWN_REASON, websocket.ClosePolicyViolation, err.Error())
			return
		}
		p.handle(req)
		p.mu.Lock()
		gone := p.closed || p.conn != c
		p.mu.Unlock()
		if gone {
			return
		}
	}
}

// closeWith ends the session because of what the client sent on c: it gets
// a leave, then a close frame with code and text.
func (p *participant) closeWith(c *wsConn, reason livekit.DisconnectReason, code int, text string) {
	p.mu.Lock()
	current := p.conn == c
	if current {
		p.conn = nil
	}
	p.mu.Unlock()
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
		Reason: reason, Action: livekit.LeaveRequest_DISCONNECT,
	}}})
	c.close(code, text)
	if current {
		p.close(reason, livekit.LeaveRequest_DISCONNECT, false)
	}
}

func leaveAndClose(c *wsConn, reason livekit.DisconnectReason, action livekit.LeaveRequest_Action) {
	c.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
		Reason: reason, Action: action, CanReconnect: action != livekit.LeaveRequest_DISCONNECT,
	}}})
	c.close(websocket.CloseNormalClosure, reason.String())
}
