package signalling

import (
	"strings"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/stoa-rtc/stoa/sfu"
)

// maxPendingTracks bounds add_track requests waiting for media, so a client
// cannot grow the map without publishing anything.
const maxPendingTracks = 64

// maxPublishedTracks bounds what one participant publishes: a camera, a
// microphone, a screen share with its audio, and room for more devices.
// Each published track costs every subscriber a DownTrack.
const maxPublishedTracks = 16

func (p *participant) rejectRequest(reason livekit.RequestResponse_Reason, msg string, req *livekit.RequestResponse) {
	if req == nil {
		req = &livekit.RequestResponse{}
	}
	req.Reason = reason
	req.Message = msg
	p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_RequestResponse{RequestResponse: req}})
}

// handleAddTrack announces a track the client is about to publish
// (PROTOCOL.md §5.1) and answers track_published with its sid.
func (p *participant) handleAddTrack(req *livekit.AddTrackRequest) {
	perm := p.permission()
	rr := &livekit.RequestResponse{Request: &livekit.RequestResponse_AddTrack{AddTrack: req}}
	if perm == nil || !perm.CanPublish || !containsSource(perm.CanPublishSources, req.Source) {
		p.rejectRequest(livekit.RequestResponse_NOT_ALLOWED, "not allowed to publish this source", rr)
		return
	}
	if req.Type != livekit.TrackType_AUDIO && req.Type != livekit.TrackType_VIDEO {
		p.rejectRequest(livekit.RequestResponse_UNSUPPORTED_TYPE, "only audio and video tracks can be published", rr)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	ti, ok := p.pending[req.Cid]
	if !ok {
		if len(p.pending) >= maxPendingTracks || len(p.published) >= maxPublishedTracks {
			p.mu.Unlock()
			p.rejectRequest(livekit.RequestResponse_LIMIT_EXCEEDED, "too many tracks pending", rr)
			return
		}
		ti = trackInfoFromRequest(req)
		p.pending[req.Cid] = ti
	}
	resp := &livekit.TrackPublishedResponse{Cid: req.Cid, Track: proto.Clone(ti).(*livekit.TrackInfo)}
	p.mu.Unlock()
	p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_TrackPublished{TrackPublished: resp}})
}

func trackInfoFromRequest(req *livekit.AddTrackRequest) *livekit.TrackInfo {
	ti := &livekit.TrackInfo{
		Sid:               newID("TR_"),
		Type:              req.Type,
		Name:              req.Name,
		Muted:             req.Muted,
		Width:             req.Width,
		Height:            req.Height,
		DisableDtx:        req.DisableDtx,
		Source:            req.Source,
		Stereo:            req.Stereo,
		DisableRed:        req.DisableRed,
		Encryption:        req.Encryption,
		Stream:            req.Stream,
		AudioFeatures:     req.AudioFeatures,
		BackupCodecPolicy: req.BackupCodecPolicy,
	}
	if ti.Stream == "" {
		ti.Stream = "camera"
		if req.Source == livekit.TrackSource_SCREEN_SHARE || req.Source == livekit.TrackSource_SCREEN_SHARE_AUDIO {
			ti.Stream = "screen"
		}
	}
	layers := make([]*livekit.VideoLayer, 0, len(req.Layers))
	for _, l := range req.Layers {
		layers = append(layers, proto.Clone(l).(*livekit.VideoLayer))
	}
	// Layers low to high, so a layer's index is its spatial layer.
	for i := 1; i < len(layers); i++ {
		for j := i; j > 0 && layers[j].Quality < layers[j-1].Quality; j-- {
			layers[j], layers[j-1] = layers[j-1], layers[j]
		}
	}
	for i, l := range layers {
		l.SpatialLayer = int32(i)
	}
	ti.Layers = layers
	ti.Simulcast = req.Type == livekit.TrackType_VIDEO && len(layers) > 1
	for _, sc := range req.SimulcastCodecs {
		ti.Codecs = append(ti.Codecs, &livekit.SimulcastCodecInfo{
			MimeType: normaliseMime(req.Type, sc.Codec), Cid: sc.Cid, Layers: layers,
		})
	}
	if len(ti.Codecs) == 0 {
		ti.Codecs = []*livekit.SimulcastCodecInfo{{Cid: req.Cid, Layers: layers}}
	}
	return ti
}

// normaliseMime turns LiveKit's bare codec names ("vp8") into mime types
// ("video/VP8"); clients split mime types on "/".
func normaliseMime(t livekit.TrackType, codec string) string {
	if codec == "" || strings.Contains(codec, "/") {
		return codec
	}
	kind := "video/"
	if t == livekit.TrackType_AUDIO {
		kind = "audio/"
	}
	switch strings.ToLower(codec) {
	case "vp8":
		return kind + "VP8"
	case "vp9":
		return kind + "VP9"
	case "h264":
		return kind + "H264"
	case "av1":
		return kind + "AV1"
	case "opus":
		return kind + "opus"
	}
	return kind + codec
}

// ridQuality maps LiveKit's rids to qualities (PROTOCOL.md §5.2).
func ridQuality(rid string) livekit.VideoQuality {
	switch rid {
	case "q":
		return livekit.VideoQuality_LOW
	case "h":
		return livekit.VideoQuality_MEDIUM
	case "f", "":
		return livekit.VideoQuality_HIGH
	}
	return livekit.VideoQuality_HIGH
}

// layerIndex is the spatial index of rid: its position among the layers
// present, so a two-layer track's "h" is the top layer.
func layerIndex(ti *livekit.TrackInfo, rid string) int {
	if rid == "" || len(ti.Layers) == 0 {
		return 0
	}
	q := ridQuality(rid)
	idx := 0
	for _, l := range ti.Layers {
		if l.Quality < q {
			idx++
		}
	}
	return min(idx, sfu.MaxLayers-1)
}

// onTrack is called by pion when a published stream (one simulcast layer)
// starts. It binds the stream to the track announced with add_track, and
// the first layer of a track makes it visible to the room.
func (p *participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	perm := p.permission()
	if perm == nil || !perm.CanPublish {
		p.log.Warn("ignoring media from a participant without publish permission")
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	var pt *publishedTrack
	for _, t := range p.published {
		if t.receiver == receiver {
			pt = t
			break
		}
	}
	first := pt == nil
	if first {
		ti := p.pending[remote.ID()]
		cid := remote.ID()
		if ti == nil {
			// Firefox's msid track id can differ from the cid: take the
			// oldest pending track of the same kind (LiveKit does likewise).
			want := livekit.TrackType_AUDIO
			if remote.Kind() == webrtc.RTPCodecTypeVideo {
				want = livekit.TrackType_VIDEO
			}
			for c, t := range p.pending {
				if t.Type == want {
					ti, cid = t, c
					break
				}
			}
		}
		if ti == nil {
			p.mu.Unlock()
			p.log.Warn("media for a track that was never announced", "msid", remote.ID(), "kind", remote.Kind().String())
			return
		}
		delete(p.pending, cid)
		layers := len(ti.Layers)
		if remote.RID() == "" {
			layers = 1
		}
		codec := remote.Codec()
		up := sfu.NewUpTrack(ti.Sid, remote.Kind(), codec, layers, p.log.With("track", ti.Sid))
		up.ObserveAudioLevels(receiver)
		ti.MimeType = codec.MimeType
		for _, c := range ti.Codecs {
			c.MimeType = codec.MimeType
		}
		for _, tr := range p.pub.PeerConnection().GetTransceivers() {
			if tr.Receiver() == receiver {
				ti.Mid = tr.Mid()
				for _, c := range ti.Codecs {
					c.Mid = tr.Mid()
				}
			}
		}
		pt = &publishedTrack{info: ti, cid: cid, receiver: receiver, up: up}
		p.published[ti.Sid] = pt
	}
	idx := layerIndex(pt.info, remote.RID())
	if idx < len(pt.info.Layers) {
		pt.info.Layers[idx].Rid = remote.RID()
		pt.info.Layers[idx].Ssrc = uint32(remote.SSRC())
	}
	var info *livekit.ParticipantInfo
	if first {
		p.info.Tracks = append(p.info.Tracks, pt.info)
		info = p.changedLocked()
	}
	p.mu.Unlock()

	if err := pt.up.AddLayer(idx, remote, p.pub); err != nil {
		p.log.Debug("layer not added", "track", pt.info.Sid, "rid", remote.RID(), "err", err)
		return
	}
	p.log.Debug("receiving media", "track", pt.info.Sid, "rid", remote.RID(), "layer", idx, "codec", remote.Codec().MimeType)
	if first {
		// Announce the track before any subscriber gets SDP carrying it
		// (PROTOCOL.md §3.4).
		p.announce(info)
		for _, q := range p.room.others(p) {
			if q.params.AutoSubscribe {
				q.subscribe(p, pt)
			}
		}
	}
}

// checkUnpublished unpublishes tracks whose media section the client's
// offer no longer sends: LiveKit clients unpublish only by renegotiating.
func (p *participant) checkUnpublished(offer string) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return
	}
	sending := map[string]bool{}
	for _, m := range sd.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		_, sendonly := m.Attribute("sendonly")
		_, sendrecv := m.Attribute("sendrecv")
		sending[mid] = (sendonly || sendrecv) && m.MediaName.Port.Value != 0
	}
	p.unpublishWhere(func(t *publishedTrack) bool { return t.info.Mid != "" && !sending[t.info.Mid] })
}

// unpublishWhere removes the published tracks for which match, called with
// p.mu held, is true: their subscribers lose them, their up tracks close and
// everyone is told. It returns the tracks removed.
func (p *participant) unpublishWhere(match func(*publishedTrack) bool) []*publishedTrack {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	var gone []*publishedTrack
	for sid, t := range p.published {
		if match(t) {
			gone = append(gone, t)
			delete(p.published, sid)
		}
	}
	if len(gone) == 0 {
		p.mu.Unlock()
		return nil
	}
	tracks := p.info.Tracks[:0]
	for _, ti := range p.info.Tracks {
		keep := true
		for _, g := range gone {
			if g.info.Sid == ti.Sid {
				keep = false
			}
		}
		if keep {
			tracks = append(tracks, ti)
		}
	}
	p.info.Tracks = tracks
	info := p.changedLocked()
	p.mu.Unlock()
	for _, q := range p.room.others(p) {
		for _, g := range gone {
			q.unsubscribe(g.info.Sid)
		}
	}
	for _, g := range gone {
		g.up.Close()
		p.log.Debug("track unpublished", "track", g.info.Sid)
	}
	p.announce(info)
	return gone
}

// handleMute records a publication's mute state and tells everyone.
func (p *participant) handleMute(req *livekit.MuteTrackRequest) {
	if _, ok := p.setMuted(req.Sid, req.Muted); !ok {
		p.rejectRequest(livekit.RequestResponse_NOT_FOUND, "no such track",
			&livekit.RequestResponse{Request: &livekit.RequestResponse_Mute{Mute: req}})
	}
}

// trackLocked returns the info of the track with sid, published or pending,
// or nil.
func (p *participant) trackLocked(sid string) *livekit.TrackInfo {
	if t, ok := p.published[sid]; ok {
		return t.info
	}
	for _, t := range p.pending {
		if t.Sid == sid {
			return t
		}
	}
	return nil
}

// setMuted records the mute state of the track with sid, published or
// pending, and tells everyone if it changed. It returns a copy of the
// track's info, or false if p has no such track or has left.
func (p *participant) setMuted(sid string, muted bool) (*livekit.TrackInfo, bool) {
	p.mu.Lock()
	ti := p.trackLocked(sid)
	if ti == nil || p.closed {
		p.mu.Unlock()
		return nil, false
	}
	if ti.Muted == muted {
		out := proto.Clone(ti).(*livekit.TrackInfo)
		p.mu.Unlock()
		return out, true
	}
	ti.Muted = muted
	out := proto.Clone(ti).(*livekit.TrackInfo)
	info := p.changedLocked()
	p.mu.Unlock()
	p.announce(info)
	return out, true
}
