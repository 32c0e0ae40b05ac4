package signalling

import (
	"github.com/livekit/protocol/livekit"

	"github.com/stoa-rtc/stoa/sfu"
)

// subscribe makes p receive track t of publisher pub.
func (p *participant) subscribe(pub *participant, t *publishedTrack) {
	if !p.canSubscribe() || pub == p {
		return
	}
	// With adaptive stream the client reports its element size soon; start
	// low so a small tile never costs the top layer (PROTOCOL.md §5.5).
	layer := sfu.MaxLayers - 1
	if p.params.AdaptiveStream {
		layer = 0
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if _, ok := p.subs[t.info.Sid]; ok {
		p.mu.Unlock()
		return
	}
	d := t.up.NewDownTrack(pub.sid+"|"+t.info.Sid, layer)
	p.subs[t.info.Sid] = &subscription{publisher: pub, track: t, down: d}
	p.mu.Unlock()
	p.sub.AddDownTrack(d)
	// An unpublish sweeps subscribers after removing the track; checking
	// after adding ours means one of the two sees the other.
	if !pub.publishes(t) {
		p.unsubscribe(t.info.Sid)
	}
}

// publishes reports whether t is still one of p's published tracks.
func (p *participant) publishes(t *publishedTrack) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && p.published[t.info.Sid] == t
}

// unsubscribe stops p receiving the track with sid, if it does.
func (p *participant) unsubscribe(sid string) {
	p.mu.Lock()
	s, ok := p.subs[sid]
	delete(p.subs, sid)
	p.mu.Unlock()
	if ok {
		p.sub.RemoveDownTrack(s.down)
	}
}

// subscribeExisting subscribes a newcomer to every track already published.
func (p *participant) subscribeExisting() {
	if !p.params.AutoSubscribe {
		return
	}
	for _, q := range p.room.others(p) {
		for _, t := range q.publishedTracks() {
			p.subscribe(q, t)
		}
	}
}

func (p *participant) publishedTracks() []*publishedTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*publishedTrack, 0, len(p.published))
	for _, t := range p.published {
		out = append(out, t)
	}
	return out
}

// findTrack finds a published track by sid anywhere in the room.
func (r *room) findTrack(sid string) (*participant, *publishedTrack) {
	for _, q := range r.all() {
		q.mu.Lock()
		t, ok := q.published[sid]
		q.mu.Unlock()
		if ok {
			return q, t
		}
	}
	return nil, nil
}

// handleSubscription applies an explicit (un)subscribe request.
func (p *participant) handleSubscription(req *livekit.UpdateSubscription) {
	sids := append([]string{}, req.TrackSids...)
	for _, pt := range req.ParticipantTracks {
		sids = append(sids, pt.TrackSids...)
	}
	for _, sid := range sids {
		if !req.Subscribe {
			p.unsubscribe(sid)
			continue
		}
		pub, t := p.room.findTrack(sid)
		if t == nil {
			p.send(&livekit.SignalResponse{Message: &livekit.SignalResponse_SubscriptionResponse{
				SubscriptionResponse: &livekit.SubscriptionResponse{TrackSid: sid, Err: livekit.SubscriptionError_SE_TRACK_NOTFOUND},
			}})
			continue
		}
		p.subscribe(pub, t)
	}
}

// handleTrackSetting applies a subscriber's wishes for tracks it receives:
// pause, or the layer that fits its video element (PROTOCOL.md §4.1).
func (p *participant) handleTrackSetting(req *livekit.UpdateTrackSettings) {
	for _, sid := range req.TrackSids {
		p.mu.Lock()
		s, ok := p.subs[sid]
		p.mu.Unlock()
		if !ok {
			continue
		}
		if req.Disabled {
			s.down.SetPaused(true)
			continue
		}
		s.down.SetLayer(s.layerFor(req))
		s.down.SetPaused(false)
	}
}

// layerFor picks the layer for a track setting: the smallest covering the
// requested size, else the requested quality.
func (s *subscription) layerFor(req *livekit.UpdateTrackSettings) int {
	s.publisher.mu.Lock()
	layers := make([]sfu.Dimensions, 0, len(s.track.info.Layers))
	for _, l := range s.track.info.Layers {
		layers = append(layers, sfu.Dimensions{Width: l.Width, Height: l.Height})
	}
	s.publisher.mu.Unlock()
	n := s.track.up.LayerCount()
	if len(layers) > n {
		layers = layers[:n]
	}
	layer := n - 1
	if (req.Width > 0 || req.Height > 0) && len(layers) > 0 {
		layer = sfu.LayerForDimensions(layers, req.Width, req.Height)
	} else if q := sfu.LayerForQuality(n, int(req.Quality)); q >= 0 {
		layer = q
	}
	return max(layer, 0)
}
