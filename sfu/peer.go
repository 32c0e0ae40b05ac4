package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sfu/internal/udpbatch"
)

// PeerConfig configures one PeerConnection. Callbacks are called from the
// Peer's loop goroutine, in order, so a description is always delivered
// before the candidates gathered for it. They must not block and must not
// call back into the Peer synchronously.
type PeerConfig struct {
	// ServerOffers makes this the side that offers (LiveKit's dual-PC
	// subscriber connection), a connection that only sends media.
	// Otherwise the client offers and the server answers (publisher
	// connection, or LiveKit's single PC).
	ServerOffers bool
	// OnDescription delivers a local offer or answer. id echoes the client's
	// offer id for answers and counts the server's offers.
	OnDescription func(desc webrtc.SessionDescription, id uint32, midToTrack map[string]string)
	// OnCandidate delivers a local ICE candidate.
	OnCandidate func(c webrtc.ICECandidateInit)
	// OnTrack is called when a remote stream starts (for simulcast, once
	// per layer). Called from pion's goroutine.
	OnTrack func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver)
	// OnDataChannel is called for data channels the client opens.
	OnDataChannel func(dc *webrtc.DataChannel)
	// OnState reports connection state changes.
	OnState func(webrtc.PeerConnectionState)
	// OnNeedOffer asks the client for a new offer carrying at least this many
	// more receive-only audio and video sections (client-offers mode only).
	OnNeedOffer func(audios, videos int)
	Logger      *slog.Logger
}

// Peer is one PeerConnection. One goroutine, the loop, owns its
// negotiation: every operation is queued to it (STYLE rule 14), so offers,
// answers, candidates and track changes never interleave.
type Peer struct {
	out atomic.Pointer[srtpOut] // the own write path, once DTLS is up; nil: pion's
	in  atomic.Pointer[srtpIn]  // the own receive path of a publishing connection

	sfu *SFU

	pc       *webrtc.PeerConnection
	batch    *udpbatch.Conn // the SFU's UDP socket, for fan-out batching
	secrets  *dtlsSecrets
	tcps     *tcpConns
	cfg      PeerConfig
	log      *slog.Logger
	wake     chan struct{} // size 1: a pending-work signal, coalesced
	done     chan struct{}
	stopOnce sync.Once // closes done

	mu     sync.Mutex // guards the following fields
	queue  []func()
	closed bool
	layers []*upLayer // waiting for the own receive path

	candidates atomic.Int32 // remote candidates accepted so far

	// Owned by the loop goroutine.
	remoteCandidates []webrtc.ICECandidateInit
	askedOffer       bool                        // OnNeedOffer was called and no offer came since
	free             map[webrtc.RTPCodecType]int // unused receive-only sections of the last offer
	offering         bool                        // a server offer awaits its answer
	renegotiate      bool                        // another offer is due after that answer
	restartICE       bool                        // the next offer restarts ICE
	offerID          uint32                      // id of the last server offer
	pending          []*DownTrack
	senders          map[*DownTrack]*webrtc.RTPSender
	trackOfMid       map[string]string
}

// NewPeer creates a PeerConnection and starts its loop.
func (s *SFU) NewPeer(cfg PeerConfig) (*Peer, error) {
	log := cfg.Logger
	if log == nil {
		log = s.log
	}
	// Each connection gets its own API: the DTLS hooks below are per
	// connection. The MediaEngine is copied by pion for every connection
	// anyway.
	secrets := &dtlsSecrets{}
	se := s.se
	se.SetDTLSKeyLogWriter(secrets)
	se.SetDTLSServerHelloMessageHook(secrets.serverHello)
	// A connection that only sends (LiveKit's subscriber PeerConnection)
	// needs none of the receive interceptors, and each of them runs a
	// ticker per connection (NACK and TWCC every 100 ms, reports every
	// second) that wakes the process for nothing.
	ir := &interceptor.Registry{}
	p := &Peer{}
	if !cfg.ServerOffers {
		err := receiveInterceptors(ir, func() bool {
			in := p.in.Load()
			return in == nil || !in.active.Load()
		})
		if err != nil {
			return nil, err
		}
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(s.me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return nil, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	*p = Peer{
		sfu:        s,
		pc:         pc,
		batch:      s.udpConn,
		secrets:    secrets,
		tcps:       &s.tcpConns,
		cfg:        cfg,
		log:        log,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		senders:    map[*DownTrack]*webrtc.RTPSender{},
		trackOfMid: map[string]string{},
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil || cfg.OnCandidate == nil {
			return
		}
		init := c.ToJSON()
		p.enqueue(func() { cfg.OnCandidate(init) })
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		if cfg.OnTrack != nil {
			cfg.OnTrack(t, r)
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if cfg.OnDataChannel != nil {
			cfg.OnDataChannel(dc)
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		p.enqueue(func() {
			ready := st == webrtc.PeerConnectionStateConnected
			if ready {
				p.startOwnPath()
			}
			for d := range p.senders {
				d.setReady(ready)
			}
			if cfg.OnState != nil {
				cfg.OnState(st)
			}
		})
	})
	go p.loop()
	return p, nil
}

// startOwnPath sets up the own write path (srtpout.go) the first time the
// connection is up: the keys, and the destination, which follows pion's
// selected candidate pair. Without the keys, pion's path stays. Called on
// the loop.
func (p *Peer) startOwnPath() {
	if p.secrets == nil {
		return
	}
	secrets := p.secrets
	p.secrets = nil // one attempt: a connection keeps one path
	local, remote, err := secrets.contexts()
	if err != nil {
		p.log.Debug("media path", "own", false, "reason", err)
		return
	}
	o := &srtpOut{conn: p.batch, ctx: local}
	var in *srtpIn
	if !p.cfg.ServerOffers {
		if in, err = newSRTPIn(p, remote); err != nil {
			p.log.Debug("receive path", "own", false, "reason", err)
			in = nil
		}
	}
	follow := func(pair *webrtc.ICECandidatePair) {
		o.setPair(pair, p.tcps)
		if in == nil {
			return
		}
		next := netip.AddrPort{}
		if a := o.udp.Load(); a != nil {
			next = *a
		}
		p.sfu.setReceiver(in.addr, next, p)
		in.addr = next
		in.active.Store(next.IsValid())
	}
	ice := p.pc.SCTP().Transport().ICETransport()
	ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) { p.enqueue(func() { follow(pair) }) })
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil {
		p.log.Debug("no selected candidate pair", "err", err)
	}
	p.out.Store(o)
	if in != nil {
		p.mu.Lock()
		p.in.Store(in)
		layers := p.layers
		p.layers = nil
		p.mu.Unlock()
		for _, l := range layers {
			in.add(l)
		}
	}
	follow(pair)
	p.log.Debug("media path", "own", true, "udp", o.udp.Load() != nil, "tcp", o.tcp.Load() != nil, "receive", in != nil)
}

// addLayer puts a layer this connection receives on its own receive path,
// now or once the path exists.
func (p *Peer) addLayer(l *upLayer) {
	p.mu.Lock()
	in := p.in.Load()
	if in == nil {
		p.layers = append(p.layers, l)
	}
	p.mu.Unlock()
	if in != nil {
		in.add(l)
	}
}

// removeLayer takes a layer that ended off the receive path.
func (p *Peer) removeLayer(l *upLayer) {
	if in := p.in.Load(); in != nil {
		in.remove(uint32(l.remote.SSRC()))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.layers {
		if x == l {
			p.layers = append(p.layers[:i], p.layers[i+1:]...)
			break
		}
	}
}

// PeerConnection exposes the underlying connection for reading state and
// RTCP writes. Negotiation must go through the Peer's methods.
func (p *Peer) PeerConnection() *webrtc.PeerConnection { return p.pc }

// WriteRTCP sends RTCP on the connection; it implements RTCPWriter.
func (p *Peer) WriteRTCP(pkts []rtcp.Packet) error { return p.pc.WriteRTCP(pkts) }

func (p *Peer) enqueue(f func()) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.queue = append(p.queue, f)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true
}

// call runs f on the loop and waits for its result.
func (p *Peer) call(f func() error) error {
	errc := make(chan error, 1)
	if !p.enqueue(func() { errc <- f() }) {
		return ErrClosed
	}
	select {
	case err := <-errc:
		return err
	case <-p.done:
		return ErrClosed
	}
}

func (p *Peer) loop() {
	for {
		select {
		case <-p.wake:
		case <-p.done:
			return
		}
		for {
			p.mu.Lock()
			if len(p.queue) == 0 {
				p.mu.Unlock()
				break
			}
			f := p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			p.mu.Unlock()
			f()
		}
	}
}

// HandleOffer applies the client's offer and delivers the answer through
// OnDescription with the same id. Subscriptions waiting for a media section
// (client-offers mode) are attached to the offer's free receive-only
// sections first.
func (p *Peer) HandleOffer(sdp string, id uint32) error {
	return p.call(func() error {
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			return fmt.Errorf("sfu: apply offer: %w", err)
		}
		p.flushCandidates()
		if !p.cfg.ServerOffers {
			p.askedOffer = false
			p.attachPending()
		}
		answer, err := p.pc.CreateAnswer(nil)
		if err != nil {
			return fmt.Errorf("sfu: create answer: %w", err)
		}
		if err := p.pc.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("sfu: apply answer: %w", err)
		}
		if in := p.in.Load(); in != nil {
			in.refreshTransportCC() // the offer may bring the first media sections
		}
		if p.cfg.OnDescription != nil {
			p.cfg.OnDescription(*p.pc.LocalDescription(), id, p.midMap())
		}
		if !p.cfg.ServerOffers && len(p.pending) > 0 {
			p.askForOffer()
		}
		return nil
	})
}

// HandleAnswer applies the client's answer to the server offer id (0: the
// last one, as the Go SDK sends). An answer to an older offer is ignored. If
// the answer cannot be applied, the offer is rolled back and made again.
func (p *Peer) HandleAnswer(sdp string, id uint32) error {
	return p.call(func() error {
		if !p.offering {
			return errors.New("sfu: answer without an offer")
		}
		if id != 0 && id != p.offerID {
			return fmt.Errorf("sfu: answer %d to an old offer (last %d)", id, p.offerID)
		}
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
			p.rollback()
			p.negotiate()
			return fmt.Errorf("sfu: apply answer: %w", err)
		}
		p.offering = false
		p.flushCandidates()
		if p.renegotiate {
			p.renegotiate = false
			p.negotiate()
		}
		return nil
	})
}

// maxRemoteCandidates bounds the candidates one connection accepts. A
// browser sends a handful per network interface and ICE restart; a client
// sending thousands is only making the server work.
const maxRemoteCandidates = 128

// AddCandidate adds a remote ICE candidate, holding it until a remote
// description exists.
func (p *Peer) AddCandidate(c webrtc.ICECandidateInit) {
	if p.candidates.Add(1) > maxRemoteCandidates {
		return
	}
	p.enqueue(func() {
		if p.pc.RemoteDescription() == nil {
			p.remoteCandidates = append(p.remoteCandidates, c)
			return
		}
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("bad remote candidate", "err", err)
		}
	})
}

func (p *Peer) flushCandidates() {
	for _, c := range p.remoteCandidates {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("bad remote candidate", "err", err)
		}
	}
	p.remoteCandidates = nil
}

// Negotiate starts a server offer (server-offers mode); with restartICE the
// offer carries new ICE credentials (a resumed session). An offer still
// waiting for its answer is withdrawn first when restarting ICE: the client
// that resumes never saw it.
func (p *Peer) Negotiate(restartICE bool) {
	p.enqueue(func() {
		if restartICE {
			p.restartICE = true
			if p.offering {
				p.rollback()
			}
		}
		p.negotiate()
	})
}

// rollback withdraws the outstanding server offer.
func (p *Peer) rollback() {
	if err := p.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
		p.log.Debug("rollback failed", "err", err)
	}
	p.offering = false
}

func (p *Peer) negotiate() {
	if !p.cfg.ServerOffers {
		return
	}
	if p.offering {
		p.renegotiate = true
		return
	}
	var opts *webrtc.OfferOptions
	if p.restartICE {
		opts = &webrtc.OfferOptions{ICERestart: true}
		p.restartICE = false
	}
	offer, err := p.pc.CreateOffer(opts)
	if err != nil {
		if p.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
			return // the participant is leaving; nothing to negotiate
		}
		p.log.Warn("create offer failed", "err", err)
		return
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		p.log.Warn("apply offer failed", "err", err)
		return
	}
	p.offering = true
	p.offerID++
	if p.cfg.OnDescription != nil {
		p.cfg.OnDescription(*p.pc.LocalDescription(), p.offerID, p.midMap())
	}
}

// AddDownTrack subscribes this connection to d. In server-offers mode it
// adds a send-only section and offers; otherwise d waits for the client's
// next offer, which OnNeedOffer asks for.
func (p *Peer) AddDownTrack(d *DownTrack) {
	p.enqueue(func() {
		if _, ok := p.senders[d]; ok {
			return
		}
		if p.cfg.ServerOffers {
			tr, err := p.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				p.log.Warn("add transceiver failed", "track", d.ID(), "err", err)
				return
			}
			p.senders[d] = tr.Sender()
			if !d.attach(p, tr.Sender()) {
				p.log.Debug("track ended while being attached", "track", d.ID())
			}
			d.setReady(p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected)
			p.negotiate()
			return
		}
		p.pending = append(p.pending, d)
		p.askForOffer()
	})
}

// askForOffer asks the client for a new offer, with as many more
// receive-only sections of each kind as the waiting DownTracks need beyond
// the free ones of its last offer. One request is outstanding at a time: the
// client adds what is asked for on every request.
func (p *Peer) askForOffer() {
	if p.askedOffer || p.cfg.OnNeedOffer == nil {
		return
	}
	p.askedOffer = true
	audios, videos := p.pendingCounts()
	audios = max(audios-p.free[webrtc.RTPCodecTypeAudio], 0)
	videos = max(videos-p.free[webrtc.RTPCodecTypeVideo], 0)
	p.cfg.OnNeedOffer(audios, videos)
}

// RemoveDownTrack unsubscribes d. Its media section is turned inactive by
// the next negotiation and not reused (re-using sections of encrypted tracks
// can confuse a receiver's decryptor; PROTOCOL.md §5.7).
func (p *Peer) RemoveDownTrack(d *DownTrack) {
	p.enqueue(func() {
		for i, x := range p.pending {
			if x == d {
				p.pending = append(p.pending[:i], p.pending[i+1:]...)
				return
			}
		}
		s, ok := p.senders[d]
		if !ok {
			return
		}
		delete(p.senders, d)
		d.detach()
		if err := p.pc.RemoveTrack(s); err != nil {
			p.log.Debug("remove track failed", "track", d.ID(), "err", err)
		}
		for mid, id := range p.trackOfMid {
			if id == d.ID() {
				delete(p.trackOfMid, mid)
			}
		}
		if p.cfg.ServerOffers {
			p.negotiate()
		} else {
			p.askForOffer()
		}
	})
}

// attachPending binds waiting DownTracks to the offer's free receive-only
// sections of their kind.
func (p *Peer) attachPending() {
	free := map[webrtc.RTPCodecType]int{}
	for _, t := range p.pc.GetTransceivers() {
		if t.Sender() == nil && t.Direction() == webrtc.RTPTransceiverDirectionSendonly && t.Mid() != "" {
			free[t.Kind()]++
		}
	}
	var rest []*DownTrack
	for _, d := range p.pending {
		if free[d.Kind()] == 0 {
			rest = append(rest, d)
			continue
		}
		sender, err := p.pc.AddTrack(d)
		if err != nil {
			p.log.Warn("attach track failed", "track", d.ID(), "err", err)
			continue
		}
		free[d.Kind()]--
		p.senders[d] = sender
		if !d.attach(p, sender) {
			p.log.Debug("track ended while being attached", "track", d.ID())
		}
		d.setReady(p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected)
	}
	p.pending = rest
	p.free = free
}

func (p *Peer) pendingCounts() (audios, videos int) {
	for _, d := range p.pending {
		if d.Kind() == webrtc.RTPCodecTypeAudio {
			audios++
		} else {
			videos++
		}
	}
	return audios, videos
}

// midMap maps each media section carrying a DownTrack to its track id, as
// LiveKit's mid_to_track_id.
func (p *Peer) midMap() map[string]string {
	for _, t := range p.pc.GetTransceivers() {
		s := t.Sender()
		if s == nil || s.Track() == nil || t.Mid() == "" {
			continue
		}
		if d, ok := s.Track().(*DownTrack); ok {
			p.trackOfMid[t.Mid()] = d.ID()
		}
	}
	m := make(map[string]string, len(p.trackOfMid))
	for k, v := range p.trackOfMid {
		m[k] = v
	}
	return m
}

// CreateDataChannel opens a server-side data channel.
func (p *Peer) CreateDataChannel(label string, init *webrtc.DataChannelInit) (*webrtc.DataChannel, error) {
	return p.pc.CreateDataChannel(label, init)
}

// Close closes the connection and stops the loop. Forwarding to this
// connection's DownTracks stops. Closing twice is a no-op.
func (p *Peer) Close() error {
	var closeErr error
	err := p.call(func() error {
		// Nothing queued behind this function runs (a state change that
		// pion queued while the connection was closing would otherwise
		// start the own path, or file the Peer as a receiver, again), and
		// nothing is queued from now on.
		p.mu.Lock()
		p.closed = true
		p.queue = nil
		p.mu.Unlock()
		if p.secrets != nil {
			p.secrets.forget()
			p.secrets = nil
		}
		if in := p.in.Load(); in != nil {
			in.close()
			p.log.Debug("receive path closed", "packets", in.packets.Load())
			p.sfu.setReceiver(in.addr, netip.AddrPort{}, p)
		}
		closeErr = p.pc.Close()
		for d := range p.senders {
			d.detach()
		}
		p.senders = map[*DownTrack]*webrtc.RTPSender{}
		p.pending = nil
		return nil
	})
	// The function above ran (it marked the Peer closed), or an earlier
	// Close's did: either way nothing more is queued.
	p.stopOnce.Do(func() { close(p.done) })
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return closeErr
}
