package signalling

import (
	"encoding/json"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// handle dispatches one client request. It runs on the participant's read
// goroutine; each message kind has its own handler.
func (p *participant) handle(req *livekit.SignalRequest) {
	switch m := req.Message.(type) {
	case *livekit.SignalRequest_Offer:
		p.handleOffer(m.Offer)
	case *livekit.SignalRequest_Answer:
		p.handleAnswer(m.Answer)
	case *livekit.SignalRequest_Trickle:
		p.handleTrickle(m.Trickle)
	case *livekit.SignalRequest_AddTrack:
		p.handleAddTrack(m.AddTrack)
	case *livekit.SignalRequest_Mute:
		p.handleMute(m.Mute)
	case *livekit.SignalRequest_Subscription:
		p.handleSubscription(m.Subscription)
	case *livekit.SignalRequest_TrackSetting:
		p.handleTrackSetting(m.TrackSetting)
	case *livekit.SignalRequest_Leave:
		p.close(livekit.DisconnectReason_CLIENT_INITIATED, livekit.LeaveRequest_DISCONNECT, false)
	case *livekit.SignalRequest_SyncState:
		p.handleSyncState(m.SyncState)
	case *livekit.SignalRequest_Ping:
		p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Pong{Pong: time.Now().UnixMilli()}})
	case *livekit.SignalRequest_PingReq:
		p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_PongResp{PongResp: &livekit.Pong{
			LastPingTimestamp: m.PingReq.GetTimestamp(), Timestamp: time.Now().UnixMilli(),
		}}})
	case *livekit.SignalRequest_UpdateMetadata:
		p.handleUpdateMetadata(m.UpdateMetadata)
	default:
		// Messages of features Stoa does not offer (data tracks, data
		// blobs, simulate, deprecated layer updates) and kinds newer than
		// this build are ignored, as LiveKit ignores what it does not know.
		p.log.Debug("ignoring signal request", "type", messageName(req))
	}
}

func messageName(req *livekit.SignalRequest) string {
	if req.Message == nil {
		return "unknown"
	}
	return string(req.ProtoReflect().WhichOneof(req.ProtoReflect().Descriptor().Oneofs().ByName("message")).Name())
}

func (p *participant) handleOffer(sd *livekit.SessionDescription) {
	if sd == nil || sd.Type != "offer" {
		return
	}
	if err := p.pub.HandleOffer(sd.Sdp, sd.Id); err != nil {
		p.log.Warn("offer rejected", "err", err)
		return
	}
	p.checkUnpublished(sd.Sdp)
}

func (p *participant) handleAnswer(sd *livekit.SessionDescription) {
	if sd == nil || sd.Type != "answer" || p.single {
		return
	}
	if err := p.sub.HandleAnswer(sd.Sdp, sd.Id); err != nil {
		p.log.Warn("answer rejected", "err", err)
	}
}

func (p *participant) handleTrickle(t *livekit.TrickleRequest) {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(t.CandidateInit), &c); err != nil || c.Candidate == "" {
		return
	}
	if t.Target == livekit.SignalTarget_SUBSCRIBER && !p.single {
		p.sub.AddCandidate(c)
		return
	}
	p.pub.AddCandidate(c)
}

// handleSyncState reconciles after a resume (PROTOCOL.md §5.8): tracks the
// client disabled stay paused.
func (p *participant) handleSyncState(s *livekit.SyncState) {
	if len(s.TrackSidsDisabled) > 0 {
		p.handleTrackSetting(&livekit.UpdateTrackSettings{TrackSids: s.TrackSidsDisabled, Disabled: true})
	}
	if s.Subscription != nil && len(s.Subscription.TrackSids) > 0 {
		p.handleSubscription(s.Subscription)
	}
}

// handleUpdateMetadata changes the participant's own name, metadata or
// attributes when its token allows it.
func (p *participant) handleUpdateMetadata(m *livekit.UpdateParticipantMetadata) {
	perm := p.permission()
	if perm == nil || !perm.CanUpdateMetadata {
		p.rejectRequest(livekit.RequestResponse_NOT_ALLOWED, "not allowed to update metadata",
			&livekit.RequestResponse{RequestId: m.RequestId, Request: &livekit.RequestResponse_UpdateMetadata{UpdateMetadata: m}})
		return
	}
	p.updateMetadata(m.Name, m.Metadata, m.Attributes)
}

// updateMetadata sets the participant's name and metadata unless they are
// empty, merges attributes into its own (an empty value deletes a key), and
// tells everyone. It does not check permissions: the caller has.
func (p *participant) updateMetadata(name, metadata string, attributes map[string]string) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if name != "" {
		p.info.Name = name
	}
	if metadata != "" {
		p.info.Metadata = metadata
	}
	if len(attributes) > 0 {
		attrs := map[string]string{}
		for k, v := range p.info.Attributes {
			attrs[k] = v
		}
		for k, v := range attributes {
			if v == "" {
				delete(attrs, k)
			} else {
				attrs[k] = v
			}
		}
		// The limit holds for the merged set, or updates could add up.
		if attributesSize(attrs) > maxAttributesSize {
			p.mu.Unlock()
			p.rejectRequest(livekit.RequestResponse_LIMIT_EXCEEDED, "attributes exceed the size limit", nil)
			return
		}
		p.info.Attributes = attrs
	}
	// Refresh tokens carry the participant's current values (as LiveKit).
	claims := p.params.Claims.Clone()
	claims.Name = p.info.Name
	claims.Metadata = p.info.Metadata
	claims.Attributes = p.info.Attributes
	p.params.Claims = claims
	info := p.changedLocked()
	p.mu.Unlock()
	p.announce(info)
}
