package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// joinTimeout bounds one participant's join: signal connection, publishing
// and the first connected PeerConnection.
const joinTimeout = 30 * time.Second

// participant is one simulated client: a signal connection, a publisher
// PeerConnection if it publishes and a subscriber PeerConnection, which the
// server offers (LiveKit's dual-PC mode, PROTOCOL.md §3).
//
// join runs on the caller's goroutine; signalLoop owns every later
// negotiation step; close stops everything and waits.
type participant struct {
	env  *env
	spec spec
	log  func(format string, args ...any)

	ctx    context.Context
	cancel context.CancelFunc
	sig    *signalConn
	wg     sync.WaitGroup

	published    chan *livekit.TrackPublishedResponse // size 2: one per track announced, read after both are sent
	pubConnected chan struct{}
	subConnected chan struct{}
	pubOnce      sync.Once
	subOnce      sync.Once
	counters     pubCounters
	rx           *rxTable // kernel receive times of the subscriber PeerConnection's socket

	mu         sync.Mutex // guards the following fields
	pub, sub   *webrtc.PeerConnection
	pendingPub []webrtc.ICECandidateInit // server candidates that arrived before the answer
	pendingSub []webrtc.ICECandidateInit
	closing    bool
}

func newParticipant(e *env, s spec) *participant {
	ctx, cancel := context.WithCancel(context.Background())
	return &participant{
		env: e, spec: s, ctx: ctx, cancel: cancel,
		published:    make(chan *livekit.TrackPublishedResponse, 2),
		pubConnected: make(chan struct{}),
		subConnected: make(chan struct{}),
		rx:           new(rxTable),
	}
}

// join connects and, for a publisher, publishes. It returns once the
// participant's first PeerConnection (the publisher's for publishers, else
// the subscriber's) is connected, with the time that took.
func (p *participant) join(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	start := time.Now()
	cfg := p.env.cfg
	tok, err := mintToken(cfg.APIKey, cfg.APISecret, cfg.Room, p.spec.Identity, p.spec.publishes(), p.spec.Subscribe)
	if err != nil {
		return 0, fmt.Errorf("token: %w", err)
	}
	sig, jr, err := dialSignal(ctx, cfg.URL, tok)
	if err != nil {
		return 0, err
	}
	p.sig = sig
	p.wg.Add(2)
	go p.signalLoop()
	go p.pingLoop(time.Duration(max(jr.GetPingInterval(), 1)) * time.Second)

	wait := p.subConnected
	if p.spec.publishes() {
		if err := p.publish(ctx); err != nil {
			return 0, err
		}
		wait = p.pubConnected
	}
	select {
	case <-wait:
		return time.Since(start), nil
	case <-p.ctx.Done():
		return 0, errors.New("disconnected while joining")
	case <-ctx.Done():
		return 0, errors.New("timed out waiting for a connected PeerConnection")
	}
}

// publish announces the participant's tracks with add_track, waits for
// track_published, and sends the publisher offer (PROTOCOL.md §5.1).
func (p *participant) publish(ctx context.Context) error {
	pc, err := p.env.pubAPI.NewPeerConnection(pcConfig())
	if err != nil {
		return fmt.Errorf("publisher PC: %w", err)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) { p.onState("publisher", st, p.pubConnected, &p.pubOnce) })
	p.mu.Lock()
	p.pub = pc
	p.mu.Unlock()

	id := p.spec.Identity
	rnd := rand.Uint32
	var reqs []*livekit.AddTrackRequest
	var video *videoSource
	var vtr *webrtc.RTPTransceiver
	if p.spec.publishesVideo() {
		var tracks [3]*sendTrack
		for i, l := range layerSpecs() {
			tracks[i] = newSendTrack(id+"-camera", id, l.rid, webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 0)
		}
		vtr, err = pc.AddTransceiverFromTrack(tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("add video: %w", err)
		}
		for _, t := range tracks[1:] {
			if err := vtr.Sender().AddEncoding(t); err != nil {
				return fmt.Errorf("add simulcast layer: %w", err)
			}
		}
		video = newVideoSource(p.spec.Index, tracks, &p.counters, rnd, !p.env.cfg.Burst)
		layers := make([]*livekit.VideoLayer, len(layerSpecs()))
		for i, l := range layerSpecs() {
			layers[i] = &livekit.VideoLayer{Quality: livekit.VideoQuality(l.quality), Width: uint32(l.w), Height: uint32(l.h), Bitrate: uint32(l.bitrate)}
		}
		reqs = append(reqs, &livekit.AddTrackRequest{
			Cid: tracks[0].ID(), Name: "camera", Type: livekit.TrackType_VIDEO, Source: livekit.TrackSource_CAMERA,
			Width: 1280, Height: 720, Layers: layers,
			SimulcastCodecs: []*livekit.SimulcastCodec{{Codec: "vp8", Cid: tracks[0].ID()}},
		})
		for _, l := range video.layers {
			p.goRun(func() { video.readRTCP(vtr.Sender(), l) })
		}
	}
	atrack := newSendTrack(id+"-mic", id, "", webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, audioLevel)
	atr, err := pc.AddTransceiverFromTrack(atrack, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("add audio: %w", err)
	}
	p.goRun(func() { drainRTCP(atr.Sender()) })
	seq := uint16(rnd())
	audio := &audioSource{t: atrack, pub: p.spec.Index, seq: seq, firstSeq: seq, tsBase: rnd(), c: &p.counters}
	reqs = append(reqs, &livekit.AddTrackRequest{Cid: atrack.ID(), Name: "microphone", Type: livekit.TrackType_AUDIO, Source: livekit.TrackSource_MICROPHONE})

	for _, r := range reqs {
		if err := p.sig.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: r}}); err != nil {
			return fmt.Errorf("add_track: %w", err)
		}
	}
	for range reqs {
		select {
		case <-p.published:
		case <-ctx.Done():
			return errors.New("timed out waiting for track_published")
		case <-p.ctx.Done():
			return errors.New("disconnected while publishing")
		}
	}

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("publisher offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("publisher offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return errors.New("timed out gathering candidates")
	}
	if vtr != nil {
		for _, l := range video.layers {
			l.t.setMid(vtr.Mid())
		}
	}
	atrack.setMid(atr.Mid())
	sd := pc.LocalDescription()
	if err := p.sig.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{Offer: &livekit.SessionDescription{
		Type: "offer", Sdp: sd.SDP, Id: 1,
	}}}); err != nil {
		return fmt.Errorf("send offer: %w", err)
	}
	if video != nil {
		p.goRun(func() { video.run(p.ctx) })
	}
	p.goRun(func() { audio.run(p.ctx) })
	return nil
}

func (p *participant) goRun(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

func pcConfig() webrtc.Configuration {
	return webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle, RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire}
}

func (p *participant) onState(which string, st webrtc.PeerConnectionState, connected chan struct{}, once *sync.Once) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		once.Do(func() { close(connected) })
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
		p.mu.Lock()
		closing := p.closing
		p.mu.Unlock()
		if !closing {
			p.env.rec.fail(fmt.Sprintf("%s PeerConnection %s", which, st))
		}
	}
}

// signalLoop reads the signal connection until it closes and carries out
// what the server asks: subscriber offers, publisher answers, candidates.
func (p *participant) signalLoop() {
	defer p.wg.Done()
	defer p.cancel()
	for {
		msg, err := p.sig.read()
		if err != nil {
			p.mu.Lock()
			closing := p.closing
			p.mu.Unlock()
			if !closing {
				p.env.rec.fail("signal connection lost: " + errorClass(err))
			}
			return
		}
		switch m := msg.Message.(type) {
		case *livekit.SignalResponse_Offer:
			if err := p.answer(m.Offer); err != nil {
				p.env.rec.fail("subscriber answer: " + err.Error())
			}
		case *livekit.SignalResponse_Answer:
			if err := p.onAnswer(m.Answer); err != nil {
				p.env.rec.fail("publisher answer: " + err.Error())
			}
		case *livekit.SignalResponse_Trickle:
			p.onTrickle(m.Trickle)
		case *livekit.SignalResponse_TrackPublished:
			select {
			case p.published <- m.TrackPublished:
			default:
			}
		case *livekit.SignalResponse_Leave:
			p.mu.Lock()
			closing := p.closing
			p.mu.Unlock()
			if !closing {
				p.env.rec.fail("server sent leave: " + m.Leave.GetReason().String())
			}
			return
		}
	}
}

func (p *participant) pingLoop(every time.Duration) {
	defer p.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			now := time.Now().UnixMilli()
			_ = p.sig.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: now}})
			_ = p.sig.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{PingReq: &livekit.Ping{Timestamp: now}}})
		}
	}
}

// answer applies a subscriber offer and answers it, creating the
// subscriber PeerConnection on the first one. The answer carries every
// local candidate: the generator does not trickle.
func (p *participant) answer(sd *livekit.SessionDescription) error {
	p.mu.Lock()
	pc := p.sub
	p.mu.Unlock()
	if pc == nil {
		var err error
		pc, err = p.env.subAPI(p.rx).NewPeerConnection(pcConfig())
		if err != nil {
			return err
		}
		pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) { p.onState("subscriber", st, p.subConnected, &p.subOnce) })
		pc.OnTrack(p.onTrack)
		p.mu.Lock()
		p.sub = pc
		p.mu.Unlock()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sd.Sdp}); err != nil {
		return err
	}
	p.mu.Lock()
	pending := p.pendingSub
	p.pendingSub = nil
	p.mu.Unlock()
	for _, c := range pending {
		_ = pc.AddICECandidate(c)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		return errors.New("timed out gathering candidates")
	}
	return p.sig.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Answer{Answer: &livekit.SessionDescription{
		Type: "answer", Sdp: pc.LocalDescription().SDP, Id: sd.Id,
	}}})
}

func (p *participant) onAnswer(sd *livekit.SessionDescription) error {
	p.mu.Lock()
	pc := p.pub
	p.mu.Unlock()
	if pc == nil {
		return errors.New("answer without an offer")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sd.Sdp}); err != nil {
		return err
	}
	p.mu.Lock()
	pending := p.pendingPub
	p.pendingPub = nil
	p.mu.Unlock()
	for _, c := range pending {
		_ = pc.AddICECandidate(c)
	}
	return nil
}

func (p *participant) onTrickle(t *livekit.TrickleRequest) {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(t.CandidateInit), &c); err != nil || c.Candidate == "" {
		return
	}
	p.mu.Lock()
	pc, pending := p.sub, &p.pendingSub
	if t.Target == livekit.SignalTarget_PUBLISHER {
		pc, pending = p.pub, &p.pendingPub
	}
	if pc == nil || pc.RemoteDescription() == nil {
		*pending = append(*pending, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = pc.AddICECandidate(c)
}

// onTrack starts receiving a subscribed track. Called by pion.
func (p *participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	video := remote.Kind() == webrtc.RTPCodecTypeVideo
	s := newStream(video)
	p.env.rec.addStream(s)
	sid := remote.ID()
	want := func(pub int) int {
		if p.spec.High < 0 || pub == p.spec.High {
			return 2
		}
		return 0
	}
	onFirst := func(pub int) {
		if !video {
			return
		}
		q := livekit.VideoQuality_HIGH
		if want(pub) == 0 {
			q = livekit.VideoQuality_LOW
		}
		_ = p.sig.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_TrackSetting{TrackSetting: &livekit.UpdateTrackSettings{
			TrackSids: []string{sid}, Quality: q,
		}}})
	}
	p.goRun(func() { s.readLoop(remote, p.rx, want, onFirst) })
	p.goRun(func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := receiver.Read(buf); err != nil {
				return
			}
		}
	})
}

// close leaves the room and stops every goroutine of p.
func (p *participant) close() {
	p.mu.Lock()
	p.closing = true
	pub, sub := p.pub, p.sub
	p.mu.Unlock()
	p.cancel()
	if p.sig != nil {
		p.sig.close(true)
	}
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
	p.wg.Wait()
}
